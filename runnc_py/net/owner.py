"""Which process wired a namespace, as `PID:STARTTIME`: a pid alone may be reused once the
process is gone, its start time (clock ticks since boot, /proc/PID/stat field 22) with it is
not. Both are read from /proc, so the pid is the one /proc's namespace sees (a container's init
may be pid 1 of its own pid namespace) and a later lookup in the same /proc finds it.
"""

from __future__ import annotations


def process_identity(pid: str = "self") -> str | None:
    """`PID:STARTTIME` of `pid` (default: this process); None when it does not exist or has
    exited (a zombie waiting for its parent's wait() holds nothing any more)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    head, _, rest = stat.rpartition(b")")
    fields = rest.split()
    if fields[0] in (b"Z", b"X"):
        return None
    return f"{int(head.split(b' (', 1)[0])}:{int(fields[19])}"


def owner_gone(owner: str | None) -> bool:
    """Whether the process `owner` (`PID:STARTTIME`) has exited. No owner (a record written
    before owners were kept) never counts as gone."""
    if owner is None:
        return False
    return process_identity(owner.split(":", 1)[0]) != owner
