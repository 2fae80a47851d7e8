#!/usr/bin/env python3
"""OCI lifecycle benchmark (issue 4): create + start + wait + delete, and one `state` call.

    sudo python3 bench/lifecycle.py [--runs 50] [--guests DIR]
    sudo python3 bench/lifecycle.py --engines [--runs 20]   # docker/podman run --rm (engines.py)

Measured in this one run, round robin so machine noise hits every runtime alike:
  runnc-py        /usr/local/bin/runnc-py, the entry point engines call: the C front end
                  (csrc/front, docs/state.md), which does state/start/kill/delete itself and
                  hands create to Python; hello.spt bundle
  python entry    the Python CLI it hands over to (python -IS, no site): every verb in
                  Python, as before the front end
  pip script      the same code through pip's console script (with site and .pth files):
                  how much interpreter start-up alone costs
  runc, crun      Debian's, on a bundle holding a static /true
Each lifecycle is what containerd's shim does: `create --pid-file` (stdio to /dev/null), `start`,
wait for the init (this process is a child subreaper, as the shim is), `delete`. Medians in ms,
then the ratio to runc. Then `state` on a created container, and where Python's time goes
(interpreter, site, our imports) for the hot verbs.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PR_SET_CHILD_SUBREAPER = 36
TRUE_C = "int main(void) { return 0; }\n"


def run(argv: list[str], **kw: object) -> float:
    """Run ARGV to completion; ms. Raises on failure."""
    start = time.perf_counter_ns()
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, **kw)  # type: ignore[call-overload]
    elapsed = (time.perf_counter_ns() - start) / 1e6
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-300:]}"
        )
    return elapsed


class Runtime:
    def __init__(self, name: str, argv: list[str], bundle: Path, root: Path) -> None:
        self.name, self.argv, self.bundle, self.root = name, argv, bundle, root
        self.times: dict[str, list[float]] = {
            "create": [],
            "start": [],
            "wait": [],
            "delete": [],
            "total": [],
        }
        self.count = 0
        self.live: str | None = None  # a container to remove if the run is interrupted

    def cleanup(self) -> None:
        if self.live:
            subprocess.run(self.cmd("delete", "--force", self.live), capture_output=True)
            self.live = None

    def cmd(self, *args: str) -> list[str]:
        return [*self.argv, "--root", str(self.root), *args]

    def lifecycle(self) -> None:
        self.count += 1
        cid = f"bench-{os.getpid()}-{self.count}"
        self.live = cid
        pid_file = self.root.parent / f"{self.name}.pid"
        errors = self.root.parent / f"{self.name}.err"
        t0 = time.perf_counter_ns()
        # The init inherits create's stdio: pipes would stay open until the guest exits.
        with open(os.devnull, "w") as null, open(errors, "w") as err:
            done = subprocess.run(
                self.cmd("create", "--bundle", str(self.bundle), "--pid-file", str(pid_file), cid),
                stdin=subprocess.DEVNULL, stdout=null, stderr=err,
            )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"{self.name} create failed: {errors.read_text()[-300:]}")
        t1 = time.perf_counter_ns()
        pid = int(pid_file.read_text())
        run(self.cmd("start", cid))
        t2 = time.perf_counter_ns()
        _, status = os.waitpid(pid, 0)
        t3 = time.perf_counter_ns()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{self.name}: container exited with {status}")
        run(self.cmd("delete", cid))
        self.live = None
        t4 = time.perf_counter_ns()
        for key, a, b in (("create", t0, t1), ("start", t1, t2), ("wait", t2, t3),
                          ("delete", t3, t4), ("total", t0, t4)):  # fmt: skip
            self.times[key].append((b - a) / 1e6)


def static_true(work: Path) -> Path:
    src = work / "true.c"
    src.write_text(TRUE_C)
    out = work / "true"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(src)], check=True)
    return out


def runc_bundle(work: Path, true_bin: Path) -> Path:
    bundle = work / "true-bundle"
    (bundle / "rootfs").mkdir(parents=True)
    shutil.copy(true_bin, bundle / "rootfs" / "true")
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/true"]
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def unikernel_bundle(work: Path, hello: Path) -> Path:
    from runnc_py.oci.features import spec_template

    bundle = work / "hello-bundle"
    (bundle / "rootfs").mkdir(parents=True)
    shutil.copy(hello, bundle / "rootfs" / "hello.spt")
    (bundle / "config.json").write_text(json.dumps(spec_template("/hello.spt")))
    return bundle


def hide_hybrid_v2_tree() -> bool:
    """On a hybrid host (v1 controllers + a v2 tree at /sys/fs/cgroup/unified holding a
    controller), crun 1.8 refuses to run ("cgroups in hybrid mode not supported"). Give this
    process (and so every runtime measured) a private mount namespace with an empty tmpfs over
    the v2 tree: all of them then use the v1 controllers, as runc and runnc-py do anyway."""
    unified = b"/sys/fs/cgroup/unified"
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers") or not os.path.exists(
        "/sys/fs/cgroup/unified/cgroup.controllers"
    ):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    ms_rec, ms_private, clone_newns = 0x4000, 0x40000, 0x20000
    if libc.unshare(clone_newns) != 0:
        raise SystemExit(f"unshare(CLONE_NEWNS): {os.strerror(ctypes.get_errno())}")
    if libc.mount(None, b"/", None, ms_rec | ms_private, None) != 0:
        raise SystemExit(f"making / private: {os.strerror(ctypes.get_errno())}")
    if libc.mount(b"none", unified, b"tmpfs", 0, None) != 0:
        raise SystemExit(f"hiding {unified.decode()}: {os.strerror(ctypes.get_errno())}")
    return True


def state_cost(rt: Runtime, runs: int) -> float:
    cid = "bench-state"
    with open(os.devnull, "w") as null:
        subprocess.run(
            rt.cmd("create", "--bundle", str(rt.bundle), cid), stdout=null, stderr=null, check=True
        )
    try:
        return median_ms(lambda: run(rt.cmd("state", cid)), runs)
    finally:
        subprocess.run(rt.cmd("delete", "--force", cid), capture_output=True)
        reap()


def reap() -> None:
    """Collect inits that `delete` killed: as their subreaper we must, or they stay zombies."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def median_ms(fn: Callable[[], float], runs: int) -> float:
    return statistics.median(fn() for _ in range(runs))


def import_cost(python: str, code: str, extra: list[str]) -> float:
    """Median ms of `python [extra] -c code`."""
    return median_ms(lambda: run([python, *extra, "-c", code]), 20)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument(
        "--guests", type=Path, default=None, help="built guests (default: build now)"
    )
    parser.add_argument(
        "--engines",
        action="store_true",
        help="docker/podman run --rm and each verb as the engine calls it (bench/engines.py)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/lifecycle.py needs root (namespaces, cgroups)")
    if args.engines:  # before this process takes a private mount namespace below
        from bench.engines import run_engines
        from bench.timing import build_guests

        with tempfile.TemporaryDirectory(prefix="runnc-bench-guests-") as tmp:
            return run_engines(args.runs, args.guests or build_guests(Path(tmp)))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit("cannot become a child subreaper")
    if hide_hybrid_v2_tree():
        print("(hybrid cgroups: the v2 tree is hidden in this run's mount namespace, for crun)")

    with tempfile.TemporaryDirectory(prefix="runnc-bench-") as tmp:
        work = Path(tmp)
        guests = args.guests
        if guests is None:
            import importlib.util

            spec = importlib.util.spec_from_file_location("build", REPO / "build.py")
            assert spec is not None and spec.loader is not None
            build = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(build)
            guests = work / "guests"
            build.build_guests(guests)
        entry = shutil.which("runnc-py", path="/usr/local/bin") or str(
            Path(sys.executable).parent / "runnc-py"
        )
        uk_bundle = unikernel_bundle(work, guests / "hello.spt")
        true_bundle = runc_bundle(work, static_true(work))
        runtimes = [Runtime("runnc-py", [entry], uk_bundle, work / "root-runnc")]
        python_entry = Path("/usr/local/lib/runnc-py/runnc-py-py")  # build.py PY_ENTRY
        if python_entry.exists():
            runtimes.append(
                Runtime("  python entry", [str(python_entry)], uk_bundle, work / "root-py")
            )
        console_script = Path(sys.executable).parent / "runnc-py"
        if console_script.exists() and os.path.realpath(console_script) != os.path.realpath(entry):
            runtimes.append(
                Runtime("  pip script", [str(console_script)], uk_bundle, work / "root-pip")
            )
        for name in ("runc", "crun"):
            path = shutil.which(name)
            if not path:
                print(f"({name} not installed: skipped)")
                continue
            runtimes.append(Runtime(name, [path], true_bundle, work / f"root-{name}"))
        try:
            for rt in runtimes:  # warm-up: page cache, pyc files
                rt.lifecycle()
                for values in rt.times.values():
                    values.clear()
            for i in range(args.runs):
                # Each round starts one runtime later: no runtime always follows the same one
                # (the kernel's cgroup-migration lock remembers the last writer for a grace
                # period, oci/migration.py, so the order moves create times by several ms).
                for rt in runtimes[i % len(runtimes) :] + runtimes[: i % len(runtimes)]:
                    rt.lifecycle()
        finally:  # an interrupted run must not leave inits and cgroups behind
            for rt in runtimes:
                rt.cleanup()

        print(f"\nLifecycle (create + start + wait + delete), median of {args.runs} runs, ms")
        columns = ("create", "start", "wait", "delete", "total")
        print(f"{'runtime':<14}" + "".join(f"{c:>9}" for c in columns) + f"{'vs runc':>10}")
        base = next(
            (statistics.median(r.times["total"]) for r in runtimes if r.name == "runc"), None
        )
        for rt in runtimes:
            med = {k: statistics.median(v) for k, v in rt.times.items()}
            ratio = f"{med['total'] / base:.2f}x" if base else "-"
            print(
                f"{rt.name:<14}"
                + "".join(f"{med[k]:9.1f}" for k in ("create", "start", "wait", "delete", "total"))
                + f"{ratio:>10}"
            )

        print(f"\n`state` of a created container, median of {args.runs} calls, ms")
        state_ms = {rt.name: state_cost(rt, args.runs) for rt in runtimes}
        for rt in runtimes:
            ms = state_ms[rt.name]
            ratio = f"{ms / state_ms['runc']:9.2f}x" if "runc" in state_ms else ""
            goal = "   (goal <= runc)" if rt.name == "runnc-py" else ""
            print(f"{rt.name:<14}{ms:9.2f}{ratio}{goal}")

        python = os.path.realpath(sys.executable)
        site_on = import_cost(python, "pass", [])
        site_off = import_cost(python, "pass", ["-S"])
        paths = [str(REPO), sysconfig.get_paths()["purelib"]]
        hot = (
            f"import sys; sys.path[:0] = {paths!r}; from runnc_py.cli import main; "
            "from runnc_py.oci import lifecycle, signals"
        )
        hot_cost = import_cost(python, hot, ["-S"])
        click = import_cost(python, hot + "; import click", ["-S"])
        print("\nPython start-up on the hot path (state/kill/start/delete), median of 20, ms")
        print(f"  interpreter, no site (-S)          {site_off:7.1f}")
        print(f"  interpreter + site (.pth files)    {site_on:7.1f}   (+{site_on - site_off:.1f})")
        ours = hot_cost - site_off
        print(f"  -S + runnc_py.cli + lifecycle      {hot_cost:7.1f}   (+{ours:.1f} our imports)")
        print(f"  ... + click (avoided on that path) {click:7.1f}   (+{click - hot_cost:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
