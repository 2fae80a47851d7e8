"""rumprun's JSON configuration (`lib/librumprun_base/config.c`), the network part.

Each `"net"` object configures one address: `if`, `cloner`, `type` (`inet` | `inet6`),
`method` (`static`), `addr`, `mask` (a prefix length, read with atoi), `gw`; every value must be a
JSON string and unknown keys stop the guest. rumprun walks the top-level keys in order and runs
its `net` handler for each one (the "only 1 net" guard in that handler is never armed), so
several addresses are several `"net"` keys: legal for jsmn, which is why this renderer writes
text instead of a Python dict. On Solo5 (Nabla's port) the devices are `ukvmif0`, `ukvmif1`...
and must be created first (`"cloner": "True"`, once per device). `gw` installs the global
default route, so only the device carrying the container's default route gets one.
"""

from __future__ import annotations

from runnc_py.errors import RunncError
from runnc_py.oci import fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runnc_py.net.facts import NetworkFacts

IF_PREFIX = "ukvmif"
WHERE = "rumprun-json"


def render_rumprun_json(
    facts: NetworkFacts, *, cmdline: str | None = None, if_prefix: str = IF_PREFIX
) -> str:
    """`{"cmdline": ..., "net": {...}, "net": {...}}`; `cmdline` is left out when None.

    CMDLINE is written as rumprun reads it, raw (jsmn undoes no JSON escape): the words of a
    container's command line are encoded by runnc_py.net.cmdline, not here.
    """
    members: list[str] = []
    if cmdline is not None:
        members.append(f'"cmdline":"{cmdline}"')
    return "{" + ",".join([*members, *net_members(facts, if_prefix)]) + "}"


def net_members(facts: NetworkFacts, if_prefix: str = IF_PREFIX) -> list[str]:
    """One `"net":{...}` member per address, devices created by their first one."""
    if not facts.interfaces:
        raise RunncError("no network interface to configure", where=WHERE)
    default_dev = {f: g[0].name for f in (4, 6) if (g := facts.gateway(f))}
    members: list[str] = []
    for index, iface in enumerate(facts.interfaces):
        if not iface.ipv4 and not iface.ipv6:
            raise RunncError(
                f"{iface.name} has no IP address; rumprun's static configuration needs one",
                where=WHERE,
            )
        extra = iface.extra_routes()
        if extra:
            raise RunncError(
                f"static route {extra[0]} cannot be expressed (rumprun has no route key)",
                where=WHERE,
            )
        cloner = True
        for family, kind in ((4, "inet"), (6, "inet6")):
            for addr in iface.addresses(family):
                net = {"if": f"{if_prefix}{index}"}
                if cloner:
                    net["cloner"] = "True"
                    cloner = False
                net |= {
                    "type": kind,
                    "method": "static",
                    "addr": addr.addr,
                    "mask": str(addr.prefixlen),
                }
                gateway = iface.gateway(family)
                if gateway and default_dev.get(family) == iface.name:
                    net["gw"] = gateway
                    default_dev.pop(family)  # one default route per family
                members.append('"net":' + fastjson.dumps(net, separators=(",", ":")))
    return members
