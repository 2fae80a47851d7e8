"""Start the kernel's cgroup-migration grace period early, off create's critical path.

Every write to a `cgroup.procs` file takes the kernel's global `cgroup_threadgroup_rwsem` for
writing. Taking it from idle waits for a full RCU grace period (rcu_sync_enter: 6-30 ms on our
2-core VMs, on v1 and on v2 without `favordynmods`); a write made while an earlier writer's
grace period is still running, or within one grace period after it, waits for no new one.
`create` cannot join the init to its cgroup before it has planned the container and forked
the init (~10 ms in), and runc pays the same wait at the same point.

So `create` starts that wait first thing: a helper thread moves this process into the cgroup
it is already in (a migration that changes nothing), and blocks in the kernel for the grace
period while the main thread plans and forks. When the real join comes, the grace period has
passed or is under way, and the join waits only for what is left of it.

Best effort by design: any failure (no permission, another layout, a cgroup namespace that
hides the path) leaves create exactly as it was without it, just slower. Nothing is recorded,
nothing is charged: the process stays where it was.
"""

from __future__ import annotations

import _thread
import os

from runnc_py.oci.cgroup_plan import CGROUP_ROOT

_V2_MOUNTS = (CGROUP_ROOT, f"{CGROUP_ROOT}/unified")  # pure v2; a hybrid host's v2 tree


def start_grace_period() -> None:
    """Begin the migration lock's grace period on a helper thread; return at once."""
    try:  # noqa: SIM105 (contextlib would cost create an import)
        _thread.start_new_thread(_rejoin_own_cgroup, ())
    except RuntimeError:
        pass  # no thread to spare: the join pays the whole wait, as before


def _rejoin_own_cgroup() -> bool:
    """Move this process into the cgroup it is in; True once one hierarchy took the write."""
    try:
        with open("/proc/self/cgroup", "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return False
    # The lock is global to all hierarchies: the first cgroup.procs that takes our write will do.
    for path in procs_files(text):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            os.write(fd, b"0")  # "0": the writer's own thread group, into the cgroup it is in
            return True
        except OSError:
            continue
        finally:
            os.close(fd)
    return False


def procs_files(proc_cgroup: str) -> list[str]:
    """The cgroup.procs files of the cgroups /proc/PID/cgroup text PROC_CGROUP names, at the
    usual mount points: v1 controllers under /sys/fs/cgroup/, v2 at /sys/fs/cgroup or, on a
    hybrid host, /sys/fs/cgroup/unified. Named v1 hierarchies (name=...) are skipped."""
    paths = []
    for line in proc_cgroup.splitlines():
        hierarchy, sep, rest = line.partition(":")
        controllers, sep2, cgroup = rest.partition(":")
        if not (sep and sep2 and cgroup.startswith("/")) or ".." in cgroup.split("/"):
            continue
        cgroup = cgroup.rstrip("/")
        if hierarchy == "0" and controllers == "":
            paths += [f"{mount}{cgroup}/cgroup.procs" for mount in _V2_MOUNTS]
        elif controllers and "/" not in controllers and "=" not in controllers:
            paths.append(f"{CGROUP_ROOT}/{controllers}{cgroup}/cgroup.procs")
    return paths
