"""LKL's JSON configuration, rendered from network facts and checked before the guest sees it.

Two dialects of `tools/lkl/lib/config.c`:

* `nabla` (default): the frankenlibc/ukontainer port that Nabla's LKL unikernels use. Devices
  are `"type": "rumpfd"` found by `"name"` (the tender passes `__RUMP_FDINFO_NET_<name>=FD`);
  it adds `ifgateway`/`ifgateway6` (per-device policy routing), `route` and `delay_main`.
* `upstream`: lkl/linux itself. Devices are `"type": "tap"` opened by `"param"` (a tap name),
  no routes, and fewer than 16 interfaces (`ifnum >= LKL_IF_MAX` is refused). It sets an IPv4
  address only when `0 < masklen < 32`, so a /32 (Calico-style) address would silently be
  left out: we refuse it. The Nabla port takes `0 < masklen <= 32`.

Both parse with jsmn into 300 tokens, refuse unknown keys, and store values as raw text; the
Nabla port reads the file with one 4096-byte read. We check all of that here so a bad config is
our one-line error, not a guest that boots without a network. LKL calls its devices eth0, eth1,
... in config order and puts the global gateways on eth0.
"""

from __future__ import annotations

from runnc_py.errors import RunncError
from runnc_py.net.naming import SOLO5_MAX_DEVICES, guest_device_names, tap_name
from runnc_py.oci import fastjson
from runnc_py.record import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from runnc_py.net.facts import InterfaceFacts, NetworkFacts, Route

TOKEN_MAX = 300  # LKL_CONFIG_JSON_TOKEN_MAX
SIZE_MAX = 4095  # one read(fd, buf, 4096) in the Nabla port, which also needs the NUL
ROUTE_MAX = 255  # lkl_route_parse_add() copies `route` into char strings[256]

# Defaults the Nabla runtime always passed (DESIGN.md §3): mount /proc, pin LKL's threads to one
# CPU, give address assignment 50 ms to settle before main(), and keep LKL quiet.
NABLA_DEFAULTS: dict[str, str] = {
    "mount": "proc",
    "singlecpu": "1",
    "delay_main": "50000",
    "debug": "0",
}

_COMMON_TOP = frozenset(
    {
        "interfaces",
        "gateway",
        "gateway6",
        "debug",
        "mount",
        "singlecpu",
        "sysctl",
        "boot_cmdline",
        "dump",
    }
)
_COMMON_IFACE = frozenset(
    {
        "type",
        "param",
        "mtu",
        "ip",
        "ipv6",
        "mac",
        "masklen",
        "masklen6",
        "neigh",
        "qdisc",
        "offload",
    }
)


class Dialect(FrozenRecord):
    __slots__ = (
        "defaults",
        "device_key",
        "has_routes",
        "iface_keys",
        "iftype",
        "masklen_max",
        "max_interfaces",
        "name",
        "top_keys",
    )
    name: str
    top_keys: frozenset[str]
    iface_keys: frozenset[str]
    max_interfaces: int
    iftype: str
    device_key: str  # which key names the host device: "name" (rumpfd) or "param" (tap)
    has_routes: bool  # `route`, `ifgateway`, `ifgateway6`
    defaults: Mapping[str, str]
    masklen_max: int  # the longest IPv4 prefix the dialect configures (the shortest is 1)

    def __init__(
        self,
        *,
        name: str,
        top_keys: frozenset[str],
        iface_keys: frozenset[str],
        max_interfaces: int,
        iftype: str,
        device_key: str,
        has_routes: bool,
        defaults: Mapping[str, str],
        masklen_max: int,
    ) -> None:
        self._set(
            name=name,
            top_keys=top_keys,
            iface_keys=iface_keys,
            max_interfaces=max_interfaces,
            iftype=iftype,
            device_key=device_key,
            has_routes=has_routes,
            defaults=defaults,
            masklen_max=masklen_max,
        )


DIALECTS: dict[str, Dialect] = {
    "nabla": Dialect(
        name="nabla",
        top_keys=_COMMON_TOP | {"delay_main", "route"},
        iface_keys=_COMMON_IFACE | {"name", "ifgateway", "ifgateway6"},
        max_interfaces=SOLO5_MAX_DEVICES,  # its list has no limit; a Solo5 manifest does
        iftype="rumpfd",
        device_key="name",
        has_routes=True,
        defaults=NABLA_DEFAULTS,
        masklen_max=32,
    ),
    "upstream": Dialect(
        name="upstream",
        top_keys=_COMMON_TOP,
        iface_keys=_COMMON_IFACE,
        max_interfaces=15,  # LKL_IF_MAX is 16 and `ifnum >= LKL_IF_MAX` fails
        iftype="tap",
        device_key="param",
        has_routes=False,
        defaults={},
        masklen_max=31,  # config.c: `nmlen > 0 && nmlen < 32`
    ),
}


def render_lkl_json(
    facts: NetworkFacts,
    dialect: str = "nabla",
    *,
    device_names: Sequence[str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> str:
    """Facts -> compact LKL JSON, validated. `device_names` default: service0.. (nabla), taps
    (upstream). `extra` adds or overrides top-level keys such as `sysctl` or `debug`."""
    d = _dialect(dialect)
    where = f"lkl-json ({d.name})"
    ifaces = facts.interfaces
    if not ifaces:
        raise RunncError("no network interface to configure", where=where)
    if len(ifaces) > d.max_interfaces:
        raise RunncError(
            f"{len(ifaces)} interfaces; this dialect configures at most {d.max_interfaces}",
            where=where,
        )
    if device_names is None:
        names = (
            guest_device_names(len(ifaces))
            if d.device_key == "name"
            else tuple(tap_name(i.name) for i in ifaces)
        )
    else:
        names = tuple(device_names)
        if len(names) != len(ifaces):
            raise RunncError(f"{len(names)} device names for {len(ifaces)} interfaces", where=where)

    config: dict[str, Any] = {}
    for family, key in ((4, "gateway"), (6, "gateway6")):
        best = facts.gateway(family)
        if best is None:
            continue
        iface, gateway = best
        if iface.name != ifaces[0].name:
            raise RunncError(
                f"the IPv{family} default route goes through {iface.name}, but LKL puts its "
                f"default gateways on its first device ({ifaces[0].name})",
                where=where,
            )
        config[key] = gateway

    entries: list[dict[str, str]] = []
    routes: list[str] = []
    for index, (iface, device) in enumerate(zip(ifaces, names, strict=True)):
        entries.append(_interface(iface, device, index, d, where))
        routes += [_route_spec(r, ifaces) for r in iface.extra_routes()]
    config["interfaces"] = entries
    if routes:
        if not d.has_routes:
            raise RunncError(
                f"static route {_first_static(ifaces)} cannot be expressed in this dialect "
                "(it has no 'route' key)",
                where=where,
            )
        config["route"] = ";".join(routes)
    config.update(d.defaults)
    if extra:
        for key, value in extra.items():
            if key == "interfaces":
                raise RunncError("'interfaces' comes from the network facts", where=where)
            config[key] = value

    text = fastjson.dumps(config, separators=(",", ":"))
    validate_lkl_json(text, d.name)
    return text


def validate_lkl_json(text: str, dialect: str = "nabla") -> None:
    """Refuse what LKL's parser would refuse or truncate, with one line saying why."""
    d = _dialect(dialect)
    where = f"lkl-json ({d.name})"
    size = len(text.encode())
    if size > SIZE_MAX:
        raise RunncError(f"{size} bytes; the guest reads at most {SIZE_MAX}", where=where)
    config = _parse(text, where)
    if not isinstance(config, dict):
        raise RunncError("the top level must be a JSON object", where=where)
    tokens = json_tokens(config)
    if tokens > TOKEN_MAX:
        raise RunncError(f"{tokens} JSON tokens; LKL parses at most {TOKEN_MAX}", where=where)
    for key, value in config.items():
        if key not in d.top_keys:
            raise RunncError(f"unknown key {key!r}", where=where)
        if key == "interfaces":
            _check_interfaces(value, d, where)
        elif not isinstance(value, str):
            raise RunncError(f"{key!r} must be a string, not {_kind(value)}", where=where)
    route = config.get("route")
    if isinstance(route, str) and len(route.encode()) > ROUTE_MAX:
        raise RunncError(
            f"'route' is {len(route.encode())} bytes; LKL copies at most {ROUTE_MAX}", where=where
        )


def json_tokens(value: Any) -> int:
    """How many jsmn tokens a JSON value takes: each object, array, key, string, number is one."""
    if isinstance(value, dict):
        return 1 + sum(1 + json_tokens(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(json_tokens(v) for v in value)
    return 1


def _interface(
    iface: InterfaceFacts, device: str, index: int, d: Dialect, where: str
) -> dict[str, str]:
    entry = {"type": d.iftype, d.device_key: device, "mac": iface.mac, "mtu": str(iface.mtu)}
    for family, ip_key, len_key in ((4, "ip", "masklen"), (6, "ipv6", "masklen6")):
        addrs = iface.addresses(family)
        if len(addrs) > 1:
            raise RunncError(
                f"{iface.name} has {len(addrs)} IPv{family} addresses; LKL configures one per "
                "device",
                where=where,
            )
        if addrs:
            if family == 4:
                _check_masklen(addrs[0].prefixlen, f"{iface.name} {addrs[0]}", d, where)
            entry[ip_key] = addrs[0].addr
            entry[len_key] = str(addrs[0].prefixlen)
        # A device's own default route beyond the first device: LKL's per-device policy table
        # (traffic from that device's address leaves through that gateway), as multi-homed
        # Linux hosts do. The first device's default is the global `gateway`.
        # Without those keys (upstream) such a route is left out: a second default route never
        # wins over the first one anyway.
        own = iface.gateway(family)
        if own and index > 0 and d.has_routes:
            entry["ifgateway" if family == 4 else "ifgateway6"] = own
    return entry


def _first_static(ifaces: Sequence[InterfaceFacts]) -> str:
    return next(str(r) for i in ifaces for r in i.extra_routes())


def _route_spec(route: Route, ifaces: Sequence[InterfaceFacts]) -> str:
    """`dst/len=gateway` or `dst/len=ethN`, the form lkl_route_parse_add() reads."""
    if route.gateway:
        return f"{route.dst}/{route.prefixlen}={route.gateway}"
    index = next(i for i, f in enumerate(ifaces) if f.name == route.dev)
    return f"{route.dst}/{route.prefixlen}=eth{index}"


def _check_interfaces(value: Any, d: Dialect, where: str) -> None:
    if not isinstance(value, list):
        raise RunncError(f"'interfaces' must be an array, not {_kind(value)}", where=where)
    if len(value) > d.max_interfaces:
        raise RunncError(
            f"{len(value)} interfaces; this dialect configures at most {d.max_interfaces}",
            where=where,
        )
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise RunncError(f"interfaces[{i}] must be an object", where=where)
        for key, item in entry.items():
            if key not in d.iface_keys:
                raise RunncError(f"unknown key {key!r} in interfaces[{i}]", where=where)
            if not isinstance(item, str):
                raise RunncError(
                    f"interfaces[{i}].{key} must be a string, not {_kind(item)}", where=where
                )
        masklen = entry.get("masklen")
        if isinstance(masklen, str):
            if not (masklen.isascii() and masklen.isdigit()):
                raise RunncError(
                    f"interfaces[{i}].masklen {masklen!r} is not a prefix length", where=where
                )
            _check_masklen(int(masklen), f"interfaces[{i}]", d, where)


def _check_masklen(length: int, what: str, d: Dialect, where: str) -> None:
    """LKL silently configures no IPv4 address outside 0 < masklen <= the dialect's max."""
    if not 0 < length <= d.masklen_max:
        raise RunncError(
            f"{what}: IPv4 prefix length {length}; this dialect configures an address only for "
            f"1..{d.masklen_max} (the guest would boot without it)",
            where=where,
        )


def _parse(text: str, where: str) -> Any:
    """TEXT parsed, repeated keys refused; anything fastjson refuses is parsed again by
    `json` (only then imported), so the message is json's own."""
    try:
        return fastjson.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError):
        pass
    import json

    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError, _DuplicateKey) as exc:
        raise RunncError(f"not valid JSON: {exc}", where=where) from None


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # jsmn keeps both and config.c lets the last win silently; a repeated key is our bug.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"key {key!r} repeats")
        result[key] = value
    return result


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _dialect(name: str) -> Dialect:
    try:
        return DIALECTS[name]
    except KeyError:
        raise RunncError(
            f"unknown LKL dialect {name!r} (expected {' or '.join(DIALECTS)})", where="lkl-json"
        ) from None
