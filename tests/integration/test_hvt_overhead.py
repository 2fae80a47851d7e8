"""A running hvt guest holds next to nothing of the host beyond its own memory (issue 11), and
neither does a created one waiting for `start`.

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
import os
import subprocess
import time
from pathlib import Path

import pytest

from runnc_py.monitor.footprint import footprint
from tests.conftest import runnc_binary
from tests.integration import test_lifecycle
from tests.integration.test_exec import wait_for_line
from tests.integration.test_lifecycle import Runtime, wait_exit, wait_for

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


def hvt_bundle(rt: Runtime, *args: str) -> Path:
    """A bundle running time.hvt ARGS with MEM_MB MiB of guest memory."""
    bundle = rt.bundle(annotations={"org.runnc-py.mem": str(MEM_MB)})
    (bundle / "rootfs" / "time.hvt").write_bytes((rt.guests / "hvt" / "time.hvt").read_bytes())
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["/time.hvt", *args]
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def test_monitor_of_a_started_container_holds_only_guest_memory(rt: Runtime) -> None:
    cid = rt.new_id("hvt-lean")
    pid, out = rt.created(cid, hvt_bundle(rt, f"ms={WAIT_MS}"))
    assert rt("start", cid).returncode == 0
    deadline = time.monotonic() + 20
    while "time: waiting" not in out.read_text():
        assert time.monotonic() < deadline, out.read_text()
        time.sleep(0.01)
    assert_lean_monitor(pid)
    assert wait_exit(pid, timeout=30) == 0, out.read_text()
    assert out.read_text().endswith("time: ok\n")
    assert rt("delete", cid).returncode == 0


# ---------------------------------------------------------------------------- waiting for start


def test_created_container_waits_in_the_run_loop_with_no_interpreter(rt: Runtime) -> None:
    """Between create and start the init is already the lean monitor: the guest laid out in
    its memory, nothing of the host mapped, at most 1 MB resident in all, not yet under its
    filter. `start` releases it, and a writer that leaves without writing does not."""
    cid = rt.new_id("hvt-created")
    pid, out = rt.created(cid, hvt_bundle(rt, "ms=1"))
    # `create` returns once the init said it is ready: the unmap follows within microseconds.
    wait_for(lambda: footprint(pid, MEM_MB * MIB).names == [KVM_RUN], what="the host unmapped")
    assert_lean_monitor(pid)
    status = Path(f"/proc/{pid}/status").read_text()
    assert int(status.split("VmRSS:")[1].split()[0]) <= 1024, status
    assert "\nSeccomp:\t0\n" in status  # the filter comes after start's byte
    fd = os.open(rt.root / cid / "exec.fifo", os.O_WRONLY | os.O_NONBLOCK)
    os.close(fd)
    assert rt.status(cid) == "created"
    assert "time:" not in out.read_text()
    assert rt("start", cid).returncode == 0
    assert wait_exit(pid) == 0, out.read_text()
    assert out.read_text().endswith("time: ok\n")
    assert rt("delete", cid).returncode == 0
