"""Repairing a namespace that a dead `create` of ours left half-wired, before wiring it again.

A `create` killed in the middle of wiring leaves its journal (net.json) in its state dir and,
in the namespace, a tap plus maybe tc and removed addresses. `delete --force` of that container
undoes it; when nobody calls it, the next `create` in the same namespace would fail on the tap's
name. So `create` first looks for such leftovers, and undoes a record only when it is provably
a stale wiring of ours:

* the record is in a sibling state dir under the same `--root`, and names this namespace
  (its dev:inode);
* the process that wired (the record's `owner`, pid + start time) no longer exists;
* each of its taps that still exists is of kind tun, at the recorded ifindex and name, and has
  no queue attached (no guest or init holds it open);

then `unwire` runs on it here (with its own checks) and the record is marked unwired
(`"wired": null`), so that container's later `delete` has nothing left to do.
"""

from __future__ import annotations

import os

from runnc_py.errors import RunncError
from runnc_py.net import nlmsg, store
from runnc_py.net.naming import TAP_PREFIX
from runnc_py.net.netns import current_netns_id
from runnc_py.net.owner import owner_gone
from runnc_py.net.read import dump_raw_links
from runnc_py.net.rtnl import Rtnl
from runnc_py.net.unwiring import looks_like_ours, unwire
from runnc_py.net.wired import WiredNetwork

PROC_NET_DEV = "/proc/thread-self/net/dev"  # this thread's namespace (see netns.SELF)


def repair_stale_wiring(state_dir: str, proc_net_dev: str = PROC_NET_DEV) -> list[str]:
    """Undo stale half-wirings of this namespace recorded next to `state_dir`; return the
    state dirs repaired. Cheap when there is nothing to repair: without a `tap*` link here, no
    record is read. Failures are RunncErrors naming the record."""
    if not _has_tap_names(proc_net_dev):
        return []
    root, own = os.path.split(os.path.normpath(state_dir))
    here = current_netns_id()
    repaired: list[str] = []
    for name in _entries(root):
        other = os.path.join(root, name)
        if name == own or not os.path.isfile(os.path.join(other, store.NET_JSON)):
            continue
        try:
            record = store.load(other)
        except RunncError:
            continue  # not ours to judge; its own `delete` reports it
        wired = record.wired
        if wired is None or wired.netns_id != here or not owner_gone(wired.owner):
            continue
        if not _taps_unattached(wired):
            continue
        # Its path may be a dead /proc/PID/ns/net: the namespace is ours, checked by id.
        try:
            unwire(wired.replace(netns=None))
        except RunncError as exc:
            raise RunncError(
                f"repairing the wiring a dead create left: {exc.message}", where=other
            ) from None
        store.save(other, record.replace(wired=None))
        repaired.append(other)
    return repaired


def _taps_unattached(wired: WiredNetwork) -> bool:
    """Every tap the record names is absent, or a tun at its index with no queue attached."""
    with Rtnl() as rtnl:
        links = {link.index: link for link in dump_raw_links(rtnl)}
    for undo in wired.undo:
        if undo.tap is None:
            continue
        if undo.tap_index is None:
            return False  # an older record: nothing proves its tap ours
        tap = links.get(undo.tap_index)
        if tap is None:
            continue
        if not looks_like_ours(tap, undo):
            return False  # not ours: unwire would refuse it too, so leave the record as it is
        if tap.tun.get(nlmsg.IFLA_TUN_NUM_QUEUES, 0):
            return False
    return True


def _has_tap_names(path: str) -> bool:
    try:
        with open(path) as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return True
    return any(line.split(":", 1)[0].strip().startswith(TAP_PREFIX) for line in lines)


def _entries(root: str) -> list[str]:
    try:
        return os.listdir(root)
    except OSError:
        return []
