"""Handing the network of the namespace we run in to a unikernel's free manifest devices.

One path for both callers: `create`'s init (a container's network, recorded in net.json for
`delete`) and `runnc-py exec --net-auto` (an ad-hoc guest, unwired by its supervisor).

    names = free_net_devices(image.manifest, request.nets)   # pure: manifest order
    if names and has_interfaces():                            # cheap: no pyroute2 import
        handed = hand_over(request, names, kind=..., netns=..., resolv_conf=...)
        ...                                                   # handed.request attaches the taps
        unwire(handed.record.wired)                           # on failure / at the end

Only `free_net_devices` and `has_interfaces` run for every container, so this module imports
nothing else at load time. The guest's configuration is rendered before anything is wired, so
a network the chosen renderer cannot express changes nothing; after `wire` the only failure
left is building the request, and that unwires before raising.
"""

from __future__ import annotations

from runnc_py.errors import RunncError
from runnc_py.record import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from runnc_py.monitor.launch import LaunchRequest
    from runnc_py.net.cmdline import GuestLine
    from runnc_py.net.store import NetRecord
    from runnc_py.unikernel.manifest import Manifest

PROC_NET_DEV = "/proc/self/net/dev"  # per network namespace: the reader's own


class Handover(FrozenRecord):
    """What `hand_over` did: the request that attaches the taps, and the record to keep."""

    __slots__ = ("record", "request")
    request: LaunchRequest
    record: NetRecord

    def __init__(self, request: LaunchRequest, record: NetRecord) -> None:
        self._set(request=request, record=record)


def free_net_devices(manifest: Manifest, attached: Iterable[str]) -> tuple[str, ...]:
    """The manifest's network devices that nothing attaches yet, in manifest order. Pure."""
    from runnc_py.unikernel.manifest import DeviceType

    taken = set(attached)
    return tuple(
        e.name for e in manifest.devices() if e.type == DeviceType.NET_BASIC and e.name not in taken
    )


def interface_names(proc_net_dev: str) -> list[str]:
    """Interface names in the text of /proc/net/dev (two header lines, then `name: counters`)."""
    return [line.split(":", 1)[0].strip() for line in proc_net_dev.splitlines()[2:] if ":" in line]


def has_interfaces(path: str = PROC_NET_DEV) -> bool:
    """True when our network namespace has any link but `lo`.

    Only a cheap first look, so a container on `--network none` never imports pyroute2:
    `read_facts` decides which links count (Ethernet, not a tap).
    """
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return True  # let read_facts look properly
    return any(name != "lo" for name in interface_names(text))


def hand_over(
    req: LaunchRequest,
    names: Sequence[str],
    *,
    kind: str,
    line: GuestLine | None = None,
    netns: str | None = None,
    resolv_conf: str | None = None,
    owner: int | None = None,
    group: int | None = None,
    state_dir: str | None = None,
) -> Handover:
    """Wire our namespace's interfaces to the guest devices NAMES; the request that uses them.

    NETNS is the path the record keeps for a later `unwire` from another process (None: only
    this process's namespace, i.e. unwired by the same process). The guest devices get, in
    facts order (the default route's interface first), a tap each, the interface's MAC (unless
    the request already gives one); the request's arguments become LINE (default: the
    request's own arguments, no environment) with the configuration of KIND, encoded for the
    guest family that parses KIND (runnc_py.net.cmdline).
    Raises RunncError, with nothing left wired, when there is no interface, more interfaces
    than NAMES, or a network KIND cannot express.
    STATE_DIR (a container's) gets net.json before each wiring step (a crash leaves a record
    `delete` can undo), and a stale half-wiring of a dead `create` under the same root is
    repaired first (runnc_py.net.repair).
    """
    from runnc_py.net.cmdline import GuestLine, guest_words
    from runnc_py.net.config import guest_config
    from runnc_py.net.read import read_facts
    from runnc_py.net.store import NetRecord, journal
    from runnc_py.net.wiring import unwire, wire

    if state_dir is not None:
        from runnc_py.net.repair import repair_stale_wiring

        repair_stale_wiring(state_dir)
    facts = read_facts(None, resolv_conf)
    where = netns or "network namespace"
    if not facts.interfaces:
        raise RunncError("no network interface to hand to the guest (only lo?)", where=where)
    if len(facts.interfaces) > len(names):
        raise RunncError(
            f"{len(facts.interfaces)} interfaces but the guest has {len(names)} free network "
            f"device(s) ({', '.join(names)})",
            where=where,
        )
    used = list(names[: len(facts.interfaces)])
    args = guest_words(kind, line or GuestLine(args=req.args), facts, device_names=used)
    text = guest_config(facts, kind, device_names=used)
    save = None if state_dir is None else journal(state_dir, facts, kind, text)
    wired = wire(netns, facts, max_devices=len(names), owner=owner, group=group, journal=save)
    try:
        # The record names the devices as the guest's manifest does (`net show`).
        wired = wired.replace(
            devices=tuple(
                nic._replace(guest_device=name)
                for name, nic in zip(used, wired.devices, strict=True)
            ),
        )
        nics = dict(zip(used, wired.devices, strict=True))
        request = req.replace(
            nets={**req.nets, **{name: nic.tap for name, nic in nics.items()}},
            # An explicit MAC (annotation, --net-mac) wins: the user asked for it.
            net_macs={**{name: nic.mac for name, nic in nics.items()}, **req.net_macs},
            args=args,
        )
    except BaseException:
        unwire(wired)
        raise
    return Handover(request, NetRecord(facts, wired, kind, text))
