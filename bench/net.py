#!/usr/bin/env python3
"""Network benchmark (issues 6, 11): wiring time and import cost, lean rtnetlink codec against
the pyroute2-based wiring it replaced, and ping round trip through the tap vs a veth.

    python3 bench/net.py [--runs 30] [--cold 10] [--pings 300]      (root)

Builds its own namespaces (deleted at the end): a host with a bridge, container A (wired:
tap + tc redirect, a stand-in guest answering on the tap) and container B (plain veth, the
kernel answers). The previous implementation ("pyroute2": rtnl/read/wiring on pyroute2's
message classes) is taken from this repository's history (git show PREVIOUS) into a temporary
package, so both run on the same machine in the same run. Rows:
  import            read + wiring modules in a fresh `python -IS` that already imported what
                    `create` imports anyway (cli, lifecycle, autodev, handover, config, store)
  read_facts+wire   per call, cold (first call in a fresh process inside the namespace, what
                    `create`'s init pays; ours includes journaling every step to net.json) and
                    warm (repeated in one process, from outside: with the netns hop)
  unwire            per call, warm (the kernel's tap deletion dominates)
  ping rtt          host -> B (veth only, the kernel answers) vs host -> A through veth + tc +
                    tap, answered by our `net` test unikernel (runnc-py exec, its command line
                    rendered by the solo5-cmdline renderer) and by the Python stand-in guest;
                    plus the same unikernel on a bare tap pinged from its own namespace (no veth,
                    no bridge, no tc): the floor for any guest behind a tap, so the difference
                    to it is what our tc plumbing costs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SITE = sysconfig.get_paths()["purelib"]  # -IS leaves it out; /usr/local/bin/runnc-py adds it
PREVIOUS = "d3c68d2"  # the last commit whose wiring went through pyroute2's message classes
BASE = "import runnc_py.cli, runnc_py.oci.lifecycle, runnc_py.oci.autodev, runnc_py.net.handover, \
runnc_py.net.config, runnc_py.net.store"
COLD = """
import json, sys, tempfile, time
sys.path[:0] = sys.argv[1].split(":")
pkg, path = sys.argv[2], sys.argv[3]
BASE
import runnc_py.net.store as store
t0 = time.perf_counter()
read = __import__(pkg + ".read", fromlist=["x"])
wiring = __import__(pkg + ".wiring", fromlist=["x"])
t1 = time.perf_counter()
facts = read.read_facts(path)
t2 = time.perf_counter()
if pkg == "runnc_py.net":
    wired = wiring.wire(path, facts, journal=store.journal(tempfile.mkdtemp(), facts))
else:
    wired = wiring.wire(path, facts)
t3 = time.perf_counter()
wiring.unwire(wired)
print(json.dumps({"import": t1 - t0, "read": t2 - t1, "wire": t3 - t2,
                  "pyroute2": "pyroute2" in sys.modules}))
""".replace("BASE", BASE)


def previous_wiring(into: Path) -> str | None:
    """The pyroute2-based rtnl/read/wiring of PREVIOUS as package `prevnet` under INTO (their
    pure helpers, facts/wired/netns/naming, are today's); None without git or that commit."""
    pkg = into / "prevnet"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in ("rtnl", "read", "wiring"):
        done = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{PREVIOUS}:runnc_py/net/{name}.py"],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            return None
        text = done.stdout
        for mod in ("rtnl", "read", "wiring"):
            text = text.replace(f"runnc_py.net.{mod} import", f"prevnet.{mod} import")
        (pkg / f"{name}.py").write_text(text)
    return str(into)


def cold_runs(pkg: str, extra_path: str, ns: str, count: int) -> list[dict[str, float]]:
    """COLD in `count` fresh `python -IS` processes (the entry point's flags) inside namespace
    `ns`, as `create`'s init wires its own namespace; round robin is the caller's job."""
    netns = f"/run/netns/{ns}"
    python = ["ip", "netns", "exec", ns, sys.executable, "-IS", "-c", COLD]
    return [
        json.loads(
            subprocess.run(
                [*python, f"{REPO}:{extra_path}:{SITE}", pkg, netns],
                check=True,
                capture_output=True,
                text=True,
                cwd=REPO,
            ).stdout
        )
        for _ in range(count)
    ]


def warm_runs(
    impls: dict[str, tuple[Any, Any]], netns: str, runs: int
) -> dict[str, tuple[list[float], ...]]:
    """read_facts, wire and unwire times per implementation (its read and wiring modules),
    alternating implementations run by run so that drift in load hits them alike."""
    times: dict[str, tuple[list[float], ...]] = {name: ([], [], []) for name in impls}
    for _ in range(runs):
        for name, (read, wiring) in impls.items():
            t0 = time.perf_counter()
            facts = read.read_facts(netns)
            t1 = time.perf_counter()
            wired = wiring.wire(netns, facts)
            t2 = time.perf_counter()
            wiring.unwire(wired)
            t3 = time.perf_counter()
            for series, value in zip(times[name], (t1 - t0, t2 - t1, t3 - t2), strict=True):
                series.append(value)
    return times


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def build(tag: str) -> tuple[str, str, str]:
    host, a, b = f"rbh-{tag}", f"rba-{tag}", f"rbb-{tag}"
    for ns in (host, a, b):
        sh("ip", "netns", "add", ns)
    sh("ip", "-n", host, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", host, "addr", "add", "10.66.0.1/24", "dev", "br0")
    sh("ip", "-n", host, "link", "set", "br0", "up")
    for i, (ns, addr) in enumerate(((a, "10.66.0.2/24"), (b, "10.66.0.3/24"))):
        sh(
            "ip",
            "-n",
            host,
            "link",
            "add",
            f"vh{i}",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns,
        )
        sh("ip", "-n", host, "link", "set", f"vh{i}", "master", "br0", "up")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "addr", "add", addr, "dev", "eth0")
        sh("ip", "-n", ns, "route", "add", "default", "via", "10.66.0.1")
    return host, a, b


def ping_rtts(ns: str, addr: str, count: int) -> list[float]:
    """Per-packet RTTs in microseconds of `count` pings, 2 ms apart."""
    out = sh("ip", "netns", "exec", ns, "ping", "-c", str(count), "-i", "0.002", "-W", "1", addr)
    rtts = [float(t) * 1000 for t in re.findall(r"time=([\d.]+) ms", out)]
    if len(rtts) != count:
        raise SystemExit(f"ping {addr} lost packets:\n{out[-300:]}")
    return rtts


def compare(targets: dict[str, tuple[str, str]], pings: int, rounds: int = 5) -> dict[str, float]:
    """Median RTT (us) per target, pinging them in alternating rounds: this machine is shared,
    so drift in load hits every target alike instead of whichever ran last."""
    for ns, addr in targets.values():  # warm up ARP and caches
        sh("ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "1", addr)
    samples: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, (ns, addr) in targets.items():
            samples[name] += ping_rtts(ns, addr, max(1, pings // rounds))
    return {name: statistics.median(values) for name, values in samples.items()}


def net_guest(out: Path) -> Path | None:
    """Build our `net` test unikernel; None when this machine cannot (no gcc)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("runnc_build", REPO / "build.py")
    assert spec and spec.loader
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    try:
        build.build_guests(out)
    except (OSError, subprocess.CalledProcessError, SystemExit):
        return None
    path = out / "net.spt"
    return path if path.exists() else None


def bare_tap(tag: str) -> str:
    """A namespace whose tap0 carries 10.67.0.1/24: a guest on it is pinged without veth,
    bridge or tc."""
    ns = f"rbt-{tag}"
    sh("ip", "netns", "add", ns)
    sh("ip", "-n", ns, "tuntap", "add", "tap0", "mode", "tap")
    sh("ip", "-n", ns, "addr", "add", "10.67.0.1/24", "dev", "tap0")
    sh("ip", "-n", ns, "link", "set", "tap0", "up")
    return ns


@contextlib.contextmanager
def unikernel(ns: str, guest: Path, tap: str, mac: str, cmdline: str) -> Iterator[None]:
    """Our net test unikernel through `runnc-py exec` on `tap`, until the block ends."""
    argv = [sys.executable, "-m", "runnc_py.cli", "exec", "--mem", "8"]
    argv += ["--net", f"service0={tap}", "--net-mac", f"service0={mac}", str(guest)]
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, *argv, *cmdline.split()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        seen = b""
        deadline = time.monotonic() + 10
        while b"net: ready" not in seen:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"net guest did not start: {seen.decode(errors='replace')}")
            if select.select([proc.stdout], [], [], 0.1)[0]:
                seen += os.read(proc.stdout.fileno(), 4096)
        yield
    finally:
        proc.kill()
        proc.wait()


def med(values: list[float]) -> float:
    return statistics.median(values)


def report_wiring(
    cold: dict[str, list[dict[str, float]]], warm: dict[str, tuple[list[float], ...]]
) -> None:
    """One row per measure: ours (lean), the pyroute2-based one, their ratio; medians, and
    minimums (on a shared, loaded machine the floor says more about the code than the middle)."""
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in cold}
    for name, runs in cold.items():
        reads, wires, unwires = warm[name]
        samples[name] = {
            "import": [c["import"] for c in runs],
            "read_facts+wire cold": [c["read"] + c["wire"] for c in runs],
            "import+read+wire cold": [c["import"] + c["read"] + c["wire"] for c in runs],
            "read_facts+wire warm": [r + w for r, w in zip(reads, wires, strict=True)],
            "unwire warm": unwires,
        }
    if any(c["pyroute2"] for c in cold["lean"]):
        print("  NOTE: the lean path imported pyroute2")
    goals = {"import": "goal < 5 ms", "read_facts+wire cold": "goal < 5 ms"}
    prev = samples.get("pyroute2")
    print(
        f"  {'ms (median / min)':24}{'lean':>15}"
        + (f"{'pyroute2':>17}   lean/pyroute2" if prev else "")
    )
    for measure, values in samples["lean"].items():
        line = f"  {measure:24}{med(values) * 1e3:7.2f} /{min(values) * 1e3:6.2f}"
        if prev:
            old = prev[measure]
            line += f"  {med(old) * 1e3:7.2f} /{min(old) * 1e3:6.2f}"
            line += f"   {med(values) / med(old):5.3f}x / {min(values) / min(old):5.3f}x"
        print(f"{line}  {goals.get(measure, '')}".rstrip())
    if not prev:
        print(f"  (pyroute2 columns skipped: commit {PREVIOUS} not reachable with git)")


def measure_wiring(
    ns: str, cold_count: int, warm_count: int
) -> tuple[dict[str, list[dict[str, float]]], dict[str, tuple[list[float], ...]]]:
    """Cold and warm wiring of namespace `ns`, ours ("lean") and the previous one ("pyroute2",
    when git has it), alternated."""
    import runnc_py.net.read
    import runnc_py.net.wiring

    impls: dict[str, tuple[str, str]] = {"lean": ("runnc_py.net", "")}
    modules: dict[str, tuple[Any, Any]] = {"lean": (runnc_py.net.read, runnc_py.net.wiring)}
    prev_path = previous_wiring(Path(tempfile.mkdtemp(prefix="runnc-bench-prev-")))
    if prev_path is not None:
        impls["pyroute2"] = ("prevnet", prev_path)
        sys.path.insert(0, prev_path)
        import prevnet.read  # type: ignore[import-not-found]
        import prevnet.wiring  # type: ignore[import-not-found]

        modules["pyroute2"] = (prevnet.read, prevnet.wiring)
    cold: dict[str, list[dict[str, float]]] = {name: [] for name in impls}
    for _ in range(cold_count):  # round robin: drift in load hits both alike
        for name, (pkg, extra_path) in impls.items():
            cold[name] += cold_runs(pkg, extra_path, ns, 1)
    return cold, warm_runs(modules, f"/run/netns/{ns}", warm_count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="warm wire/unwire cycles")
    parser.add_argument("--cold", type=int, default=10, help="fresh processes")
    parser.add_argument("--pings", type=int, default=300)
    args = parser.parse_args()

    from runnc_py.net.echo_guest import EchoGuest
    from runnc_py.net.read import read_facts
    from runnc_py.net.solo5 import render_solo5_cmdline
    from runnc_py.net.wiring import unwire, wire

    guests = Path(tempfile.mkdtemp(prefix="runnc-bench-net-"))
    guest = net_guest(guests)

    tag = uuid.uuid4().hex[:6]
    host, a, b = build(tag)
    extra: list[str] = []
    uni: dict[str, float] = {}
    path_a = f"/run/netns/{a}"
    try:
        cold, warm = measure_wiring(a, args.cold, args.runs)
        facts = read_facts(path_a)
        wired = wire(path_a, facts)
        try:
            nic = wired.devices[0]
            veth = (host, "10.66.0.3")
            if guest is not None:
                bare = bare_tap(tag)
                extra.append(bare)
                with (
                    unikernel(a, guest, nic.tap, nic.mac, render_solo5_cmdline(facts)),
                    unikernel(bare, guest, "tap0", "02:00:0a:43:00:02", "--ipv4=10.67.0.2/24"),
                ):
                    uni = compare(
                        {"veth": veth, "wired": (host, "10.66.0.2"), "bare": (bare, "10.67.0.2")},
                        args.pings,
                    )
            with EchoGuest(path_a, nic.tap, nic.mac, ["10.66.0.2"]):
                py = compare({"veth": veth, "wired": (host, "10.66.0.2")}, args.pings)
        finally:
            unwire(wired)
    finally:
        for ns in (*extra, a, b, host):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(guests, ignore_errors=True)

    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"runnc-py network wiring, 1 interface ({args.runs} warm runs, {args.cold} cold; "
          f"load average {load} on {os.cpu_count()} CPUs), medians")  # fmt: skip
    report_wiring(cold, warm)
    print(f"ping rtt, median of {args.pings} per target, 2 ms apart, targets alternated")
    if uni:
        print(f"  plain veth            {uni['veth']:6.1f} us")
        ratio = uni["wired"] / uni["veth"]
        print(f"  wired + net unikernel {uni['wired']:6.1f} us   {ratio:.2f}x veth   (goal < 2x)")
        print(
            f"  bare tap + unikernel  {uni['bare']:6.1f} us   {uni['bare'] / uni['veth']:.2f}x veth"
            "   (the floor for a guest behind a tap)"
        )
    else:
        print("  net unikernel rows    skipped (could not build the test guests)")
    print(f"  plain veth            {py['veth']:6.1f} us")
    print(f"  wired + Python guest  {py['wired']:6.1f} us   {py['wired'] / py['veth']:.2f}x veth")


if __name__ == "__main__":
    main()
