#!/usr/bin/env python3
"""Boot benchmark (issue 3): hello to exit, and host overhead RSS of a running guest.

    python3 bench/boot.py [--runs 200] [--guests DIR]
    SOLO5_SPT=/path/to/solo5-spt python3 bench/boot.py     # adds the reference tender

Rows, all measured in this run with the same harness (fork/exec + wait from this process):
  runnc-py exec   the whole CLI: C front end, Python start, ELF checks, policy, launcher
  python -IS pass the floor of any Python CLI: the interpreter starting and exiting, as the
                  entry starts it (isolated, no site); `exec` minus this is its own cost
  launcher path   runnc_spt_boot to guest exit in a waiting init process (what `start` costs)
  fork + launcher the same, plus forking a warm ~23 MB Python interpreter
  static C hello  the floor: a static binary that writes and exits
  solo5-spt       the reference tender, when SOLO5_SPT is set
Overhead RSS: VmRSS of a sleeping guest minus the resident pages inside guest memory.
The goals of issue 11 are printed next to the rows they apply to.
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
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    write(1, "Hello, World\n", 13);
    if (argc > 1 && strcmp(argv[1], "sleep") == 0) pause();
    return 0;
}
"""


def launcher_path(hello: Path, *, include_fork: bool) -> Callable[[], float]:
    """The C launcher from a prepared plan to guest exit, in a forked Python process.

    Prepared once: the child inherits the open fds and the compiled filter, so each run measures
    the launcher + the guest + exit, not the Python checks. Without include_fork the clock
    starts when the already-forked child is released (what `start` costs: the init process
    exists since `create`); with it, the fork of a ~23 MB interpreter is counted too.
    """
    from runnc_py.monitor.launch import LaunchRequest, boot, prepare

    prepared = prepare(LaunchRequest(unikernel=str(hello), mem_mb=8))

    def once() -> float:
        go_r, go_w = os.pipe()
        start = time.perf_counter_ns()
        pid = os.fork()
        if pid == 0:
            os.close(go_w)
            devnull = os.open("/dev/null", os.O_WRONLY)
            os.dup2(devnull, 1)
            os.read(go_r, 1)
            try:
                boot(prepared)
            finally:
                os._exit(1)
        os.close(go_r)
        if not include_fork:
            time.sleep(0.001)  # let the child reach its read()
            start = time.perf_counter_ns()
        os.write(go_w, b"x")
        _, status = os.waitpid(pid, 0)
        elapsed = (time.perf_counter_ns() - start) / 1e6
        os.close(go_w)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"launcher path failed with status {status}")
        return elapsed

    return once


def overhead_rss_kb(argv: list[str], guest_range: tuple[int, int] | None) -> tuple[int, int]:
    """(total VmRSS, RSS outside guest memory) of a process that printed a line and sleeps."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(0.05)
        total = 0
        inside = 0
        lo = hi = 0
        for line in Path(f"/proc/{proc.pid}/smaps").read_text().splitlines():
            head = line.split()[0] if line else ""
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
            elif head == "Rss:":
                kb = int(line.split()[1])
                total += kb
                if guest_range and guest_range[0] <= lo and hi <= guest_range[1]:
                    inside += kb
        return total, total - inside
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--guests", type=Path, default=None)
    opts = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="runnc-bench-"))
    try:
        guests = opts.guests
        if guests is None:
            guests = build_guests(work / "guests")
        hello, sleeper = guests / "hello.spt", guests / "time.spt"
        static = work / "static-hello"
        (work / "h.c").write_text(STATIC_HELLO)
        subprocess.run(["gcc", "-O2", "-static", "-o", str(static), str(work / "h.c")], check=True)
        from runnc_py.paths import runnc_command

        runnc = runnc_command()[0]

        rows: list[tuple[str, float, float]] = []
        cases: list[tuple[str, Callable[[], float]]] = [
            ("static C hello", lambda: timed_spawn([str(static)])),
            ("launcher path", launcher_path(hello, include_fork=False)),
            ("fork + launcher", launcher_path(hello, include_fork=True)),
            ("python -IS pass", lambda: timed_spawn([sys.executable, "-IS", "-c", "pass"])),
            ("runnc-py exec", lambda: timed_spawn([runnc, "exec", "--mem=8", str(hello)])),
        ]
        solo5 = os.environ.get("SOLO5_SPT")
        if solo5:
            cases.insert(1, ("solo5-spt", lambda: timed_spawn([solo5, "--mem=8", str(hello)])))
        slow = ("runnc-py exec", "python -IS pass")
        for name, run in cases:
            runs = opts.runs if name not in slow else max(20, opts.runs // 4)
            for _ in range(3):
                run()  # warm caches
            rows.append(summarize(name, [run() for _ in range(runs)]))

        ref_name = "solo5-spt" if solo5 else "static C hello"
        ref = next(r for r in rows if r[0] == ref_name)[1]
        goals = {
            "runnc-py exec": "<= 20 ms",
            "launcher path": "<= 1.1x solo5-spt" if solo5 else "<= 1.1x solo5-spt (set SOLO5_SPT)",
        }
        print(f"boot of hello to exit ({opts.runs} runs; Python rows {max(20, opts.runs // 4)})")
        print(f"{'':18}{'median ms':>10}{'p95 ms':>9}{'x ' + ref_name:>20}  goal")
        for name, median, p95 in rows:
            goal = goals.get(name, "")
            print(f"{name:18}{median:10.2f}{p95:9.2f}{median / ref:20.2f}  {goal}")

        guest_range = (0x10000, 8 << 20)
        rss = [
            ("static C (sleep)", overhead_rss_kb([str(static), "sleep"], None)),
            (
                "runnc-py exec",
                overhead_rss_kb([runnc, "exec", "--mem=8", str(sleeper), "sleep=5"], guest_range),
            ),
        ]
        if solo5:
            rss.append(
                (
                    "solo5-spt",
                    overhead_rss_kb([solo5, "--mem=8", str(sleeper), "sleep=5"], guest_range),
                )
            )
        print("\nRSS of a running guest (kB)")
        print(f"{'':18}{'total':>8}{'host overhead':>15}  goal")
        for name, (total, overhead) in rss:
            goal = "<= 2048 kB host overhead" if name == "runnc-py exec" else ""
            print(f"{name:18}{total:8d}{overhead:15d}  {goal}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
