"""The container's network, handed to the unikernel.

Pure core (no root): `facts` (what a namespace holds), the renderers `lkl`, `solo5`, `rumprun`
and their dispatcher `config.guest_config`, `wired` (the undo journal as data), `store`
(net.json), `nlmsg` (the rtnetlink messages, as bytes). Effectful shell: `read.read_facts`,
`wiring.wire`, `wiring.unwire`, `repair` (over `rtnl`, our own small netlink client: pyroute2
alone takes 140-185 ms to import, so only the tests use it, as an independent oracle).
`handover` joins them for `create` and `exec --net-auto`.

    facts = read_facts("/proc/PID/ns/net", "ROOTFS/etc/resolv.conf")
    wired = wire("/proc/PID/ns/net", facts, max_devices=len(manifest_nets))
    text = guest_config(facts, config_kind(annotations, default="solo5-cmdline"))
    ...
    unwire(wired)            # or unwire(store.load(state_dir).wired)

See docs/net.md.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `typing`: create imports this package for every container
if TYPE_CHECKING:
    from typing import Any

    from runnc_py.net.config import CONFIG_ANNOTATION, CONFIG_KINDS, config_kind, guest_config
    from runnc_py.net.facts import Address, DnsFacts, InterfaceFacts, NetworkFacts, Route
    from runnc_py.net.naming import guest_device_name, tap_name
    from runnc_py.net.read import read_facts
    from runnc_py.net.wired import GuestNic, WiredNetwork
    from runnc_py.net.wiring import unwire, wire

__all__ = [
    "CONFIG_ANNOTATION",
    "CONFIG_KINDS",
    "Address",
    "DnsFacts",
    "GuestNic",
    "InterfaceFacts",
    "NetworkFacts",
    "Route",
    "WiredNetwork",
    "config_kind",
    "guest_config",
    "guest_device_name",
    "read_facts",
    "tap_name",
    "unwire",
    "wire",
]

# Everything is imported on first use: `create` imports runnc_py.net.handover for every
# container and must not pay for the renderers or the netlink client when nothing is wired.
_LAZY = {
    "CONFIG_ANNOTATION": "runnc_py.net.config",
    "CONFIG_KINDS": "runnc_py.net.config",
    "config_kind": "runnc_py.net.config",
    "guest_config": "runnc_py.net.config",
    "Address": "runnc_py.net.facts",
    "DnsFacts": "runnc_py.net.facts",
    "InterfaceFacts": "runnc_py.net.facts",
    "NetworkFacts": "runnc_py.net.facts",
    "Route": "runnc_py.net.facts",
    "guest_device_name": "runnc_py.net.naming",
    "tap_name": "runnc_py.net.naming",
    "GuestNic": "runnc_py.net.wired",
    "WiredNetwork": "runnc_py.net.wired",
    "read_facts": "runnc_py.net.read",
    "wire": "runnc_py.net.wiring",
    "unwire": "runnc_py.net.wiring",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'runnc_py.net' has no attribute {name!r}")
