"""What the boot benchmarks share: timing a spawned command, summarising samples, test guests."""

from __future__ import annotations

import importlib.util
import os
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed_spawn(argv: list[str]) -> float:
    """Milliseconds from spawning ARGV (stdout to /dev/null) to reaping it; it must exit 0."""
    start = time.perf_counter_ns()
    pid = os.posix_spawn(
        argv[0],
        argv,
        os.environ,
        file_actions=[(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)],
    )
    _, status = os.waitpid(pid, 0)
    elapsed = (time.perf_counter_ns() - start) / 1e6
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed with status {status}")
    return elapsed


def summarize(name: str, samples: list[float]) -> tuple[str, float, float]:
    """(name, median, p95) of SAMPLES."""
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    return name, statistics.median(samples), p95


def build_guests(out: Path) -> Path:
    """Our test unikernels built from the current sources into OUT (build.py's recipe)."""
    spec = importlib.util.spec_from_file_location("runnc_build", REPO / "build.py")
    assert spec and spec.loader
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.build_guests(out)
    return out
