"""Undoing `wire` from its journal: only what can be proven ours, the tap last.

Used by `delete` (net.json), by a failed `wire`'s rollback, and by a later `create`'s repair
(runnc_py.net.repair). A record is a journal of intents (runnc_py.net.wired.IfaceUndo): each
step may or may not have happened, so each is checked against the namespace before it is
undone:

* the namespace: the record's path must still name the recorded `dev:inode`;
* the tap: the link at the recorded ifindex (from the range `wire` draws them from) with the
  recorded name, kind tun, a persistent tap. Anything else there, or a record without an
  index, proves nothing: that interface is left alone, tap, qdisc, addresses and all;
* the interface's ingress qdisc goes only when every filter on it redirects to that tap;
* addresses and routes go back onto the recorded ifindex only, and the tap, the proof for all
  of it, goes last, so an `unwire` killed half-way can simply run again.
"""

from __future__ import annotations

import errno
import os

from runnc_py.errors import RunncError
from runnc_py.net import nlmsg
from runnc_py.net.crashpoint import crash_point
from runnc_py.net.facts import Route
from runnc_py.net.naming import TAP_INDEX_BASE, TAP_INDEX_SPAN
from runnc_py.net.netns import SELF, netns_id, open_netns, run_in_netns
from runnc_py.net.nlmsg import (
    IFA_F_NODAD,
    NLM_F_CREATE,
    NLM_F_EXCL,
    RTM_DELLINK,
    RTM_DELQDISC,
    RTM_GETQDISC,
    RTM_GETTFILTER,
    RTM_NEWADDR,
    RTM_NEWROUTE,
    TC_H_INGRESS,
    TCMSG,
    TUN_TYPE_TAP,
)
from runnc_py.net.read import dump_addresses, dump_raw_links
from runnc_py.net.rtnl import Rtnl
from runnc_py.net.wired import AddressRecord, IfaceUndo, WiredNetwork
from runnc_py.record import FrozenRecord, Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Address flags a user may set (iproute2 passes these); the rest are the kernel's own state.
IFA_USER_FLAGS = 0x02 | 0x04 | 0x10 | 0x100 | 0x200 | 0x400
# "Nothing to undo" answers: the thing is already gone (or already back).
GONE = frozenset({errno.ENODEV, errno.ENOENT, errno.EADDRNOTAVAIL, errno.ESRCH})


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
        run_in_netns(wired.netns, lambda: undo_all(wired, wired.netns or "unwire"), fd=nsfd)
    finally:
        os.close(nsfd)


class Seen(FrozenRecord):
    """What the namespace holds now: links by ifindex, and the ifindexes with an ingress qdisc."""

    __slots__ = ("ingress", "links")
    links: dict[int, nlmsg.Link]
    ingress: frozenset[int]

    def __init__(self, links: dict[int, nlmsg.Link], ingress: frozenset[int]) -> None:
        self._set(links=links, ingress=ingress)

    def by_name(self, name: str) -> nlmsg.Link | None:
        return next((link for link in self.links.values() if link.name == name), None)


def look(rtnl: Rtnl) -> Seen:
    ingress = frozenset(
        index
        for _family, index, _handle, parent, _info in (
            TCMSG.unpack_from(body) for body in rtnl.dump(RTM_GETQDISC)
        )
        if parent == TC_H_INGRESS
    )
    return Seen({link.index: link for link in dump_raw_links(rtnl)}, ingress)


def undo_all(wired: WiredNetwork, where: str) -> None:
    """Undo every interface's record, last first; keep going past failures, report them."""
    with Rtnl() as rtnl:
        undoer = _Undoer(rtnl, look(rtnl))
        problems = [p for undo in reversed(wired.undo) for p in undoer.undo_one(undo)]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise RunncError(f"could not undo the wiring: {problems[0]}{more}", where=where)


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
        and link.tun.get(nlmsg.IFLA_TUN_TYPE) == TUN_TYPE_TAP
        and link.tun.get(nlmsg.IFLA_TUN_PERSIST) == 1
    )


class _Undoer(Record):
    """The undo steps of one `undo_all`, over one socket and one look at the namespace."""

    __slots__ = ("rtnl", "seen", "steps")
    rtnl: Rtnl
    seen: Seen
    steps: int

    def __init__(self, rtnl: Rtnl, seen: Seen, steps: int = 0) -> None:
        self.rtnl, self.seen, self.steps = rtnl, seen, steps

    def undo_one(self, undo: IfaceUndo) -> list[str]:
        if undo.tap is None:
            return []  # not even the tap was started: nothing else was
        if undo.tap_index is None:  # a record from before taps had a recorded index
            return [
                f"{undo.tap} has no recorded ifindex, so nothing proves it is the tap we "
                f"created: left it and {undo.iface} alone"
            ]
        tap = self.seen.links.get(undo.tap_index)
        if tap is not None and not looks_like_ours(tap, undo):
            return [
                f"ifindex {tap.index} is {tap.name} ({_describe(tap)}), not the tap "
                f"{undo.tap} we created: left it and {undo.iface} alone"
            ]
        iface = self.seen.links.get(undo.iface_index) if undo.iface_index else None
        if iface is not None and iface.name != undo.iface:
            iface = None  # the ifindex now names something else: nothing to give back to
        if tap is None:
            # Never created, or removed by an earlier unwire (the tap goes last): either way,
            # the rest is done, unless someone else removed the tap; then nothing proves it ours.
            if iface is None or _addresses_back(self.rtnl, iface.index, undo):
                return []
            return [
                f"{undo.tap} is gone, so nothing proves {undo.iface} was wired by us: left alone"
            ]
        failures: list[str] = []
        if undo.ingress and iface is not None and iface.index in self.seen.ingress:
            failures += self.remove_ingress(iface, tap.index)
        if iface is not None:
            failures += self.restore(iface.index, undo)
        delete = nlmsg.link_by_index(tap.index)
        return failures + self.attempt(f"deleting tap {undo.tap}", RTM_DELLINK, delete)

    def remove_ingress(self, iface: nlmsg.Link, tap_index: int) -> list[str]:
        """Remove `iface`'s ingress qdisc (and its filters) if every filter is our redirect."""
        filters = [
            nlmsg.decode_filter(body)
            for body in self.rtnl.dump(RTM_GETTFILTER, nlmsg.filters_of(iface.index))
        ]
        ours = all(
            f.kind == "u32" and not f.other_actions and set(f.redirects) <= {tap_index, 0}
            for f in filters
        )
        if not ours:
            return [
                f"the ingress qdisc of {iface.name} holds filters that are not ours: left alone"
            ]
        # Once an ingress qdisc has existed, deleting a missing one answers EINVAL, not ENOENT.
        return self.attempt(
            f"removing the ingress qdisc of {iface.name}",
            RTM_DELQDISC,
            nlmsg.ingress_qdisc(iface.index),
            ok=GONE | {errno.EINVAL},
        )

    def restore(self, index: int, undo: IfaceUndo) -> list[str]:
        """Addresses, then device routes, then gateway routes back onto ifindex `index`."""
        failures: list[str] = []
        create = NLM_F_CREATE | NLM_F_EXCL
        back = GONE | {errno.EEXIST}
        for record in undo.addresses:
            what = f"restoring {record.address} on {undo.iface}"
            failures += self.attempt(what, RTM_NEWADDR, _address_back(index, record), create, back)
        # Device routes first: a gateway route may need one to reach its gateway.
        for route in sorted(undo.routes, key=lambda r: r.gateway is not None):
            what = f"restoring route {route}"
            failures += self.attempt(what, RTM_NEWROUTE, _route_back(index, route), create, back)
        return failures

    def attempt(
        self, what: str, msg_type: int, body: bytes, flags: int = 0, ok: frozenset[int] = GONE
    ) -> list[str]:
        """One undo step; "already gone/back" is fine, any other refusal is reported."""
        self.steps += 1
        crash_point("unwire", self.steps)
        try:
            self.rtnl.call(msg_type, body, flags)
        except OSError as exc:
            if exc.errno not in ok:
                return [f"{what}: {exc.strerror}"]
        return []


def _describe(link: nlmsg.Link) -> str:
    if link.kind == "tun":
        return "a tun device" if link.tun.get(nlmsg.IFLA_TUN_TYPE) != TUN_TYPE_TAP else "a tap"
    return link.kind or "no kind"


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
