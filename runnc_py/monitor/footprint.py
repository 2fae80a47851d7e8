"""What a running guest's process holds besides the guest, from /proc/PID/smaps.

The guest's own memory is anonymous and is the guest's cost whatever the monitor. The rest,
the host overhead, is what a monitor adds per guest: for our hvt monitor, only the run loop's
region and the vCPU's kvm_run area (docs/hvt.md, "The run loop"). Guest memory is told apart
by its size: the anonymous mappings that tile exactly the guest's memory size (its read-only
segments split it into several). Used by tests/integration/test_hvt_overhead.py and
bench/hvt_boot.py. Linux's smaps format: a header line per mapping, then "Key: value kB" lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple


class Mapping(NamedTuple):
    lo: int
    hi: int
    name: str  # "" for anonymous memory; a path, [vdso], anon_inode:..., ...
    rss: int  # resident bytes

    @property
    def size(self) -> int:
        return self.hi - self.lo


class Footprint(NamedTuple):
    vm_rss: int  # the process's resident bytes (VmRSS)
    guest: list[Mapping]  # guest memory
    rest: list[Mapping]  # everything else, [vsyscall] aside (fixed, above user space)

    @property
    def guest_rss(self) -> int:
        return sum(m.rss for m in self.guest)

    @property
    def overhead(self) -> int:
        """Resident bytes beyond what the guest touched of its memory."""
        return self.vm_rss - self.guest_rss

    @property
    def names(self) -> list[str]:
        """The named (file, anon inode, special) mappings besides guest memory."""
        return sorted({m.name for m in self.rest if m.name})


def parse_smaps(text: str) -> list[Mapping]:
    """Every mapping in smaps TEXT with its name and resident bytes."""
    maps: list[Mapping] = []
    head: list[str] | None = None
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if not fields[0].endswith(":"):  # "lo-hi perms offset dev inode [name]"
            head = fields
        elif fields[0] == "Rss:" and head is not None:
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            maps.append(Mapping(lo, hi, " ".join(head[5:]), int(fields[1]) * 1024))
    return maps


def guest_window(maps: list[Mapping], size: int) -> list[Mapping]:
    """The anonymous mappings that tile one window of exactly SIZE bytes, starting and ending
    at mapping boundaries. ValueError unless there is exactly one."""
    anon = sorted((m for m in maps if not m.name), key=lambda m: m.lo)
    windows = []
    for i, first in enumerate(anon):
        run, end = [], first.lo
        for m in anon[i:]:
            if m.lo != end or m.hi > first.lo + size:
                break
            run.append(m)
            end = m.hi
        if end == first.lo + size:
            windows.append(run)
    if len(windows) != 1:
        raise ValueError(f"{len(windows)} windows of {size} bytes of anonymous memory")
    return windows[0]


def vm_rss(status: str) -> int:
    """VmRSS in bytes from /proc/PID/status TEXT."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError("no VmRSS line")


def footprint(pid: int, guest_size: int) -> Footprint:
    """PID's footprint, its guest having GUEST_SIZE bytes of memory."""
    maps = parse_smaps(Path(f"/proc/{pid}/smaps").read_text())
    rss = vm_rss(Path(f"/proc/{pid}/status").read_text())
    guest = guest_window(maps, guest_size)
    rest = [m for m in maps if m not in guest and m.name != "[vsyscall]"]
    return Footprint(rss, guest, rest)
