"""Reading a network namespace over rtnetlink into `NetworkFacts`.

Which interfaces count: Ethernet-type links (ARPHRD_ETHER) that are not loopback and not taps
(a tap is our own device, or some other program's, never the container's network). Every such
interface is returned, not only `eth0`, ordered so the one carrying the IPv4 default route comes
first (then IPv6's, then by ifindex): that one becomes the guest's first device, where LKL and
MirageOS put their default gateway.

Facts keep global-scope addresses only (a link-local address is derived from the MAC, which the
guest gets anyway) and main-table routes that the kernel did not derive from an address.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Container, Iterable
from dataclasses import dataclass

from pyroute2.netlink.rtnl import RTM_GETADDR, RTM_GETLINK, RTM_GETROUTE
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from runnc_py.errors import RunncError
from runnc_py.net.facts import (
    Address,
    DnsFacts,
    InterfaceFacts,
    NetworkFacts,
    Route,
    parse_resolv_conf,
)
from runnc_py.net.netns import run_in_netns
from runnc_py.net.rtnl import Rtnl
from runnc_py.net.wired import AddressRecord

ARPHRD_ETHER = 1
IFF_LOOPBACK = 0x8
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RTPROT_KERNEL = 2
RTNH_F_ONLINK = 0x4
RT_SCOPE_UNIVERSE = 0


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    mac: str
    mtu: int


def read_facts(netns: str | None = None, resolv_conf: str | None = None) -> NetworkFacts:
    """Interfaces, addresses, routes of `netns` (a path; None = ours) and DNS from `resolv_conf`.

    A missing resolv.conf means no DNS settings (many unikernel images have none); an
    unreadable one is an error.
    """
    dns = read_resolv_conf(resolv_conf) if resolv_conf else DnsFacts()

    def job() -> NetworkFacts:
        with Rtnl() as rtnl:
            links = dump_links(rtnl)
            addresses = dump_addresses(rtnl, {link.index for link in links})
            routes = dump_routes(rtnl, {link.index: link.name for link in links})
        return build_facts(links, addresses, routes, dns)

    return run_in_netns(netns, job)


def read_resolv_conf(path: str) -> DnsFacts:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_resolv_conf(f.read())
    except FileNotFoundError:
        return DnsFacts()
    except OSError as exc:
        raise RunncError(f"cannot read: {exc.strerror}", where=path) from None


def build_facts(
    links: Iterable[Link],
    addresses: dict[int, list[AddressRecord]],
    routes: dict[int, list[Route]],
    dns: DnsFacts,
) -> NetworkFacts:
    """Assemble facts from dumped links/addresses/routes (pure; kept apart for unit tests)."""
    interfaces = []
    for link in links:
        own = [r.address for r in addresses.get(link.index, []) if r.scope == RT_SCOPE_UNIVERSE]
        interfaces.append(
            InterfaceFacts(
                name=link.name,
                mac=link.mac,
                mtu=link.mtu,
                ipv4=tuple(a for a in own if a.family == 4),
                ipv6=tuple(a for a in own if a.family == 6),
                routes=tuple(routes.get(link.index, [])),
            )
        )
    index = {link.name: link.index for link in links}

    def rank(iface: InterfaceFacts) -> tuple[int, int]:
        first = 0 if iface.gateway(4) else 1 if iface.gateway(6) else 2
        return (first, index[iface.name])

    return NetworkFacts(interfaces=tuple(sorted(interfaces, key=rank)), dns=dns)


def _ethernet_not_loopback(data: bytes, offset: int) -> bool:
    # struct ifinfomsg after the 16-byte header: family u8, pad u8, type u16, index i32, flags u32
    ifi_type, _index, flags = struct.unpack_from("=HiI", data, offset + 18)
    return bool(ifi_type == ARPHRD_ETHER and not flags & IFF_LOOPBACK)


def _main_table_unicast(data: bytes, offset: int) -> bool:
    # struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type (all u8)
    table, proto, _scope, kind = struct.unpack_from("=BBBB", data, offset + 20)
    return bool(table == RT_TABLE_MAIN and kind == RTN_UNICAST and proto != RTPROT_KERNEL)


def dump_links(rtnl: Rtnl) -> list[Link]:
    links = []
    for msg in rtnl.dump(ifinfmsg(), RTM_GETLINK, keep=_ethernet_not_loopback):
        if msg["ifi_type"] != ARPHRD_ETHER or msg["flags"] & IFF_LOOPBACK:
            continue
        if msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "tun":
            continue
        links.append(
            Link(
                index=msg["index"],
                name=msg.get_attr("IFLA_IFNAME"),
                mac=msg.get_attr("IFLA_ADDRESS"),
                mtu=msg.get_attr("IFLA_MTU"),
            )
        )
    return links


def dump_addresses(
    rtnl: Rtnl, indexes: Container[int] | None = None
) -> dict[int, list[AddressRecord]]:
    """Every address (all scopes) of the interfaces `indexes` (default: all), by ifindex, in
    kernel order."""

    def wanted(data: bytes, offset: int) -> bool:
        # struct ifaddrmsg: family u8, prefixlen u8, flags u8, scope u8, index u32
        (index,) = struct.unpack_from("=I", data, offset + 20)
        return indexes is None or index in indexes

    result: dict[int, list[AddressRecord]] = {}
    for msg in rtnl.dump(ifaddrmsg(), RTM_GETADDR, keep=wanted):
        family = msg["family"]
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        # IPv4 puts the interface's own address in IFA_LOCAL (IFA_ADDRESS is the peer's on
        # point-to-point links); IPv6 only has IFA_ADDRESS.
        addr = msg.get_attr("IFA_LOCAL") if family == socket.AF_INET else None
        addr = addr or msg.get_attr("IFA_ADDRESS")
        flags = msg.get_attr("IFA_FLAGS")
        result.setdefault(msg["index"], []).append(
            AddressRecord(
                address=Address(addr, msg["prefixlen"]),
                scope=msg["scope"],
                flags=msg["flags"] if flags is None else flags,
                broadcast=msg.get_attr("IFA_BROADCAST"),
                label=msg.get_attr("IFA_LABEL"),
            )
        )
    return result


def dump_routes(rtnl: Rtnl, names: dict[int, str]) -> dict[int, list[Route]]:
    """Main-table unicast routes through the given interfaces, by ifindex, except the ones the
    kernel made from addresses (they come back with the addresses). Multipath routes are not
    one interface's and are left alone."""
    result: dict[int, list[Route]] = {}
    request = rtmsg()
    request["family"] = socket.AF_UNSPEC  # both families (pyroute2 defaults to AF_INET)
    # The main table has id 254, which fits rtm_table: tables above 255 never match here.
    for msg in rtnl.dump(request, RTM_GETROUTE, keep=_main_table_unicast):
        oif = msg.get_attr("RTA_OIF")
        if oif not in names or msg.get_attr("RTA_MULTIPATH") is not None:
            continue
        family = msg["family"]
        default = "0.0.0.0" if family == socket.AF_INET else "::"
        result.setdefault(oif, []).append(
            Route(
                dst=msg.get_attr("RTA_DST") or default,
                prefixlen=msg["dst_len"],
                gateway=msg.get_attr("RTA_GATEWAY"),
                dev=names[oif],
                metric=msg.get_attr("RTA_PRIORITY"),
                proto=msg["proto"],
                scope=msg["scope"],
                onlink=bool(msg["flags"] & RTNH_F_ONLINK),
            )
        )
    return result
