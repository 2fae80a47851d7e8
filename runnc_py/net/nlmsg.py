"""rtnetlink messages as bytes: the few that wiring and reading a namespace need (pure).

pyroute2 decodes and encodes every rtnetlink message there is, and importing any part of it runs
the package's `__init__` (ndb, ipdb, asyncio: 140-185 ms here), on every `create` with a
network. Wiring needs a dozen message shapes, so they are written here with `struct`, from the
kernel's uapi headers (linux/netlink.h, rtnetlink.h, if_link.h, if_addr.h, pkt_cls.h,
tc_act/tc_mirred.h). The tests check every builder byte for byte against pyroute2's encoding and
every decoder against pyroute2's decoding of the same kernel replies.

Layout: a message is a 16-byte `nlmsghdr`, a fixed family header (`ifinfomsg`, `ifaddrmsg`,
`rtmsg`, `tcmsg`), then attributes (`nlattr`: u16 length, u16 type, payload, padded to 4).
"""

from __future__ import annotations

import struct
from _socket import AF_INET, AF_INET6, inet_ntop, inet_pton  # `socket` itself costs ~2 ms

from runnc_py.net.tuples import TupleRecord

# linux/netlink.h
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF
HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_NLA = struct.Struct("=HH")

# linux/rtnetlink.h message types
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
RTM_NEWQDISC, RTM_DELQDISC, RTM_GETQDISC = 36, 37, 38
RTM_NEWTFILTER, RTM_GETTFILTER = 44, 46

# Family headers.
IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
# rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
RTMSG = struct.Struct("=BBBBBBBBI")
TCMSG = struct.Struct("=B3xiIII")  # tcmsg: family, ifindex, handle, parent, info

# linux/if_link.h, if_addr.h, rtnetlink.h attribute numbers
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO, IFLA_AF_SPEC = 1, 3, 4, 18, 26
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_TUN_OWNER, IFLA_TUN_GROUP, IFLA_TUN_TYPE, IFLA_TUN_PI = 1, 2, 3, 4
IFLA_TUN_PERSIST, IFLA_TUN_NUM_QUEUES = 6, 8
TUN_TYPE_TAP = 0x0002  # IFLA_TUN_TYPE of a tap (IFF_TAP)
IFLA_INET6_ADDR_GEN_MODE = 8
IN6_ADDR_GEN_MODE_NONE = 1
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_BROADCAST, IFA_FLAGS = 1, 2, 3, 4, 8
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_MULTIPATH, RTA_TABLE = 1, 4, 5, 6, 9, 15
TCA_KIND, TCA_OPTIONS = 1, 2
TCA_U32_CLASSID, TCA_U32_SEL, TCA_U32_ACT = 1, 5, 7
TCA_ACT_KIND, TCA_ACT_OPTIONS = 1, 2
TCA_MIRRED_PARMS = 2

ARPHRD_ETHER = 1
IFF_UP, IFF_LOOPBACK = 0x1, 0x8
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RTPROT_KERNEL = 2
RTNH_F_ONLINK = 0x4
IFA_F_NODAD = 0x02
TC_H_INGRESS = 0xFFFFFFF1
INGRESS_HANDLE = 0xFFFF0000
ETH_P_ALL = 0x0003
FILTER_PRIO = 1
TC_ACT_STOLEN = 4
TCA_EGRESS_REDIR = 1
TC_U32_TERMINAL = 1
# tc_mirred: tc_gen (index, capab, action, refcnt, bindcnt), eaction, ifindex
_TC_MIRRED = struct.Struct("=IIiiiiI")
# tc_u32_sel + one tc_u32_key: match every packet (mask 0), a terminal node
_U32_MATCH_ALL = struct.pack("=BBBBHHhhI", TC_U32_TERMINAL, 0, 1, 0, 0, 0, 0, 0, 0) + bytes(16)
_FAMILIES = {4: AF_INET, 6: AF_INET6}


class Message(TupleRecord):
    """One message of a reply: its type and the bytes after the nlmsghdr."""

    __slots__ = ()
    _fields = ("kind", "flags", "seq", "body")

    kind: int
    flags: int
    seq: int
    body: bytes


# ------------------------------------------------------------------------------------ encoding


def attr(kind: int, payload: bytes) -> bytes:
    length = _NLA.size + len(payload)
    return _NLA.pack(length, kind) + payload + bytes(-length % 4)


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def attr_str(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


def attr_ip(kind: int, address: str) -> bytes:
    return attr(kind, pack_ip(address))


def pack_ip(address: str) -> bytes:
    return inet_pton(AF_INET6 if ":" in address else AF_INET, address)


def frame(msg_type: int, flags: int, seq: int, body: bytes) -> bytes:
    """A whole message: header + body (the body is already padded by its attributes)."""
    return HEADER.pack(HEADER.size + len(body), msg_type, flags, seq, 0) + body


def link_change(
    index: int, *, mtu: int | None = None, no_link_local: bool = False, up: bool = False
) -> bytes:
    """RTM_NEWLINK body: set the MTU, IPv6 addrgenmode none, or IFF_UP on an existing link."""
    flags = IFF_UP if up else 0
    body = IFINFO.pack(0, 0, index, flags, flags)
    if mtu is not None:
        body += attr_u32(IFLA_MTU, mtu)
    if no_link_local:
        mode = attr(IFLA_INET6_ADDR_GEN_MODE, bytes([IN6_ADDR_GEN_MODE_NONE]))
        body += attr(IFLA_AF_SPEC, attr(AF_INET6, mode))
    return body


def link_by_index(index: int) -> bytes:
    """RTM_DELLINK / RTM_GETLINK body naming one link by ifindex."""
    return IFINFO.pack(0, 0, index, 0, 0)


def ingress_qdisc(index: int) -> bytes:
    """RTM_NEWQDISC / RTM_DELQDISC body: the ingress qdisc of `index`."""
    return (
        TCMSG.pack(0, index, INGRESS_HANDLE, TC_H_INGRESS, 0)
        + attr_str(TCA_KIND, "ingress")
        + attr(TCA_OPTIONS, bytes(4))  # ignored by the kernel; what pyroute2 sent
    )


def redirect_filter(index: int, to: int) -> bytes:
    """RTM_NEWTFILTER body: on `index`'s ingress, u32 match-all -> mirred egress redirect `to`."""
    parms = _TC_MIRRED.pack(0, 0, TC_ACT_STOLEN, 0, 0, TCA_EGRESS_REDIR, to)
    mirred = attr_str(TCA_ACT_KIND, "mirred") + attr(
        TCA_ACT_OPTIONS | NLA_F_NESTED, attr(TCA_MIRRED_PARMS, parms)
    )
    options = (
        attr(TCA_U32_ACT, attr(1, mirred))  # TCA_ACT_PRIO_1: the first action
        + attr_u32(TCA_U32_CLASSID, 0)
        + attr(TCA_U32_SEL, _U32_MATCH_ALL)
    )
    info = (FILTER_PRIO << 16) | struct.unpack("=H", struct.pack("!H", ETH_P_ALL))[0]
    return (
        TCMSG.pack(0, index, 0, INGRESS_HANDLE, info)
        + attr_str(TCA_KIND, "u32")
        + attr(TCA_OPTIONS, options)
    )


def filters_of(index: int, parent: int = INGRESS_HANDLE) -> bytes:
    """RTM_GETTFILTER dump body: the filters under `parent` of `index`."""
    return TCMSG.pack(0, index, 0, parent, 0)


def address(
    index: int,
    addr: str,
    prefixlen: int,
    *,
    add: bool = False,
    scope: int = 0,
    flags: int = 0,
    broadcast: str | None = None,
    label: str | None = None,
) -> bytes:
    """RTM_NEWADDR (add=True: with scope, flags, broadcast, label) or RTM_DELADDR body."""
    v4 = ":" not in addr
    family = AF_INET if v4 else AF_INET6
    if not add:
        scope = flags = 0
    body = IFADDR.pack(family, prefixlen, flags & 0xFF, scope, index) + attr_ip(IFA_ADDRESS, addr)
    if v4:
        body += attr_ip(IFA_LOCAL, addr)
    if add:
        body += attr_u32(IFA_FLAGS, flags)
        if broadcast:
            body += attr_ip(IFA_BROADCAST, broadcast)
        if label:
            body += attr_str(IFA_LABEL, label)
    return body


def route(
    index: int,
    dst: str,
    prefixlen: int,
    *,
    gateway: str | None = None,
    metric: int | None = None,
    proto: int = 0,
    scope: int = 0,
    onlink: bool = False,
) -> bytes:
    """RTM_NEWROUTE body: a main-table unicast route through `index`."""
    family = AF_INET6 if ":" in dst else AF_INET
    body = RTMSG.pack(
        family, prefixlen, 0, 0, RT_TABLE_MAIN, proto, scope, RTN_UNICAST,
        RTNH_F_ONLINK if onlink else 0,
    )  # fmt: skip
    body += attr_u32(RTA_OIF, index)
    if prefixlen:
        body += attr_ip(RTA_DST, dst)
    if gateway:
        body += attr_ip(RTA_GATEWAY, gateway)
    if metric is not None:
        body += attr_u32(RTA_PRIORITY, metric)
    return body


def dump_request(msg_type: int, family: int = 0) -> bytes:
    """The body of a whole-table dump request (links, addresses, routes, qdiscs)."""
    if msg_type in (RTM_GETADDR,):
        return IFADDR.pack(family, 0, 0, 0, 0)
    if msg_type == RTM_GETROUTE:
        return RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    if msg_type in (RTM_GETQDISC, RTM_GETTFILTER):
        return TCMSG.pack(family, 0, 0, 0, 0)
    return IFINFO.pack(family, 0, 0, 0, 0)


# ------------------------------------------------------------------------------------ decoding


def messages(data: bytes) -> list[Message]:
    """Split a receive buffer into its messages."""
    out: list[Message] = []
    offset = 0
    while offset + HEADER.size <= len(data):
        length, kind, flags, seq, _pid = HEADER.unpack_from(data, offset)
        if length < HEADER.size or offset + length > len(data):
            break
        out.append(Message(kind, flags, seq, data[offset + HEADER.size : offset + length]))
        offset += (length + 3) & ~3
    return out


def error_code(body: bytes) -> int:
    """The errno of an NLMSG_ERROR message (0 for an ack)."""
    return -struct.unpack_from("=i", body)[0]


def attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """Attribute payloads by type (flags stripped) from `offset` to the end of `data`."""
    out: dict[int, bytes] = {}
    while offset + _NLA.size <= len(data):
        length, kind = _NLA.unpack_from(data, offset)
        if length < _NLA.size:
            break
        out[kind & NLA_TYPE_MASK] = data[offset + _NLA.size : offset + length]
        offset += (length + 3) & ~3
    return out


def u32(payload: bytes | None) -> int | None:
    return None if payload is None or len(payload) < 4 else struct.unpack_from("=I", payload)[0]


def text(payload: bytes | None) -> str | None:
    return None if payload is None else payload.split(b"\0", 1)[0].decode(errors="replace")


def ip(family: int, payload: bytes | None) -> str | None:
    return None if payload is None else inet_ntop(family, payload)


def mac(payload: bytes | None) -> str:
    return ":".join(f"{b:02x}" for b in payload or b"")


class Link(TupleRecord):
    """One RTM_NEWLINK reply, the fields we use."""

    __slots__ = ()
    _fields = ("index", "name", "type", "flags", "mac", "mtu", "kind", "tun")

    index: int
    name: str
    type: int  # ARPHRD_*
    flags: int
    mac: str
    mtu: int
    kind: str | None  # IFLA_INFO_KIND: "tun", "veth", "dummy", ... (None: no rtnl_link_ops)
    tun: dict[int, int]  # IFLA_TUN_* -> value, for kind "tun"


def decode_link(body: bytes) -> Link:
    _family, ifi_type, index, flags, _change = IFINFO.unpack_from(body)
    found = attrs(body, IFINFO.size)
    info = attrs(found.get(IFLA_LINKINFO, b""))
    tun = {
        k: int.from_bytes(v[:4], "little") for k, v in attrs(info.get(IFLA_INFO_DATA, b"")).items()
    }
    return Link(
        index=index,
        name=text(found.get(IFLA_IFNAME)) or "",
        type=ifi_type,
        flags=flags,
        mac=mac(found.get(IFLA_ADDRESS)),
        mtu=u32(found.get(IFLA_MTU)) or 0,
        kind=text(info.get(IFLA_INFO_KIND)),
        tun=tun,
    )


class AddressReply(TupleRecord):
    __slots__ = ()
    _fields = ("family", "index", "address", "prefixlen", "scope", "flags", "broadcast", "label")
    family: int  # AF_INET / AF_INET6
    index: int
    address: str
    prefixlen: int
    scope: int
    flags: int
    broadcast: str | None
    label: str | None


def decode_address(body: bytes) -> AddressReply | None:
    """An RTM_NEWADDR reply; None for families other than IPv4/IPv6."""
    family, prefixlen, flags8, scope, index = IFADDR.unpack_from(body)
    if family not in (AF_INET, AF_INET6):
        return None
    found = attrs(body, IFADDR.size)
    # IPv4 puts the interface's own address in IFA_LOCAL (IFA_ADDRESS is the peer's on
    # point-to-point links); IPv6 only has IFA_ADDRESS.
    local = found.get(IFA_LOCAL) if family == AF_INET else None
    flags = u32(found.get(IFA_FLAGS))
    return AddressReply(
        family=family,
        index=index,
        address=ip(family, local or found.get(IFA_ADDRESS)) or "",
        prefixlen=prefixlen,
        scope=scope,
        flags=flags8 if flags is None else flags,
        broadcast=ip(family, found.get(IFA_BROADCAST)),
        label=text(found.get(IFA_LABEL)),
    )


class RouteReply(TupleRecord):
    __slots__ = ()
    _fields = (
        "family",
        "dst",
        "prefixlen",
        "gateway",
        "oif",
        "metric",
        "table",
        "proto",
        "scope",
        "type",
        "flags",
        "multipath",
    )
    family: int
    dst: str | None
    prefixlen: int
    gateway: str | None
    oif: int | None
    metric: int | None
    table: int
    proto: int
    scope: int
    type: int
    flags: int
    multipath: bool


def decode_route(body: bytes) -> RouteReply:
    family, dst_len, _src, _tos, table, proto, scope, kind, flags = RTMSG.unpack_from(body)
    found = attrs(body, RTMSG.size)
    return RouteReply(
        family=family,
        dst=ip(family, found.get(RTA_DST)),
        prefixlen=dst_len,
        gateway=ip(family, found.get(RTA_GATEWAY)),
        oif=u32(found.get(RTA_OIF)),
        metric=u32(found.get(RTA_PRIORITY)),
        table=u32(found.get(RTA_TABLE)) or table,
        proto=proto,
        scope=scope,
        type=kind,
        flags=flags,
        multipath=RTA_MULTIPATH in found,
    )


class FilterReply(TupleRecord):
    """An RTM_NEWTFILTER reply: the classifier and, for u32, the mirred targets of its actions."""

    __slots__ = ()
    _fields = ("index", "parent", "kind", "redirects", "other_actions")

    index: int
    parent: int
    kind: str | None
    redirects: tuple[int, ...]  # ifindex of each mirred action (0: its device is gone)
    other_actions: int  # actions that are not mirred


def decode_filter(body: bytes) -> FilterReply:
    _family, index, _handle, parent, _info = TCMSG.unpack_from(body)
    found = attrs(body, TCMSG.size)
    options = attrs(found.get(TCA_OPTIONS, b""))
    redirects: list[int] = []
    others = 0
    for action in attrs(options.get(TCA_U32_ACT, b"")).values():
        fields = attrs(action)
        parms = attrs(fields.get(TCA_ACT_OPTIONS, b"")).get(TCA_MIRRED_PARMS)
        if text(fields.get(TCA_ACT_KIND)) == "mirred" and parms and len(parms) >= _TC_MIRRED.size:
            redirects.append(_TC_MIRRED.unpack_from(parms)[6])
        else:
            others += 1
    return FilterReply(index, parent, text(found.get(TCA_KIND)), tuple(redirects), others)


def family_of(version: int) -> int:
    return _FAMILIES[version]
