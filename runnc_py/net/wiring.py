"""Handing the container's interfaces to the guest: a tap per interface, joined by tc.

For each interface, inside the container's own network namespace:

1. a persistent tap (`IFF_TAP | IFF_NO_PI`, what the Solo5 tenders open) with the interface's
   MTU, no IPv6 link-local address of its own (addrgenmode none: the host stack must not talk to
   the guest), and up;
2. an ingress qdisc on both devices, each with a u32 match-all filter whose action is
   `mirred egress redirect` to the other: every frame the engine's veth delivers goes to the
   guest and every frame the guest writes goes out the veth, untouched. No bridge, so the
   guest's MAC (the interface's) is the only one the network sees and ARP/NDP just work;
3. the interface's addresses taken off (the kernel then drops their routes), so the namespace's
   own stack neither answers nor sends in the guest's place.

Every step is recorded in an `IfaceUndo` as it succeeds; on any failure the partial record is
undone before the error is raised. `unwire` undoes a record later, from any process: tc and tap
gone, addresses and routes back. (The kernel has no `matchall` classifier here, hence u32.)
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
from dataclasses import dataclass, field, replace
from typing import Any

from pyroute2.netlink import NLM_F_CREATE, NLM_F_EXCL
from pyroute2.netlink.rtnl import (
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELQDISC,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWQDISC,
    RTM_NEWROUTE,
    RTM_NEWTFILTER,
)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg
from pyroute2.netlink.rtnl.tcmsg import cls_u32, tcmsg

from runnc_py.errors import RunncError
from runnc_py.net.facts import NetworkFacts, Route
from runnc_py.net.naming import SOLO5_MAX_DEVICES, guest_device_name, tap_name
from runnc_py.net.netns import SELF, netns_id, open_netns, run_in_netns
from runnc_py.net.read import RT_TABLE_MAIN, RTN_UNICAST, RTNH_F_ONLINK, dump_addresses, dump_routes
from runnc_py.net.rtnl import Rtnl
from runnc_py.net.wired import AddressRecord, GuestNic, IfaceUndo, WiredNetwork

TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
TUNSETOWNER = 0x400454CC
TUNSETGROUP = 0x400454CE
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_TUN_EXCL = 0x8000  # fail with EBUSY when the name is taken, instead of attaching to it
IFF_UP = 0x1
ETH_P_ALL = 0x0003
TC_H_INGRESS = 0xFFFFFFF1
INGRESS_HANDLE = 0xFFFF0000
FILTER_PRIO = 1
IN6_ADDR_GEN_MODE_NONE = 1
IFA_F_NODAD = 0x02
# Address flags a user may set (iproute2 passes these); the rest are the kernel's own state.
IFA_USER_FLAGS = 0x02 | 0x04 | 0x10 | 0x100 | 0x200 | 0x400
# "Nothing to undo" answers: the thing is already gone (or already back).
_GONE = frozenset({errno.ENODEV, errno.ENOENT, errno.EADDRNOTAVAIL, errno.ESRCH})


def wire(
    netns: str | None,
    facts: NetworkFacts,
    *,
    max_devices: int = SOLO5_MAX_DEVICES,
    owner: int | None = None,
    group: int | None = None,
) -> WiredNetwork:
    """Give every interface in `facts` a tap joined to it; return the guest devices + undo log.

    `max_devices` is how many network devices the guest has (its manifest). `owner`/`group`
    (uid/gid) restrict who may attach to the taps without CAP_NET_ADMIN (a persistent tap with
    neither is open to anyone who can reach it): pass the container's user. On failure nothing
    is left behind and a RunncError says what went wrong.
    """
    where = netns or "network namespace"
    if not facts.interfaces:
        raise RunncError("no network interface to hand to the guest (only lo?)", where=where)
    if len(facts.interfaces) > max_devices:
        raise RunncError(
            f"{len(facts.interfaces)} interfaces but the guest has {max_devices} network device(s)",
            where=where,
        )
    nsfd = open_netns(netns or SELF)
    try:
        ns_id = netns_id(nsfd)
        journal = _Journal(netns=netns, netns_id=ns_id)
        try:
            run_in_netns(netns, lambda: _wire_all(facts, journal, where, (owner, group)), fd=nsfd)
        except BaseException as exc:
            try:
                run_in_netns(netns, lambda: _undo_all(journal.record()), fd=nsfd)
            except RunncError as undo_exc:
                raise RunncError(
                    f"{_message(exc)}; rollback also failed: {undo_exc.message}", where=where
                ) from exc
            if isinstance(exc, RunncError):
                raise
            if isinstance(exc, OSError):
                raise RunncError(f"wiring failed: {_message(exc)}", where=where) from exc
            raise
        return journal.record()
    finally:
        os.close(nsfd)


def unwire(wired: WiredNetwork | dict[str, Any]) -> None:
    """Undo `wire`: tc filters and taps removed, addresses and routes restored.

    Safe to repeat. When the namespace no longer exists (or its path now names a different
    namespace, e.g. a reused /proc/PID), the taps and filters died with it: nothing to do.
    """
    if not isinstance(wired, WiredNetwork):
        wired = WiredNetwork.from_dict(wired)
    if wired.netns is None:
        nsfd = open_netns(SELF)
    else:
        try:
            nsfd = os.open(wired.netns, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise RunncError(f"cannot open: {exc.strerror}", where=wired.netns) from None
    try:
        if netns_id(nsfd) != wired.netns_id:
            if wired.netns is None:
                raise RunncError(
                    "was wired in another network namespace; pass its path", where="unwire"
                )
            return
        run_in_netns(wired.netns, lambda: _undo_all(wired), fd=nsfd)
    finally:
        os.close(nsfd)


@dataclass
class _Journal:
    """The undo log while `wire` runs; `record()` snapshots it as an immutable WiredNetwork."""

    netns: str | None
    netns_id: str
    devices: list[GuestNic] = field(default_factory=list)
    undo: list[IfaceUndo] = field(default_factory=list)

    def record(self) -> WiredNetwork:
        return WiredNetwork(self.netns, self.netns_id, tuple(self.devices), tuple(self.undo))


def _wire_all(
    facts: NetworkFacts, journal: _Journal, where: str, owner: tuple[int | None, int | None]
) -> None:
    with Rtnl() as rtnl:
        # One snapshot of what is there now (facts may be a moment old), taken before we touch
        # anything: these are the addresses and routes to put back.
        indexes = {i.name: _ifindex(i.name, where) for i in facts.interfaces}
        addresses = dump_addresses(rtnl, set(indexes.values()))
        routes = dump_routes(rtnl, {v: k for k, v in indexes.items()})
        for n, iface in enumerate(facts.interfaces):
            index = indexes[iface.name]
            tap = tap_name(iface.name)
            journal.undo.append(IfaceUndo(iface=iface.name))

            def done(**changes: Any) -> None:
                journal.undo[-1] = replace(journal.undo[-1], **changes)

            _create_tap(tap, where, *owner)
            done(tap=tap)
            tap_index = _ifindex(tap, where)
            _call(
                rtnl,
                _link_msg(tap_index, mtu=iface.mtu, no_ll=True),
                RTM_NEWLINK,
                tap,
                where,
                ignore={errno.EAFNOSUPPORT},
            )
            _call(rtnl, _link_msg(tap_index, up=True), RTM_NEWLINK, tap, where)
            _redirect(rtnl, tap_index, to=index, dev=tap, where=where)
            try:
                rtnl.call(_ingress_msg(index), RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL)
            except OSError as exc:
                if exc.errno == errno.EEXIST:
                    raise RunncError(
                        f"{iface.name} already has an ingress qdisc; refusing to take it over",
                        where=where,
                    ) from None
                raise RunncError(
                    f"adding an ingress qdisc: {exc.strerror}", where=iface.name
                ) from None
            done(ingress=True)
            _redirect(rtnl, index, to=tap_index, dev=iface.name, where=where, qdisc=False)
            taken = tuple(addresses.get(index, []))
            done(addresses=taken, routes=tuple(routes.get(index, [])))
            for record in reversed(taken):  # secondaries first: a primary takes them along
                _call(rtnl, _addr_msg(index, record), RTM_DELADDR, iface.name, where, ignore=_GONE)
            journal.devices.append(
                GuestNic(guest_device_name(n), tap, iface.mac, iface.mtu, iface.name)
            )


def _undo_all(wired: WiredNetwork) -> None:
    """Undo every interface's record, last first; keep going past failures, report the first."""
    failures: list[str] = []
    with Rtnl() as rtnl:
        for undo in reversed(wired.undo):
            failures += _undo_one(rtnl, undo)
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise RunncError(f"could not undo the wiring: {failures[0]}{more}", where="unwire")


def _undo_one(rtnl: Rtnl, undo: IfaceUndo) -> list[str]:
    failures: list[str] = []

    def attempt(
        what: str, msg: Any, msg_type: int, flags: int = 0, ok: frozenset[int] = _GONE
    ) -> None:
        try:
            rtnl.call(msg, msg_type, flags)
        except OSError as exc:
            if exc.errno not in ok:
                failures.append(f"{what}: {exc.strerror}")

    index = _ifindex_or_none(undo.iface)
    if undo.ingress and index is not None:
        # Deleting the qdisc deletes the redirect filter attached to it. Once an ingress qdisc
        # has existed, deleting a missing one answers EINVAL ("handle of zero"), not ENOENT.
        attempt(
            f"removing the ingress qdisc of {undo.iface}",
            _ingress_msg(index),
            RTM_DELQDISC,
            ok=_GONE | {errno.EINVAL},
        )
    if undo.tap is not None:
        msg = ifinfmsg()
        msg["attrs"] = [["IFLA_IFNAME", undo.tap]]
        attempt(f"deleting tap {undo.tap}", msg, RTM_DELLINK)
    if index is None:
        return failures  # the interface itself is gone: nothing to give addresses back to
    back = _GONE | {errno.EEXIST}
    for record in undo.addresses:
        attempt(
            f"restoring {record.address} on {undo.iface}",
            _addr_msg(index, record, add=True),
            RTM_NEWADDR,
            NLM_F_CREATE | NLM_F_EXCL,
            back,
        )
    # Device routes first: a gateway route may need one to reach its gateway.
    for route in sorted(undo.routes, key=lambda r: r.gateway is not None):
        attempt(
            f"restoring route {route}",
            _route_msg(index, route),
            RTM_NEWROUTE,
            NLM_F_CREATE | NLM_F_EXCL,
            back,
        )
    return failures


def _create_tap(name: str, where: str, uid: int | None = None, gid: int | None = None) -> None:
    """A persistent tap named `name` in the calling thread's namespace; refuse a taken name."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        ifr = struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI | IFF_TUN_EXCL)
        try:
            fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise RunncError(f"a device named {name} already exists", where=where) from None
            raise RunncError(f"creating tap {name}: {exc.strerror}", where=where) from None
        if uid is not None:
            fcntl.ioctl(fd, TUNSETOWNER, uid)
        if gid is not None:
            fcntl.ioctl(fd, TUNSETGROUP, gid)
        fcntl.ioctl(fd, TUNSETPERSIST, 1)  # outlive this fd; the launcher opens it by name
    finally:
        os.close(fd)


def _redirect(rtnl: Rtnl, index: int, *, to: int, dev: str, where: str, qdisc: bool = True) -> None:
    """Ingress qdisc on `index` (unless already added) + u32 match-all -> mirred redirect."""
    if qdisc:
        _call(rtnl, _ingress_msg(index), RTM_NEWQDISC, dev, where, flags=NLM_F_CREATE | NLM_F_EXCL)
    msg = tcmsg()
    msg["index"] = index
    msg["parent"] = INGRESS_HANDLE
    msg["info"] = socket.htons(ETH_P_ALL) | (FILTER_PRIO << 16)
    action = {"kind": "mirred", "direction": "egress", "action": "redirect", "ifindex": to}
    msg["attrs"] = [
        ["TCA_KIND", "u32"],
        [
            "TCA_OPTIONS",
            cls_u32.get_parameters({"target": 0, "keys": ["0x0/0x0+0"], "action": action}),
        ],
    ]
    _call(rtnl, msg, RTM_NEWTFILTER, dev, where, flags=NLM_F_CREATE | NLM_F_EXCL)


def _ingress_msg(index: int) -> tcmsg:
    msg = tcmsg()
    msg["index"] = index
    msg["handle"] = INGRESS_HANDLE
    msg["parent"] = TC_H_INGRESS
    msg["attrs"] = [["TCA_KIND", "ingress"], ["TCA_OPTIONS", {"attrs": []}]]
    return msg


def _link_msg(
    index: int, *, mtu: int | None = None, no_ll: bool = False, up: bool = False
) -> ifinfmsg:
    msg = ifinfmsg()
    msg["index"] = index
    attrs: list[Any] = []
    if mtu is not None:
        attrs.append(["IFLA_MTU", mtu])
    if no_ll:
        mode = [["IFLA_INET6_ADDR_GEN_MODE", IN6_ADDR_GEN_MODE_NONE]]
        attrs.append(["IFLA_AF_SPEC", {"attrs": [["AF_INET6", {"attrs": mode}]]}])
    if up:
        msg["flags"] = msg["change"] = IFF_UP
    msg["attrs"] = attrs
    return msg


def _addr_msg(index: int, record: AddressRecord, *, add: bool = False) -> ifaddrmsg:
    addr = record.address
    v4 = addr.family == 4
    msg = ifaddrmsg()
    msg["family"] = socket.AF_INET if v4 else socket.AF_INET6
    msg["prefixlen"] = addr.prefixlen
    msg["index"] = index
    attrs: list[Any] = [["IFA_ADDRESS", addr.addr]]
    if v4:
        attrs.append(["IFA_LOCAL", addr.addr])
    if add:
        msg["scope"] = record.scope
        # Restored IPv6 addresses skip duplicate address detection: they were just in use here,
        # and a tentative address would delay the routes that follow.
        flags = (record.flags & IFA_USER_FLAGS) | (0 if v4 else IFA_F_NODAD)
        msg["flags"] = flags & 0xFF
        attrs.append(["IFA_FLAGS", flags])
        if record.broadcast:
            attrs.append(["IFA_BROADCAST", record.broadcast])
        if record.label:
            attrs.append(["IFA_LABEL", record.label])
    msg["attrs"] = attrs
    return msg


def _route_msg(index: int, route: Route) -> rtmsg:
    msg = rtmsg()
    msg["family"] = socket.AF_INET if route.family == 4 else socket.AF_INET6
    msg["dst_len"] = route.prefixlen
    msg["table"] = RT_TABLE_MAIN
    msg["proto"] = route.proto
    msg["scope"] = route.scope
    msg["type"] = RTN_UNICAST
    msg["flags"] = RTNH_F_ONLINK if route.onlink else 0
    attrs: list[Any] = [["RTA_OIF", index]]
    if route.prefixlen:
        attrs.append(["RTA_DST", route.dst])
    if route.gateway:
        attrs.append(["RTA_GATEWAY", route.gateway])
    if route.metric is not None:
        attrs.append(["RTA_PRIORITY", route.metric])
    msg["attrs"] = attrs
    return msg


def _call(
    rtnl: Rtnl,
    msg: Any,
    msg_type: int,
    dev: str,
    where: str,
    *,
    flags: int = 0,
    ignore: set[int] | frozenset[int] = frozenset(),
) -> None:
    try:
        rtnl.call(msg, msg_type, flags)
    except OSError as exc:
        if exc.errno in ignore:
            return
        raise RunncError(
            f"{_WHAT.get(msg_type, 'netlink request')} for {dev}: {exc.strerror}", where=where
        ) from None


_WHAT = {
    RTM_NEWLINK: "setting up",
    RTM_NEWQDISC: "adding an ingress qdisc",
    RTM_NEWTFILTER: "adding the redirect filter",
    RTM_DELADDR: "removing an address",
}


def _ifindex(name: str, where: str) -> int:
    index = _ifindex_or_none(name)
    if index is None:
        raise RunncError(f"no interface named {name}", where=where)
    return index


def _ifindex_or_none(name: str) -> int | None:
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


def _message(exc: BaseException) -> str:
    if isinstance(exc, RunncError):
        return exc.line()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
