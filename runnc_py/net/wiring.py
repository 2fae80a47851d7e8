"""Handing the container's interfaces to the guest: a tap per interface, joined by tc.

For each interface, inside the container's own network namespace:

1. a persistent tap (`IFF_TAP | IFF_NO_PI`, what the Solo5 tenders open) at an ifindex chosen
   and journaled beforehand, with the interface's MTU, no IPv6 link-local address of its own
   (addrgenmode none: the host stack must not talk to the guest), and up;
2. an ingress qdisc on both devices, each with a u32 match-all filter whose action is
   `mirred egress redirect` to the other: every frame the engine's veth delivers goes to the
   guest and every frame the guest writes goes out the veth, untouched. No bridge, so the
   guest's MAC (the interface's) is the only one the network sees and ARP/NDP just work;
3. the interface's addresses taken off (the kernel then drops their routes), so the namespace's
   own stack neither answers nor sends in the guest's place.

Crash consistency: every step that leaves something behind is first written to the journal
(`IfaceUndo`, saved by the caller's `journal`, i.e. net.json) and only then done, so kill -9 at
any point leaves a record naming everything that may exist. `unwire` (unwiring.py: the
rollback of a failed `wire`, `delete`, a later `create`'s repair) undoes only what it can
prove ours, and reports anything else a record names in one line.

Netlink goes through `rtnl`/`nlmsg` (no pyroute2). The kernel here has no `matchall`
classifier, hence u32.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from _socket import if_nametoindex  # `socket` itself costs ~2 ms

from runnc_py.errors import RunncError
from runnc_py.net import nlmsg
from runnc_py.net.crashpoint import crash_point
from runnc_py.net.facts import NetworkFacts
from runnc_py.net.naming import (
    SOLO5_MAX_DEVICES,
    TAP_INDEX_BASE,
    TAP_INDEX_SPAN,
    guest_device_name,
    tap_name,
)
from runnc_py.net.netns import SELF, netns_id, open_netns, run_in_netns
from runnc_py.net.nlmsg import (
    NLM_F_CREATE,
    NLM_F_EXCL,
    RTM_DELADDR,
    RTM_NEWLINK,
    RTM_NEWQDISC,
    RTM_NEWTFILTER,
)
from runnc_py.net.owner import process_identity
from runnc_py.net.read import dump_addresses, dump_routes
from runnc_py.net.rtnl import Rtnl
from runnc_py.net.unwiring import GONE, Seen, look, undo_all, unwire
from runnc_py.net.wired import GuestNic, IfaceUndo, WiredNetwork
from runnc_py.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Journal = Callable[[WiredNetwork], None]

__all__ = ["unwire", "wire"]  # unwire: unwiring.py, here for the callers' sake

TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
TUNSETOWNER = 0x400454CC
TUNSETGROUP = 0x400454CE
TUNSETIFINDEX = 0x400454DA  # the ifindex the next TUNSETIFF gives its new device (CRIU's)
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_TUN_EXCL = 0x8000  # fail with EBUSY when the name is taken, instead of attaching to it
_TAP_ATTEMPTS = 8  # draws of a free ifindex (see naming.TAP_INDEX_BASE)


def wire(
    netns: str | None,
    facts: NetworkFacts,
    *,
    max_devices: int = SOLO5_MAX_DEVICES,
    owner: int | None = None,
    group: int | None = None,
    journal: Journal | None = None,
) -> WiredNetwork:
    """Give every interface in `facts` a tap joined to it; return the guest devices + undo log.

    `max_devices` is how many network devices the guest has (its manifest). `owner`/`group`
    (uid/gid) restrict who may attach to the taps without CAP_NET_ADMIN (a persistent tap with
    neither is open to anyone who can reach it): pass the container's user. `journal(record)`
    is called with the growing record before each step that leaves something behind (save it
    where a later `unwire` finds it). On failure nothing is left behind and a RunncError says
    what went wrong.
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
        log = _Journal(netns, netns_id(nsfd), process_identity() or f"{os.getpid()}:0", journal)
        try:
            run_in_netns(netns, lambda: _wire_all(facts, log, where, (owner, group)), fd=nsfd)
        except BaseException as exc:
            _roll_back(netns, nsfd, log, where, exc)
            raise
        log.checkpoint()  # after the last step
        return log.record()
    finally:
        os.close(nsfd)


class _Journal(Record):
    """The undo log while `wire` runs; `record()` snapshots it as an immutable WiredNetwork."""

    __slots__ = ("checkpoints", "devices", "netns", "netns_id", "owner", "save", "undo")
    netns: str | None
    netns_id: str
    owner: str
    save: Journal | None
    devices: list[GuestNic]
    undo: list[IfaceUndo]
    checkpoints: int

    def __init__(self, netns: str | None, netns_id: str, owner: str, save: Journal | None) -> None:
        self.netns, self.netns_id, self.owner, self.save = netns, netns_id, owner, save
        self.devices, self.undo, self.checkpoints = [], [], 0

    def record(self) -> WiredNetwork:
        return WiredNetwork(
            self.netns, self.netns_id, tuple(self.devices), tuple(self.undo), self.owner
        )

    def intend(self, **changes: Any) -> None:
        """Record what the next step will do to the current interface, save, then go on."""
        self.undo[-1] = self.undo[-1].replace(**changes)
        if self.save is not None:
            self.save(self.record())
        self.checkpoint()

    def checkpoint(self) -> None:
        self.checkpoints += 1
        crash_point("wire", self.checkpoints)


def _roll_back(netns: str | None, nsfd: int, log: _Journal, where: str, exc: BaseException) -> None:
    """Undo a failed `wire` and turn its error into a RunncError (a non-OSError re-raises)."""
    try:
        run_in_netns(netns, lambda: undo_all(log.record(), where), fd=nsfd)
    except RunncError as undo_exc:
        raise RunncError(
            f"{_message(exc)}; rollback also failed: {undo_exc.message}", where=where
        ) from exc
    if isinstance(exc, OSError) and not isinstance(exc, RunncError):
        raise RunncError(f"wiring failed: {_message(exc)}", where=where) from exc


# ------------------------------------------------------------------------------------ wiring


def _wire_all(
    facts: NetworkFacts, log: _Journal, where: str, owner: tuple[int | None, int | None]
) -> None:
    with Rtnl() as rtnl:
        # One snapshot of what is there now (facts may be a moment old), taken before we touch
        # anything: these are the addresses and routes to put back, and the refusals.
        seen = look(rtnl)
        indexes = {i.name: _index_of(seen, i.name, where) for i in facts.interfaces}
        _refuse_conflicts(seen, facts, indexes, where)
        addresses = dump_addresses(rtnl, set(indexes.values()))
        routes = dump_routes(rtnl, {v: k for k, v in indexes.items()})
        for n, iface in enumerate(facts.interfaces):
            index = indexes[iface.name]
            log.undo.append(IfaceUndo(iface=iface.name, iface_index=index))
            tap, tap_index = _make_tap(rtnl, log, tap_name(iface.name), iface.mtu, where, owner)
            _redirect(rtnl, tap_index, to=index, dev=tap, where=where)
            log.intend(ingress=True)
            _redirect(rtnl, index, to=tap_index, dev=iface.name, where=where)
            taken = tuple(addresses.get(index, []))
            log.intend(addresses=taken, routes=tuple(routes.get(index, [])))
            for record in reversed(taken):  # secondaries first: a primary takes them along
                body = nlmsg.address(index, record.address.addr, record.address.prefixlen)
                _call(rtnl, RTM_DELADDR, body, iface.name, where, ignore=GONE)
            log.devices.append(
                GuestNic(guest_device_name(n), tap, iface.mac, iface.mtu, iface.name)
            )


def _refuse_conflicts(seen: Seen, facts: NetworkFacts, indexes: dict[str, int], where: str) -> None:
    """Refuse before any change: a taken tap name, an interface with an ingress qdisc."""
    for iface in facts.interfaces:
        if seen.by_name(tap_name(iface.name)) is not None:
            raise RunncError(f"a device named {tap_name(iface.name)} already exists", where=where)
        if indexes[iface.name] in seen.ingress:
            raise RunncError(
                f"{iface.name} already has an ingress qdisc; refusing to take it over", where=where
            )


def _make_tap(
    rtnl: Rtnl,
    log: _Journal,
    name: str,
    mtu: int,
    where: str,
    owner: tuple[int | None, int | None],
) -> tuple[str, int]:
    """Journal, then create the tap at a fresh ifindex; set its MTU, no link-local, up."""
    for _attempt in range(_TAP_ATTEMPTS):
        index = TAP_INDEX_BASE + int.from_bytes(os.urandom(4), "little") % TAP_INDEX_SPAN
        log.intend(tap=name, tap_index=index)
        if _create_tap(name, index, where, *owner):
            break
    else:
        raise RunncError(f"creating tap {name}: no free ifindex found", where=where)
    change = nlmsg.link_change(index, mtu=mtu, no_link_local=True)
    _call(rtnl, RTM_NEWLINK, change, name, where, ignore={errno.EAFNOSUPPORT})
    _call(rtnl, RTM_NEWLINK, nlmsg.link_change(index, up=True), name, where)
    return name, index


def _create_tap(
    name: str, index: int, where: str, uid: int | None = None, gid: int | None = None
) -> bool:
    """A persistent tap `name` at ifindex `index` in the calling thread's namespace.

    False when `index` is taken (draw another); RunncError when the name is."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFINDEX, struct.pack("=I", index))
        ifr = struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI | IFF_TUN_EXCL)
        try:
            fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError as exc:
            if exc.errno == errno.EBUSY and not _name_taken(name):
                return False
            if exc.errno == errno.EBUSY:
                raise RunncError(f"a device named {name} already exists", where=where) from None
            raise RunncError(f"creating tap {name}: {exc.strerror}", where=where) from None
        if uid is not None:
            fcntl.ioctl(fd, TUNSETOWNER, uid)
        if gid is not None:
            fcntl.ioctl(fd, TUNSETGROUP, gid)
        fcntl.ioctl(fd, TUNSETPERSIST, 1)  # outlive this fd; the launcher opens it by name
        return True
    finally:
        os.close(fd)


def _redirect(rtnl: Rtnl, index: int, *, to: int, dev: str, where: str) -> None:
    """Ingress qdisc on `index` + u32 match-all -> mirred redirect to `to`."""
    try:
        rtnl.call(RTM_NEWQDISC, nlmsg.ingress_qdisc(index), NLM_F_CREATE | NLM_F_EXCL)
    except OSError as exc:
        if exc.errno == errno.EEXIST:  # appeared since we looked
            raise RunncError(
                f"{dev} already has an ingress qdisc; refusing to take it over", where=where
            ) from None
        raise RunncError(
            f"adding an ingress qdisc for {dev}: {exc.strerror}", where=where
        ) from None
    body = nlmsg.redirect_filter(index, to)
    _call(rtnl, RTM_NEWTFILTER, body, dev, where, flags=NLM_F_CREATE | NLM_F_EXCL)


# ------------------------------------------------------------------------------------ helpers


def _call(
    rtnl: Rtnl,
    msg_type: int,
    body: bytes,
    dev: str,
    where: str,
    *,
    flags: int = 0,
    ignore: set[int] | frozenset[int] = frozenset(),
) -> None:
    try:
        rtnl.call(msg_type, body, flags)
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


def _index_of(seen: Seen, name: str, where: str) -> int:
    link = seen.by_name(name)
    if link is None:
        raise RunncError(f"no interface named {name}", where=where)
    return link.index


def _name_taken(name: str) -> bool:
    """Whether a link `name` exists in this thread's namespace (sysfs would show the mount's)."""
    try:
        if_nametoindex(name)
    except OSError:
        return False
    return True


def _message(exc: BaseException) -> str:
    if isinstance(exc, RunncError):
        return exc.line()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
