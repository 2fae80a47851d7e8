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
any point leaves a record naming everything that may exist. `unwire` (the in-process rollback,
`delete`, a later `create`'s repair) undoes only what it can prove ours: the tap is the link
at the journaled ifindex, with the journaled name, of kind tun, in the namespace with the
journaled dev:inode; the interface's ingress qdisc is removed only when its filters redirect to
that tap; addresses go back onto the journaled ifindex, before the tap (the proof) goes last.
Anything else named by a record is left alone and reported in one line.

Netlink goes through `rtnl`/`nlmsg` (no pyroute2). The kernel here has no `matchall`
classifier, hence u32.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from _socket import if_nametoindex  # `socket` itself costs ~2 ms
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from runnc_py.errors import RunncError
from runnc_py.net import nlmsg
from runnc_py.net.facts import NetworkFacts, Route
from runnc_py.net.naming import SOLO5_MAX_DEVICES, guest_device_name, tap_name
from runnc_py.net.netns import SELF, netns_id, open_netns, run_in_netns
from runnc_py.net.nlmsg import (
    IFA_F_NODAD,
    NLM_F_CREATE,
    NLM_F_EXCL,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELQDISC,
    RTM_GETQDISC,
    RTM_GETTFILTER,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWQDISC,
    RTM_NEWROUTE,
    RTM_NEWTFILTER,
    TC_H_INGRESS,
    TCMSG,
)
from runnc_py.net.owner import process_identity
from runnc_py.net.read import dump_addresses, dump_raw_links, dump_routes
from runnc_py.net.rtnl import Rtnl
from runnc_py.net.wired import AddressRecord, GuestNic, IfaceUndo, WiredNetwork

TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
TUNSETOWNER = 0x400454CC
TUNSETGROUP = 0x400454CE
TUNSETIFINDEX = 0x400454DA  # the ifindex the next TUNSETIFF gives its new device (CRIU's)
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_TUN_EXCL = 0x8000  # fail with EBUSY when the name is taken, instead of attaching to it
# Address flags a user may set (iproute2 passes these); the rest are the kernel's own state.
IFA_USER_FLAGS = 0x02 | 0x04 | 0x10 | 0x100 | 0x200 | 0x400
# Tap ifindexes are drawn at random from here: journaled before the tap exists, so they must
# not be taken, and a stale record must not name a later tap that reused its number.
TAP_INDEX_BASE, TAP_INDEX_SPAN = 0x10000, 0x1000000
_TAP_ATTEMPTS = 8
# "Nothing to undo" answers: the thing is already gone (or already back).
_GONE = frozenset({errno.ENODEV, errno.ENOENT, errno.EADDRNOTAVAIL, errno.ESRCH})
# Test hook: "N" SIGKILLs this process at the N-th journal checkpoint (1 = right after the
# first intent is saved, before its step; the last one is after the last step), "N:stop"
# SIGSTOPs it there so a test can kill -9 it and its parent: deterministic crashes that prove
# `delete --force` undoes any half-wiring.
CRASH_AT_ENV = "RUNNC_PY_TEST_NET_CRASH_AT"

Journal = Callable[[WiredNetwork], None]


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


def unwire(wired: WiredNetwork | dict[str, Any]) -> None:
    """Undo `wire`: tc filters and taps removed, addresses and routes restored.

    Safe to repeat, and safe on a record cut short by a crash. When the namespace no longer
    exists (or its path now names a different namespace, e.g. a reused /proc/PID), the taps and
    filters died with it: nothing to do. What the record names but cannot be proven ours is left
    alone; that, and any failure, is reported in one RunncError after every step was tried.
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
        run_in_netns(wired.netns, lambda: _undo_all(wired, wired.netns or "unwire"), fd=nsfd)
    finally:
        os.close(nsfd)


@dataclass
class _Journal:
    """The undo log while `wire` runs; `record()` snapshots it as an immutable WiredNetwork."""

    netns: str | None
    netns_id: str
    owner: str
    save: Journal | None
    devices: list[GuestNic] = field(default_factory=list)
    undo: list[IfaceUndo] = field(default_factory=list)
    checkpoints: int = 0

    def record(self) -> WiredNetwork:
        return WiredNetwork(
            self.netns, self.netns_id, tuple(self.devices), tuple(self.undo), self.owner
        )

    def intend(self, **changes: Any) -> None:
        """Record what the next step will do to the current interface, save, then go on."""
        self.undo[-1] = replace(self.undo[-1], **changes)
        if self.save is not None:
            self.save(self.record())
        self.checkpoint()

    def checkpoint(self) -> None:
        self.checkpoints += 1
        hook = os.environ.get(CRASH_AT_ENV)
        if hook and hook.split(":")[0] == str(self.checkpoints):
            os.kill(os.getpid(), 19 if hook.endswith(":stop") else 9)  # SIGSTOP / SIGKILL


def _roll_back(netns: str | None, nsfd: int, log: _Journal, where: str, exc: BaseException) -> None:
    """Undo a failed `wire` and turn its error into a RunncError (a non-OSError re-raises)."""
    try:
        run_in_netns(netns, lambda: _undo_all(log.record(), where), fd=nsfd)
    except RunncError as undo_exc:
        raise RunncError(
            f"{_message(exc)}; rollback also failed: {undo_exc.message}", where=where
        ) from exc
    if isinstance(exc, OSError) and not isinstance(exc, RunncError):
        raise RunncError(f"wiring failed: {_message(exc)}", where=where) from exc


# ------------------------------------------------------------------------------------ wiring


@dataclass(frozen=True)
class _Seen:
    """What the namespace holds now: links by ifindex, and the ifindexes with an ingress qdisc."""

    links: dict[int, nlmsg.Link]
    ingress: frozenset[int]

    def by_name(self, name: str) -> nlmsg.Link | None:
        return next((link for link in self.links.values() if link.name == name), None)


def _look(rtnl: Rtnl) -> _Seen:
    ingress = frozenset(
        index
        for _family, index, _handle, parent, _info in (
            TCMSG.unpack_from(body) for body in rtnl.dump(RTM_GETQDISC)
        )
        if parent == TC_H_INGRESS
    )
    return _Seen({link.index: link for link in dump_raw_links(rtnl)}, ingress)


def _wire_all(
    facts: NetworkFacts, log: _Journal, where: str, owner: tuple[int | None, int | None]
) -> None:
    with Rtnl() as rtnl:
        # One snapshot of what is there now (facts may be a moment old), taken before we touch
        # anything: these are the addresses and routes to put back, and the refusals.
        seen = _look(rtnl)
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
                _call(rtnl, RTM_DELADDR, body, iface.name, where, ignore=_GONE)
            log.devices.append(
                GuestNic(guest_device_name(n), tap, iface.mac, iface.mtu, iface.name)
            )


def _refuse_conflicts(
    seen: _Seen, facts: NetworkFacts, indexes: dict[str, int], where: str
) -> None:
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


# ------------------------------------------------------------------------------------ undoing


def _undo_all(wired: WiredNetwork, where: str) -> None:
    """Undo every interface's record, last first; keep going past failures, report them."""
    problems: list[str] = []
    with Rtnl() as rtnl:
        seen = _look(rtnl)
        for undo in reversed(wired.undo):
            problems += _undo_one(rtnl, seen, undo)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise RunncError(f"could not undo the wiring: {problems[0]}{more}", where=where)


def _undo_one(rtnl: Rtnl, seen: _Seen, undo: IfaceUndo) -> list[str]:
    if undo.tap is None:
        return []  # not even the tap was started: nothing else was
    if undo.tap_index is None:  # a record from before taps had a recorded index
        return [
            f"{undo.tap} has no recorded ifindex, so nothing proves it is the tap we created: "
            f"left it and {undo.iface} alone"
        ]
    tap = seen.links.get(undo.tap_index)
    if tap is not None and not looks_like_ours(tap, undo):
        return [
            f"ifindex {tap.index} is {tap.name} ({_describe(tap)}), not the tap "
            f"{undo.tap} we created: left it and {undo.iface} alone"
        ]
    iface = seen.links.get(undo.iface_index) if undo.iface_index else None
    if iface is not None and iface.name != undo.iface:
        iface = None  # the ifindex now names something else: nothing to give back to
    if tap is None:
        # Never created, or removed by an earlier unwire (the tap goes last): either way, the
        # rest is done, unless someone else removed the tap; then nothing proves it ours.
        if iface is None or _addresses_back(rtnl, iface.index, undo):
            return []
        return [f"{undo.tap} is gone, so nothing proves {undo.iface} was wired by us: left alone"]
    failures: list[str] = []
    if undo.ingress and iface is not None and iface.index in seen.ingress:
        failures += _remove_ingress(rtnl, iface, tap.index)
    if iface is not None:
        failures += _restore(rtnl, iface.index, undo)
    delete = nlmsg.link_by_index(tap.index)
    failures += _attempt(rtnl, f"deleting tap {undo.tap}", RTM_DELLINK, delete)
    return failures


def looks_like_ours(link: nlmsg.Link, undo: IfaceUndo) -> bool:
    """The link a record names as its tap is one `wire` made: the recorded name, kind tun, a
    persistent tap, at a recorded index from the range we draw them from."""
    if undo.tap_index is None or not (
        TAP_INDEX_BASE <= undo.tap_index < TAP_INDEX_BASE + TAP_INDEX_SPAN
    ):
        return False
    return (
        link.name == undo.tap
        and link.kind == "tun"
        and link.tun.get(nlmsg.IFLA_TUN_TYPE) == IFF_TAP
        and link.tun.get(nlmsg.IFLA_TUN_PERSIST) == 1
    )


def _describe(link: nlmsg.Link) -> str:
    if link.kind == "tun":
        return "a tun device" if link.tun.get(nlmsg.IFLA_TUN_TYPE) != IFF_TAP else "a tap"
    return link.kind or "no kind"


def _remove_ingress(rtnl: Rtnl, iface: nlmsg.Link, tap_index: int) -> list[str]:
    """Remove `iface`'s ingress qdisc (and its filters) if every filter is our redirect."""
    filters = [
        nlmsg.decode_filter(body)
        for body in rtnl.dump(RTM_GETTFILTER, nlmsg.filters_of(iface.index))
    ]
    ours = all(
        f.kind == "u32" and not f.other_actions and set(f.redirects) <= {tap_index, 0}
        for f in filters
    )
    if not ours:
        return [f"the ingress qdisc of {iface.name} holds filters that are not ours: left alone"]
    # Once an ingress qdisc has existed, deleting a missing one answers EINVAL, not ENOENT.
    return _attempt(
        rtnl,
        f"removing the ingress qdisc of {iface.name}",
        RTM_DELQDISC,
        nlmsg.ingress_qdisc(iface.index),
        ok=_GONE | {errno.EINVAL},
    )


def _restore(rtnl: Rtnl, index: int, undo: IfaceUndo) -> list[str]:
    """Addresses, then device routes, then gateway routes back onto ifindex `index`."""
    failures: list[str] = []
    back = _GONE | {errno.EEXIST}
    for record in undo.addresses:
        failures += _attempt(
            rtnl,
            f"restoring {record.address} on {undo.iface}",
            RTM_NEWADDR,
            _address_back(index, record),
            NLM_F_CREATE | NLM_F_EXCL,
            back,
        )
    # Device routes first: a gateway route may need one to reach its gateway.
    for route in sorted(undo.routes, key=lambda r: r.gateway is not None):
        failures += _attempt(
            rtnl,
            f"restoring route {route}",
            RTM_NEWROUTE,
            _route_back(index, route),
            NLM_F_CREATE | NLM_F_EXCL,
            back,
        )
    return failures


def _addresses_back(rtnl: Rtnl, index: int, undo: IfaceUndo) -> bool:
    present = {r.address for r in dump_addresses(rtnl, {index}).get(index, [])}
    return all(r.address in present for r in undo.addresses)


def _address_back(index: int, record: AddressRecord) -> bytes:
    # Restored IPv6 addresses skip duplicate address detection: they were just in use here,
    # and a tentative address would delay the routes that follow.
    v4 = record.address.family == 4
    return nlmsg.address(
        index,
        record.address.addr,
        record.address.prefixlen,
        add=True,
        scope=record.scope,
        flags=(record.flags & IFA_USER_FLAGS) | (0 if v4 else IFA_F_NODAD),
        broadcast=record.broadcast,
        label=record.label,
    )


def _route_back(index: int, route: Route) -> bytes:
    return nlmsg.route(
        index,
        route.dst,
        route.prefixlen,
        gateway=route.gateway,
        metric=route.metric,
        proto=route.proto,
        scope=route.scope,
        onlink=route.onlink,
    )


def _attempt(
    rtnl: Rtnl,
    what: str,
    msg_type: int,
    body: bytes,
    flags: int = 0,
    ok: frozenset[int] = _GONE,
) -> list[str]:
    try:
        rtnl.call(msg_type, body, flags)
    except OSError as exc:
        if exc.errno not in ok:
            return [f"{what}: {exc.strerror}"]
    return []


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


def _index_of(seen: _Seen, name: str, where: str) -> int:
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
