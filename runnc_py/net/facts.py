"""What a container's network namespace holds, as plain data (the pure core of `runnc_py.net`).

`read.py` fills these from netlink; the renderers turn them into guest configuration; `wire.py`
uses them to build taps. Everything here is immutable, JSON-serialisable and validated on load,
so a `net.json` written by `create` can be trusted by `delete` in another process.
"""

from __future__ import annotations

from _socket import AF_INET, AF_INET6, inet_ntop, inet_pton  # `socket` itself costs ~2 ms

from runnc_py.errors import RunncError
from runnc_py.net.tuples import TupleRecord
from runnc_py.record import FrozenRecord
from runnc_py.strictnum import is_decimal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

MIN_MTU, MAX_MTU = 68, 65535  # IPv4's minimum, and the netlink u16 a Solo5 manifest carries
# Character sets instead of regular expressions (`re` costs every networked create ~5 ms,
# docs/boot-path.md).
_HEX = frozenset("0123456789abcdef")
# RFC 1035 names: resolv.conf search domains, one label set per entry.
_DOMAIN_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_DOMAIN_REST = _DOMAIN_FIRST | frozenset(".-")


def is_mac(text: str) -> bool:
    """Six colon-separated pairs of lower-case hex digits."""
    parts = text.split(":")
    return len(parts) == 6 and all(len(p) == 2 and _HEX.issuperset(p) for p in parts)


def is_domain(text: str) -> bool:
    """A search domain: up to 253 characters of letters, digits, `_`, `.` and `-`, not
    starting with `.` or `-`, plus an optional final `.`."""
    body = text[:-1] if len(text) > 1 and text.endswith(".") else text
    return 0 < len(body) <= 253 and body[0] in _DOMAIN_FIRST and _DOMAIN_REST.issuperset(body)


def canonical_ip(text: Any) -> tuple[str, int]:
    """`(str(ipaddress.ip_address(TEXT)), its version)`; ValueError where ip_address raises.

    Plain IPv4 and IPv6 text goes through the C library's inet_pton/inet_ntop (`ipaddress`
    costs every networked create ~2 ms with functools and collections), which agree with
    ipaddress on what they accept and how they print it; anything else (a zone `%eth0`, an
    IPv6 address printed with an embedded IPv4 part, another type) is left to ipaddress
    itself, so results and messages are unchanged (tests/unit/test_net_lean.py)."""
    if isinstance(text, str) and text.isascii():
        family = AF_INET6 if ":" in text else AF_INET
        try:
            packed = inet_pton(family, text)
        except OSError:
            pass
        else:
            canonical = inet_ntop(family, packed)
            if family == AF_INET:
                return canonical, 4
            if "." not in canonical:
                return canonical, 6
    import ipaddress

    addr = ipaddress.ip_address(text)
    return str(addr), addr.version


class Address(TupleRecord):
    """One interface address: `(addr, prefixlen)`; printed as `addr/prefixlen`."""

    __slots__ = ()
    _fields = ("addr", "prefixlen")
    addr: str
    prefixlen: int

    def __str__(self) -> str:
        return f"{self.addr}/{self.prefixlen}"

    @property
    def family(self) -> int:
        return 6 if ":" in self.addr else 4


class Route(FrozenRecord):
    """A main-table route through one interface (kernel-made connected routes excluded).

    `metric`, `proto`, `scope` and `onlink` are kept so `unwire` can put the route back exactly
    as it was; renderers only look at destination, prefix and gateway.
    """

    __slots__ = ("dev", "dst", "gateway", "metric", "onlink", "prefixlen", "proto", "scope")
    dst: str
    prefixlen: int
    gateway: str | None
    dev: str
    metric: int | None
    proto: int
    scope: int
    onlink: bool

    def __init__(
        self,
        dst: str,
        prefixlen: int,
        gateway: str | None,
        dev: str,
        metric: int | None = None,
        proto: int = 3,  # RTPROT_BOOT, what `ip route add` uses
        scope: int = 0,  # RT_SCOPE_UNIVERSE
        onlink: bool = False,
    ) -> None:
        self._set(
            dst=dst,
            prefixlen=prefixlen,
            gateway=gateway,
            dev=dev,
            metric=metric,
            proto=proto,
            scope=scope,
            onlink=onlink,
        )

    @property
    def family(self) -> int:
        return 6 if ":" in self.dst else 4

    @property
    def is_default(self) -> bool:
        return self.prefixlen == 0

    def __str__(self) -> str:
        text = "default" if self.is_default else f"{self.dst}/{self.prefixlen}"
        if self.gateway:
            text += f" via {self.gateway}"
        text += f" dev {self.dev}"
        if self.onlink:
            text += " onlink"
        if self.metric is not None:
            text += f" metric {self.metric}"
        return text


class InterfaceFacts(FrozenRecord):
    """One non-loopback Ethernet interface of the container."""

    __slots__ = ("ipv4", "ipv6", "mac", "mtu", "name", "routes")
    name: str
    mac: str
    mtu: int
    ipv4: tuple[Address, ...]
    ipv6: tuple[Address, ...]
    routes: tuple[Route, ...]

    def __init__(
        self,
        name: str,
        mac: str,
        mtu: int,
        ipv4: tuple[Address, ...] = (),
        ipv6: tuple[Address, ...] = (),
        routes: tuple[Route, ...] = (),
    ) -> None:
        self._set(name=name, mac=mac, mtu=mtu, ipv4=ipv4, ipv6=ipv6, routes=routes)

    def addresses(self, family: int) -> tuple[Address, ...]:
        return self.ipv4 if family == 4 else self.ipv6

    def default_route(self, family: int) -> Route | None:
        """The default route through this interface with the lowest metric, if any."""
        defaults = [r for r in self.routes if r.family == family and r.is_default]
        defaults.sort(key=lambda r: r.metric or 0)
        return defaults[0] if defaults else None

    def gateway(self, family: int) -> str | None:
        route = self.default_route(family)
        return route.gateway if route else None

    def static_routes(self) -> tuple[Route, ...]:
        """Every route except the defaults (which renderers express as gateways)."""
        return tuple(r for r in self.routes if not r.is_default)

    def extra_routes(self) -> tuple[Route, ...]:
        """Static routes a guest must be told about: all but the host route that only makes an
        off-subnet gateway reachable (`169.254.1.1 dev eth0 scope link` next to Calico's /32
        addresses), because every guest stack we render for adds its gateway on-link."""
        gateways = {self.gateway(4), self.gateway(6)} - {None}
        return tuple(
            r
            for r in self.static_routes()
            if not (r.gateway is None and r.dst in gateways and r.prefixlen in (32, 128))
        )


class DnsFacts(FrozenRecord):
    """Resolver settings from the container's resolv.conf."""

    __slots__ = ("nameservers", "search")
    nameservers: tuple[str, ...]
    search: tuple[str, ...]

    def __init__(self, nameservers: tuple[str, ...] = (), search: tuple[str, ...] = ()) -> None:
        self._set(nameservers=nameservers, search=search)


class NetworkFacts(FrozenRecord):
    """Everything the guest needs to look like the container on the network."""

    __slots__ = ("dns", "interfaces")
    interfaces: tuple[InterfaceFacts, ...]
    dns: DnsFacts

    def __init__(self, interfaces: tuple[InterfaceFacts, ...], dns: DnsFacts | None = None) -> None:
        self._set(interfaces=interfaces, dns=DnsFacts() if dns is None else dns)

    def gateway(self, family: int) -> tuple[InterfaceFacts, str] | None:
        """The interface carrying the default route of `family` (lowest metric) and its gateway."""
        best: tuple[int, InterfaceFacts, str] | None = None
        for iface in self.interfaces:
            route = iface.default_route(family)
            if route and route.gateway and (best is None or (route.metric or 0) < best[0]):
                best = (route.metric or 0, iface, route.gateway)
        return (best[1], best[2]) if best else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "interfaces": [_iface_to_dict(i) for i in self.interfaces],
            "dns": {"nameservers": list(self.dns.nameservers), "search": list(self.dns.search)},
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "facts") -> NetworkFacts:
        """Validate and load what `to_dict` wrote; any defect is a RunncError naming the field."""
        if not isinstance(data, dict):
            raise RunncError("expected a JSON object", where=where)
        ifaces = check_list(data.get("interfaces", []), f"{where}.interfaces")
        interfaces = tuple(
            _iface_from_dict(item, f"{where}.interfaces[{i}]") for i, item in enumerate(ifaces)
        )
        names = [i.name for i in interfaces]
        if len(set(names)) != len(names):
            raise RunncError("interface names repeat", where=f"{where}.interfaces")
        dns = data.get("dns", {})
        if not isinstance(dns, dict):
            raise RunncError("expected a JSON object", where=f"{where}.dns")
        servers = check_list(dns.get("nameservers", []), f"{where}.dns.nameservers")
        nameservers = tuple(
            check_ip(s, f"{where}.dns.nameservers[{i}]") for i, s in enumerate(servers)
        )
        search = tuple(
            _domain(s, f"{where}.dns.search[{i}]")
            for i, s in enumerate(check_list(dns.get("search", []), f"{where}.dns.search"))
        )
        return cls(interfaces=interfaces, dns=DnsFacts(nameservers, search))


def parse_resolv_conf(text: str) -> DnsFacts:
    """resolv.conf(5) as the C library reads it: every `nameserver`, the last `search`/`domain`.

    Malformed nameserver lines are skipped, as glibc does, rather than failing the container.
    """
    servers: list[str] = []
    search: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        words = line.split()
        if len(words) < 2:
            continue
        key, values = words[0], words[1:]
        if key == "nameserver":
            addr = values[0].split("%", 1)[0]  # drop a link-local zone: the guest has no scopes
            try:
                servers.append(canonical_ip(addr)[0])
            except ValueError:
                continue
        elif key in ("search", "domain"):
            search = [v for v in values if is_domain(v)]
    return DnsFacts(nameservers=tuple(servers), search=tuple(search))


def _iface_to_dict(iface: InterfaceFacts) -> dict[str, Any]:
    return {
        "name": iface.name,
        "mac": iface.mac,
        "mtu": iface.mtu,
        "ipv4": [str(a) for a in iface.ipv4],
        "ipv6": [str(a) for a in iface.ipv6],
        "routes": [route_to_dict(r) for r in iface.routes],
    }


def route_to_dict(route: Route) -> dict[str, Any]:
    return {
        "dst": f"{route.dst}/{route.prefixlen}",
        "gateway": route.gateway,
        "dev": route.dev,
        "metric": route.metric,
        "proto": route.proto,
        "scope": route.scope,
        "onlink": route.onlink,
    }


def route_from_dict(data: Any, where: str) -> Route:
    if not isinstance(data, dict):
        raise RunncError("expected a JSON object", where=where)
    dst = address_from_text(data.get("dst"), f"{where}.dst")
    gateway = data.get("gateway")
    if gateway is not None:
        gateway = check_ip(gateway, f"{where}.gateway")
        if (":" in gateway) != (dst.family == 6):
            raise RunncError("gateway and destination are of different families", where=where)
    metric = data.get("metric")
    if metric is not None:
        metric = check_int(metric, f"{where}.metric", 0, 2**32 - 1)
    onlink = data.get("onlink", False)
    if not isinstance(onlink, bool):
        raise RunncError("expected true or false", where=f"{where}.onlink")
    return Route(
        dst=dst.addr,
        prefixlen=dst.prefixlen,
        gateway=gateway,
        dev=check_ifname(data.get("dev"), f"{where}.dev"),
        metric=metric,
        proto=check_int(data.get("proto", 3), f"{where}.proto", 0, 255),
        scope=check_int(data.get("scope", 0), f"{where}.scope", 0, 255),
        onlink=onlink,
    )


def _iface_from_dict(data: Any, where: str) -> InterfaceFacts:
    if not isinstance(data, dict):
        raise RunncError("expected a JSON object", where=where)
    name = check_ifname(data.get("name"), f"{where}.name")
    ipv4 = tuple(
        address_from_text(a, f"{where}.ipv4[{i}]", family=4)
        for i, a in enumerate(check_list(data.get("ipv4", []), f"{where}.ipv4"))
    )
    ipv6 = tuple(
        address_from_text(a, f"{where}.ipv6[{i}]", family=6)
        for i, a in enumerate(check_list(data.get("ipv6", []), f"{where}.ipv6"))
    )
    routes = tuple(
        route_from_dict(r, f"{where}.routes[{i}]")
        for i, r in enumerate(check_list(data.get("routes", []), f"{where}.routes"))
    )
    for i, route in enumerate(routes):
        if route.dev != name:
            raise RunncError(
                f"route is on {route.dev!r}, not {name!r}", where=f"{where}.routes[{i}]"
            )
    return InterfaceFacts(
        name=name,
        mac=mac_from_text(data.get("mac"), f"{where}.mac"),
        mtu=check_int(data.get("mtu"), f"{where}.mtu", MIN_MTU, MAX_MTU),
        ipv4=ipv4,
        ipv6=ipv6,
        routes=routes,
    )


def address_from_text(text: Any, where: str, family: int | None = None) -> Address:
    """`"10.0.0.2/24"` -> Address, canonicalised (IPv6 compressed, lower case)."""
    if not isinstance(text, str) or "/" not in text:
        raise RunncError(f"{text!r} is not ADDRESS/PREFIXLEN", where=where)
    addr_text, _, plen_text = text.partition("/")
    try:
        addr, version = canonical_ip(addr_text)
    except ValueError:
        raise RunncError(f"{addr_text!r} is not an IP address", where=where) from None
    if family is not None and version != family:
        raise RunncError(f"{text!r} is not an IPv{family} address", where=where)
    if not is_decimal(plen_text) or int(plen_text) > (32 if version == 4 else 128):
        raise RunncError(f"{plen_text!r} is not a prefix length for {addr_text}", where=where)
    return Address(addr, int(plen_text))


def mac_from_text(text: Any, where: str) -> str:
    if not isinstance(text, str) or not is_mac(text.lower()):
        raise RunncError(f"{text!r} is not a MAC address (xx:xx:xx:xx:xx:xx)", where=where)
    return text.lower()


def check_ifname(text: Any, where: str) -> str:
    # Linux's dev_valid_name(): 1..15 bytes, no '/', ':' or whitespace, not "." or "..".
    if (
        not isinstance(text, str)
        or not 0 < len(text.encode()) <= 15
        or text in (".", "..")
        or any(c in text for c in "/: \t\n")
    ):
        raise RunncError(f"{text!r} is not an interface name", where=where)
    return text


def check_ip(text: Any, where: str) -> str:
    try:
        return canonical_ip(text)[0]
    except ValueError:
        raise RunncError(f"{text!r} is not an IP address", where=where) from None


def _domain(text: Any, where: str) -> str:
    if not isinstance(text, str) or not is_domain(text):
        raise RunncError(f"{text!r} is not a domain name", where=where)
    return text


def check_int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RunncError(f"{value!r} is not an integer in {low}..{high}", where=where)
    return value


def check_list(value: Any, where: str) -> Iterable[Any]:
    if not isinstance(value, list):
        raise RunncError("expected a JSON array", where=where)
    return value
