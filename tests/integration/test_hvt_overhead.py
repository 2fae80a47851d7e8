"""A running hvt guest holds next to nothing of the host beyond its own memory (issue 11).

Before the guest runs, our hvt monitor copies its run loop into memory of its own and unmaps
everything else of the process: the interpreter, libc, the heap, the old stack, the vDSO
(docs/hvt.md, "The run loop"). Read from outside while time.hvt waits in its poll hypercall,
under `runnc-py exec` and under `create` + `start`:

- /proc/PID/maps names no file and nothing of the interpreter: the only named mappings are the
  vCPU's kvm_run area (an anon inode) and the kernel's fixed [vsyscall] page;
- VmRSS minus what the guest touched of its own memory (per mapping, from /proc/PID/smaps) is
  at most 2 MiB, and so is all the address space mapped besides guest memory;
- the guest then finishes as always: "time: ok", status 0.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import runnc_binary
from tests.integration import test_lifecycle
from tests.integration.test_exec import wait_for_line
from tests.integration.test_lifecycle import Runtime, wait_exit

pytestmark = [pytest.mark.root, pytest.mark.kvm]

rt = test_lifecycle.rt
subreaper = test_lifecycle.subreaper

MIB = 1 << 20
MEM_MB = 16  # the guest's memory: 8 MiB pages of it hold page tables, boot info, segments
OVERHEAD_LIMIT = 2 * MIB  # the budget for the running monitor
WAIT_MS = 3000  # time.hvt's poll: long enough to look at the monitor, short for the suite
# Named mappings a running monitor may have: kvm_run (KVM's, shared with the vCPU) and the
# legacy vsyscall page, which lies above user space and cannot be unmapped.
ALLOWED_NAMES = {"anon_inode:kvm-vcpu:0", "[vsyscall]"}
VSYSCALL = 0xFFFFFFFFFF600000


@dataclass(frozen=True)
class Mapping:
    lo: int
    hi: int
    name: str
    rss: int  # bytes

    @property
    def size(self) -> int:
        return self.hi - self.lo


def read_smaps(pid: int) -> list[Mapping]:
    """Every mapping of PID with its name and resident bytes."""
    maps: list[Mapping] = []
    head: list[str] | None = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):
            head = fields
        elif fields[0] == "Rss:" and head is not None:
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            name = " ".join(head[5:])
            maps.append(Mapping(lo, hi, name, int(fields[1]) * 1024))
    return maps


def guest_memory(maps: list[Mapping], size: int) -> list[Mapping]:
    """The anonymous mappings that tile one window of exactly SIZE bytes, starting and ending
    at mapping boundaries: the guest's memory, split by protection (read-only text and
    rodata). There must be exactly one such window."""
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
    assert len(windows) == 1, f"{len(windows)} windows of {size} bytes in {maps}"
    return windows[0]


def vm_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def assert_lean_monitor(pid: int) -> None:
    """PID runs an hvt guest of MEM_MB MiB and holds nothing of the host but its monitor."""
    maps = read_smaps(pid)
    named = sorted({m.name for m in maps if m.name} - ALLOWED_NAMES)
    assert named == [], f"host mappings left in the running monitor: {named}"
    assert all(m.hi <= VSYSCALL for m in maps if m.name != "[vsyscall]")
    guest = guest_memory(maps, MEM_MB * MIB)
    rest = [m for m in maps if m not in guest and m.name != "[vsyscall]"]
    overhead = vm_rss(pid) - sum(m.rss for m in guest)
    assert overhead <= OVERHEAD_LIMIT, (overhead, rest)
    # The interpreter's own anonymous memory (obmalloc arenas, the heap) is gone too.
    assert sum(m.size for m in rest) <= OVERHEAD_LIMIT, rest


def test_monitor_under_exec_holds_only_guest_memory(guests: Path) -> None:
    guest = guests / "hvt" / "time.hvt"
    proc = subprocess.Popen(
        [*runnc_binary(), "exec", "--mem", str(MEM_MB), guest, f"ms={WAIT_MS}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_line(proc, b"time: waiting")  # printed from inside the guest: all is unmapped
        assert_lean_monitor(proc.pid)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert out.endswith(b"time: ok\n"), out


def test_monitor_of_a_started_container_holds_only_guest_memory(rt: Runtime) -> None:
    cid = rt.new_id("hvt-lean")
    bundle = rt.bundle(annotations={"org.runnc-py.mem": str(MEM_MB)})
    (bundle / "rootfs" / "time.hvt").write_bytes((rt.guests / "hvt" / "time.hvt").read_bytes())
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["/time.hvt", f"ms={WAIT_MS}"]
    (bundle / "config.json").write_text(json.dumps(config))
    pid, out = rt.created(cid, bundle)
    assert rt("start", cid).returncode == 0
    deadline = time.monotonic() + 20
    while "time: waiting" not in out.read_text():
        assert time.monotonic() < deadline, out.read_text()
        time.sleep(0.01)
    assert_lean_monitor(pid)
    assert wait_exit(pid, timeout=30) == 0, out.read_text()
    assert out.read_text().endswith("time: ok\n")
    assert rt("delete", cid).returncode == 0
