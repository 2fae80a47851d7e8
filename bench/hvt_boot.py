#!/usr/bin/env python3
"""hvt boot benchmark: hello.hvt to exit under our KVM monitor, next to peers run alike.

    python3 bench/hvt_boot.py [--runs 100] [--guests DIR]
    SOLO5_HVT=/path/to/solo5-hvt python3 bench/hvt_boot.py     # adds the reference tender

Rows, all measured in this run with the same harness (fork or spawn + wait from this process):
  static C hello      the floor: a static binary that writes and exits
  spt launcher path   fork of a warm Python + runnc_spt_boot of hello.spt (the peer)
  hvt monitor path    fork of a warm Python + prepare_hvt + boot_hvt of hello.hvt: VM
                      creation, layout, seccomp filter (cached), vCPU run, exit
  hvt cold python     python3 -c 'launch_hvt(...)': interpreter start, imports, ELF checks
  solo5-hvt           the reference tender, when SOLO5_HVT is set

Then the host memory a running guest costs beyond its own memory (VmRSS minus what the guest
touched of its memory, runnc_py.monitor.footprint), read while time.hvt / time.spt wait, next
to the goal of issue 11 (<= 2 MiB for a running hvt guest):
  hvt monitor         our monitor running the guest: its run loop region and kvm_run
  hvt, host kept      the same process prepared but not yet shed: what the monitor held
                      while its loop ran inside the interpreter
  spt launcher        a running spt guest's process (its trampoline sheds the host too)
  solo5-hvt           the reference tender, when SOLO5_HVT is set
Needs root and a usable /dev/kvm.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from timing import build_guests, summarize, timed_spawn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

STATIC_HELLO = r"""
#include <unistd.h>
int main(void) { write(1, "Hello, World\n", 13); return 0; }
"""


def forked(boot: Callable[[], object]) -> Callable[[], float]:
    """Time fork + BOOT (which must end the child with status 0) + wait."""

    def once() -> float:
        start = time.perf_counter_ns()
        pid = os.fork()
        if pid == 0:
            devnull = os.open("/dev/null", os.O_WRONLY)
            os.dup2(devnull, 1)
            try:
                boot()
            finally:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        elapsed = (time.perf_counter_ns() - start) / 1e6
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"boot failed with status {status}")
        return elapsed

    return once


FOOTPRINT_MB = 16  # guest memory of the footprint rows
OVERHEAD_GOAL = 2 << 20
SPT_GUEST_BASE = 0x10000  # spt guest memory is mapped from here (Solo5's spt layout)

# An hvt guest prepared in a fresh interpreter; "hold" stops before boot_hvt sheds the host.
HVT_MONITOR = """
import sys, time
from runnc_py.monitor.hvt import boot_hvt, prepare_hvt
from runnc_py.monitor.launch import LaunchRequest
request = LaunchRequest(unikernel=sys.argv[1], args=[sys.argv[2]], mem_mb=int(sys.argv[3]))
prepared = prepare_hvt(request)
if sys.argv[4] == "hold":
    print("time: waiting (held before boot)", flush=True)
    time.sleep(60)
boot_hvt(prepared)
"""


def running_overhead(argv: list[str], needle: bytes, guest_size: int) -> int:
    """Host overhead in bytes of ARGV's process once it printed NEEDLE (it is killed then)."""
    from runnc_py.monitor.footprint import footprint

    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        seen = b""
        while needle not in seen:
            line = proc.stdout.readline()
            if not line:
                raise SystemExit(f"{argv[:3]} ended before printing {needle!r}: {seen!r}")
            seen += line
        return footprint(proc.pid, guest_size).overhead
    finally:
        proc.kill()
        proc.wait()


def footprint_rows(guests: Path) -> list[tuple[str, int]]:
    """(name, host overhead bytes) of each peer running a guest of FOOTPRINT_MB MiB."""
    from runnc_py.paths import runnc_command

    mem = FOOTPRINT_MB << 20
    time_hvt, time_spt = str(guests / "hvt" / "time.hvt"), str(guests / "time.spt")
    monitor = [sys.executable, "-c", HVT_MONITOR, time_hvt, "ms=60000", str(FOOTPRINT_MB)]
    rows = [
        ("hvt monitor", running_overhead([*monitor, "boot"], b"waiting", mem)),
        ("hvt, host kept", running_overhead([*monitor, "hold"], b"waiting", mem)),
    ]
    spt = [*runnc_command(), "exec", "--mem", str(FOOTPRINT_MB), time_spt, "sleep=60"]
    rows.append(("spt launcher", running_overhead(spt, b"sleeping", mem - SPT_GUEST_BASE)))
    solo5 = os.environ.get("SOLO5_HVT")
    if solo5:
        argv = [solo5, f"--mem={FOOTPRINT_MB}", time_hvt, "ms=60000"]
        rows.append(("solo5-hvt", running_overhead(argv, b"waiting", mem)))
    return rows


def print_footprint(rows: list[tuple[str, int]]) -> None:
    ours = rows[0][1]
    print(
        f"\nhost memory of a running guest beyond its own ({FOOTPRINT_MB} MiB guest; "
        f"goal for hvt: <= {OVERHEAD_GOAL >> 20} MiB)"
    )
    print(f"{'':20}{'KiB':>10}{'x hvt monitor':>15}{'goal':>8}")
    for name, overhead in rows:
        verdict = "-" if name != "hvt monitor" else "met" if overhead <= OVERHEAD_GOAL else "MISSED"
        print(f"{name:20}{overhead / 1024:10.0f}{overhead / ours:15.1f}{verdict:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--guests", type=Path, default=None)
    opts = parser.parse_args()

    from runnc_py.monitor import hvt, launch

    problem = hvt.kvm_problem()
    if problem:
        raise SystemExit(f"hvt benchmark needs KVM: {problem}")
    work = Path(tempfile.mkdtemp(prefix="runnc-hvt-bench-"))
    try:
        guests = opts.guests
        if guests is None:
            guests = build_guests(work / "guests")
        hello_spt, hello_hvt = guests / "hello.spt", guests / "hvt" / "hello.hvt"
        static = work / "static-hello"
        (work / "h.c").write_text(STATIC_HELLO)
        subprocess.run(["gcc", "-O2", "-static", "-o", str(static), str(work / "h.c")], check=True)

        # spt: prepared once, each forked child inherits the fds. hvt: prepared in the child,
        # since KVM ties a VM to the process that created it (the filter comes from the cache).
        spt_prepared = launch.prepare(launch.LaunchRequest(unikernel=str(hello_spt), mem_mb=8))
        hvt_request = launch.LaunchRequest(unikernel=str(hello_hvt), mem_mb=8)
        cold = [
            sys.executable,
            "-c",
            "import sys; from runnc_py.monitor.launch import LaunchRequest; "
            "from runnc_py.monitor.hvt import launch_hvt; "
            "launch_hvt(LaunchRequest(unikernel=sys.argv[1], mem_mb=8))",
            str(hello_hvt),
        ]
        cases: list[tuple[str, Callable[[], float]]] = [
            ("static C hello", lambda: timed_spawn([str(static)])),
            ("spt launcher path", forked(lambda: launch.boot(spt_prepared))),
            ("hvt monitor path", forked(lambda: hvt.boot_hvt(hvt.prepare_hvt(hvt_request)))),
            ("hvt cold python", lambda: timed_spawn(cold)),
        ]
        solo5 = os.environ.get("SOLO5_HVT")
        if solo5:
            cases.append(("solo5-hvt", lambda: timed_spawn([solo5, "--mem=8", str(hello_hvt)])))
        rows = []
        for name, run in cases:
            runs = opts.runs if name != "hvt cold python" else max(10, opts.runs // 4)
            for _ in range(3):
                run()  # warm caches
            rows.append(summarize(name, [run() for _ in range(runs)]))

        ref_name = "solo5-hvt" if solo5 else "spt launcher path"
        ref = next(r for r in rows if r[0] == ref_name)[1]
        print(f"boot of hello to exit ({opts.runs} runs; cold python {max(10, opts.runs // 4)})")
        print(f"{'':20}{'median ms':>10}{'p95 ms':>9}{'x ' + ref_name:>22}")
        for name, median, p95 in rows:
            print(f"{name:20}{median:10.2f}{p95:9.2f}{median / ref:22.2f}")
        print_footprint(footprint_rows(guests))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
