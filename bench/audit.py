#!/usr/bin/env python3
"""Audit benchmark (issue 10): how long a live guest is paused, what the whole command costs,
decompiling Docker's default profile and emulating 10 000 calls.

    python3 bench/audit.py [--runs 30] [--docker-profile CONFIG_OR_PROFILE.json]   (root)

Goals: live audit pauses the guest < 50 ms; the whole `runnc-py audit PID` < 300 ms. Peers
measured in the same run, as ratios: a bare `python -IS -c pass` (the floor of any Python
command), `runnc-py policy show spt` (our cheapest policy command), and libseccomp rendering
the same profile as text (export_pfc: it can only print rules it compiled itself). Without
--docker-profile (a config.json captured from Docker, see tests/e2e/test_audit_docker.py) the
test suite's Docker-style profile stands in, and the row says so.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import build_guests, summarize, timed_spawn
from runnc_py.paths import runnc_command

PAUSE_GOAL_MS = 50.0
COMMAND_GOAL_MS = 300.0


def guest(guests: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([*runnc_command(), "exec", "--mem", "8", str(guests / "time.spt"),
                             "sleep=600"], stdout=subprocess.PIPE)
    assert proc.stdout is not None and b"sleeping" in proc.stdout.readline()
    return proc


def pauses(pid: int, runs: int) -> list[float]:
    from runnc_py.audit.ptrace import read_filters

    return [read_filters(pid).pause_seconds * 1000 for _ in range(runs)]


def timed(func, runs: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        out.append((time.perf_counter() - start) * 1000)
    return out


def profile_rows(path: str | None, runs: int) -> list[tuple[str, float, float]]:
    from runnc_py.audit import program as bpf
    from runnc_py.audit import semantics
    from runnc_py.audit.profile import compile_profile, load_profile
    from runnc_py.audit.rules import summarize as rules_of

    if path:
        profile, label = load_profile(path), "Docker default profile"
    else:
        from tests.unit.audit_programs import OCI_PROFILE

        profile, label = OCI_PROFILE, "stand-in OCI profile (no --docker-profile)"
    program = compile_profile(profile, label).program
    insns = bpf.parse(program)

    def decompile() -> None:
        rules_of(semantics.of_programs([insns]))

    def pfc() -> None:
        import pyseccomp

        from runnc_py.audit import profile as prof

        sc = pyseccomp
        filt = sc.SyscallFilter(sc.ERRNO(1))
        for rule in profile.get("syscalls") or []:
            out = prof.CompiledProfile(b"", "", 0)
            prof._add_rule(sc, filt, rule, sc.ERRNO(1), 1, "bench", out)
        with tempfile.TemporaryFile() as fh:
            filt.export_pfc(fh)

    print(f"  {label}: {len(insns)} instructions")
    return [summarize(f"decompile + rules ({len(insns)} insns)", timed(decompile, runs)),
            summarize("peer: libseccomp compile + export_pfc", timed(pfc, runs))]


def emulate_rows(runs: int) -> list[tuple[str, float, float]]:
    import random

    from runnc_py.audit import program as bpf
    from runnc_py.audit import semantics
    from runnc_py.audit.emulator import Call, run
    from tests.unit.audit_programs import policy_program, spt_facts

    insns = bpf.parse(policy_program("spt", spt_facts()))
    sem = semantics.of_programs([insns])
    rng = random.Random(1)
    calls = [Call(nr=rng.choice([0, 1, 17, 18, 39, 228, 281]),
                  args=tuple(rng.choice([0, 1, 5, 6, 512, 1 << 33]) for _ in range(6)))
             for _ in range(10_000)]
    words = [c.words() for c in calls]
    runs = max(3, runs // 5)
    return [summarize("emulate 10 000 calls", timed(lambda: [run(insns, c) for c in calls], runs)),
            summarize("decompiled rules, 10 000 calls",
                      timed(lambda: [sem.decide(w) for w in words], runs))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--docker-profile", default=None)
    opts = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: reading seccomp filters needs CAP_SYS_ADMIN")
    with tempfile.TemporaryDirectory() as tmp:
        guests = build_guests(Path(tmp))
        proc = guest(guests)
        try:
            pause = summarize("live audit: guest paused", pauses(proc.pid, opts.runs))
            whole = summarize("live audit: whole `runnc-py audit PID`",
                              [timed_spawn([*runnc_command(), "audit", str(proc.pid)])
                               for _ in range(opts.runs)])
            floor = summarize("peer: python -IS -c pass",
                              [timed_spawn([sys.executable, "-IS", "-c", "pass"])
                               for _ in range(opts.runs)])
            show = summarize("peer: runnc-py policy show spt",
                             [timed_spawn([*runnc_command(), "policy", "show", "spt"])
                              for _ in range(opts.runs)])
            alive = proc.poll() is None
        finally:
            proc.kill()
            proc.wait()
    print(f"{'what':<48} {'median ms':>10} {'p95 ms':>8}  vs")
    rows = [
        (pause, f"goal {PAUSE_GOAL_MS:.0f} ms: {pause[1] / PAUSE_GOAL_MS:.2f}x of it"),
        (whole, f"goal {COMMAND_GOAL_MS:.0f} ms: {whole[1] / COMMAND_GOAL_MS:.2f}x of it; "
                f"{whole[1] / floor[1]:.1f}x the interpreter floor, "
                f"{whole[1] / show[1]:.1f}x policy show"),
        (floor, ""),
        (show, ""),
    ]
    prof = profile_rows(opts.docker_profile, opts.runs)
    rows += [(prof[0], f"{prof[0][1] / prof[1][1]:.1f}x libseccomp's own rendering"),
             (prof[1], "")]
    rows += [(r, "") for r in emulate_rows(opts.runs)]
    for (name, median, p95), note in rows:
        print(f"{name:<48} {median:>10.2f} {p95:>8.2f}  {note}")
    print(f"guest still running after {opts.runs * 2} audits: {alive}")


if __name__ == "__main__":
    main()
