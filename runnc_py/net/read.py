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

from runnc_py.errors import RunncError
from runnc_py.net import nlmsg
from runnc_py.net.facts import (
    Address,
    DnsFacts,
    InterfaceFacts,
    NetworkFacts,
    Route,
    parse_resolv_conf,
)
from runnc_py.net.netns import run_in_netns
from runnc_py.net.nlmsg import (
    ARPHRD_ETHER,
    IFF_LOOPBACK,
    IFINFO,
    RT_TABLE_MAIN,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETROUTE,
    RTN_UNICAST,
    RTNH_F_ONLINK,
    RTPROT_KERNEL,
)
from runnc_py.net.rtnl import Rtnl
from runnc_py.net.wired import AddressRecord
from runnc_py.record import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Container, Iterable

RT_SCOPE_UNIVERSE = 0


class Link(FrozenRecord):
    __slots__ = ("index", "mac", "mtu", "name")
    index: int
    name: str
    mac: str
    mtu: int

    def __init__(self, index: int, name: str, mac: str, mtu: int) -> None:
        self._set(index=index, name=name, mac=mac, mtu=mtu)


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


def _ethernet_not_loopback(body: bytes) -> bool:
    _family, ifi_type, _index, flags, _change = IFINFO.unpack_from(body)
    return bool(ifi_type == ARPHRD_ETHER and not flags & IFF_LOOPBACK)


def dump_links(rtnl: Rtnl) -> list[Link]:
    links = []
    for body in rtnl.dump(RTM_GETLINK, keep=_ethernet_not_loopback):
        link = nlmsg.decode_link(body)
        if link.kind == "tun":
            continue
        links.append(Link(index=link.index, name=link.name, mac=link.mac, mtu=link.mtu))
    return links


def dump_raw_links(rtnl: Rtnl) -> list[nlmsg.Link]:
    """Every link of the namespace, decoded (for checking what a record names)."""
    return [nlmsg.decode_link(body) for body in rtnl.dump(RTM_GETLINK)]


def dump_addresses(
    rtnl: Rtnl, indexes: Container[int] | None = None
) -> dict[int, list[AddressRecord]]:
    """Every address (all scopes) of the interfaces `indexes` (default: all), by ifindex, in
    kernel order."""

    def wanted(body: bytes) -> bool:
        return indexes is None or nlmsg.IFADDR.unpack_from(body)[4] in indexes

    result: dict[int, list[AddressRecord]] = {}
    for body in rtnl.dump(RTM_GETADDR, keep=wanted):
        reply = nlmsg.decode_address(body)
        if reply is None:
            continue
        result.setdefault(reply.index, []).append(
            AddressRecord(
                address=Address(reply.address, reply.prefixlen),
                scope=reply.scope,
                flags=reply.flags,
                broadcast=reply.broadcast,
                label=reply.label,
            )
        )
    return result


def dump_routes(rtnl: Rtnl, names: dict[int, str]) -> dict[int, list[Route]]:
    """Main-table unicast routes through the given interfaces, by ifindex, except the ones the
    kernel made from addresses (they come back with the addresses). Multipath routes are not
    one interface's and are left alone."""
    result: dict[int, list[Route]] = {}
    for body in rtnl.dump(RTM_GETROUTE):
        reply = nlmsg.decode_route(body)
        if (
            reply.table != RT_TABLE_MAIN
            or reply.type != RTN_UNICAST
            or reply.proto == RTPROT_KERNEL
            or reply.oif not in names
            or reply.multipath
        ):
            continue
        default = "0.0.0.0" if reply.family == nlmsg.family_of(4) else "::"
        result.setdefault(reply.oif, []).append(
            Route(
                dst=reply.dst or default,
                prefixlen=reply.prefixlen,
                gateway=reply.gateway,
                dev=names[reply.oif],
                metric=reply.metric,
                proto=reply.proto,
                scope=reply.scope,
                onlink=bool(reply.flags & RTNH_F_ONLINK),
            )
        )
    return result
