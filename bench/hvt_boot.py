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
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
