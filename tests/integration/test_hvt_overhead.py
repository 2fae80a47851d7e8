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
from pathlib import Path

import pytest

from runnc_py.monitor.footprint import footprint
from tests.conftest import runnc_binary
from tests.integration import test_lifecycle
from tests.integration.test_exec import wait_for_line
from tests.integration.test_lifecycle import Runtime, wait_exit

pytestmark = [pytest.mark.root, pytest.mark.kvm]

rt = test_lifecycle.rt
subreaper = test_lifecycle.subreaper

MIB = 1 << 20
MEM_MB = 16  # the guest's memory
OVERHEAD_LIMIT = 2 * MIB  # the budget for the running monitor
WAIT_MS = 2000  # time.hvt's poll: long enough to look at the monitor, short for the suite
# The one named mapping a running monitor keeps: the vCPU's kvm_run area (KVM's, shared with
# the vCPU). [vsyscall] is left out by footprint(): it lies above user space, fixed.
KVM_RUN = "anon_inode:kvm-vcpu:0"


def assert_lean_monitor(pid: int) -> None:
    """PID runs an hvt guest of MEM_MB MiB and holds nothing of the host but its monitor."""
    fp = footprint(pid, MEM_MB * MIB)
    assert fp.names == [KVM_RUN], f"host mappings left in the running monitor: {fp.names}"
    assert fp.overhead <= OVERHEAD_LIMIT, (fp.overhead, fp.rest)
    # The interpreter's own anonymous memory (obmalloc arenas, the heap) is gone too.
    assert sum(m.size for m in fp.rest) <= OVERHEAD_LIMIT, fp.rest


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
