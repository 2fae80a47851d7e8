#!/usr/bin/env python3
"""How many idle spt guests fit on this host: N `time sleep=...` containers through
`create` + `start`, until N is reached or a limit stops us (memory, pids, fds, cgroups).

Prints host memory per guest (MemAvailable before/after, divided by the guests running) and
the guests' own RSS, then kills and deletes every container and checks nothing is left
(state dirs, cgroups, processes). With SOLO5_SPT=/path/to/solo5-spt the same number of idle
guests run under solo5-spt alike, and the table shows runnc-py / solo5-spt as a ratio.

    python3 bench/density.py --count 500            # default 200
    python3 bench/density.py --count 10000 --jobs 2 # the issue's goal: 10 000 on 24 GiB

Not a test: nothing here asserts; it reports which limit was hit and what raises it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import build_guests

RUNTIME = ["/usr/local/bin/runnc-py"]
SLEEP_SECONDS = 3600
GUEST_MEM_MB = 2  # the idle guest touches a few pages; the mapping size is what the filter pins


def mem_available_kib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    raise SystemExit("no MemAvailable in /proc/meminfo")


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def limits_text() -> str:
    """The host limits that can stop the run, to name the one hit."""
    import resource

    nproc = resource.getrlimit(resource.RLIMIT_NPROC)
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    pid_max = Path("/proc/sys/kernel/pid_max").read_text().strip()
    threads_max = Path("/proc/sys/kernel/threads-max").read_text().strip()
    return (
        f"RLIMIT_NPROC {nproc}, RLIMIT_NOFILE {nofile}, kernel.pid_max {pid_max}, "
        f"kernel.threads-max {threads_max}"
    )


def bundle_for(work: Path, guest: Path) -> Path:
    from runnc_py.oci.features import spec_template

    bundle = work / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    shutil.copy(guest, bundle / "rootfs" / "time.spt")
    config = spec_template("/time.spt")
    config["process"]["args"] = ["/time.spt", f"sleep={SLEEP_SECONDS}"]
    config["annotations"] = {"org.runnc-py.mem": str(GUEST_MEM_MB)}
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


class Fleet:
    """N containers under one --root, created and started by `jobs` workers."""

    def __init__(self, root: Path, bundle: Path) -> None:
        self.root = root
        self.bundle = bundle
        self.log = root.parent / "runtime.log"
        self.pids: dict[str, int] = {}
        self.failure = ""

    def cmd(self, *args: str) -> int:
        """Run a verb; its errors go to the JSON log (the guest inherits create's stdio, so
        a pipe here would never see EOF)."""
        return subprocess.run(
            [*RUNTIME, "--root", str(self.root), "--log", str(self.log), "--log-format", "json",
             *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        ).returncode  # fmt: skip

    def last_error(self) -> str:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        errors = [json.loads(line)["msg"] for line in lines if '"error"' in line]
        return errors[-1] if errors else "no message"

    def launch(self, index: int) -> None:
        if self.failure:
            return
        cid = f"dens-{index}"
        pid_file = self.root.parent / "pids" / cid
        status = self.cmd("create", "--bundle", str(self.bundle), "--pid-file", str(pid_file), cid)
        if status == 0:
            self.pids[cid] = int(pid_file.read_text())
            status = self.cmd("start", cid)
        if status != 0:
            self.failure = self.failure or f"{cid}: {self.last_error()}"
            self.cmd("delete", "--force", cid)
            self.pids.pop(cid, None)

    def teardown(self) -> list[str]:
        """Kill and delete every container; what was left behind."""
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda c: self.cmd("kill", c, "KILL"), list(self.pids)))
            list(pool.map(lambda c: self.cmd("delete", "--force", c), list(self.pids)))
        left = [p.name for p in self.root.iterdir()] if self.root.exists() else []
        alive = [c for c, pid in self.pids.items() if rss_kib(pid) > 0]
        cgroups = [
            str(d)
            for d in Path("/sys/fs/cgroup").glob("*/runnc-py/dens-*")
            if d.is_dir()
        ] + [str(d) for d in Path("/sys/fs/cgroup").glob("runnc-py/dens-*") if d.is_dir()]
        return [f"state dir {n}" for n in left] + [f"guest {c}" for c in alive] + cgroups


def solo5_fleet(count: int, guest: Path) -> tuple[float, int] | None:
    """(MiB of host memory per guest, guests started) for solo5-spt run alike, or None."""
    tender = os.environ.get("SOLO5_SPT")
    if not tender:
        return None
    before = mem_available_kib()
    procs = []
    try:
        for _ in range(count):
            procs.append(
                subprocess.Popen(
                    [tender, f"--mem={GUEST_MEM_MB}", str(guest), f"sleep={SLEEP_SECONDS}"],
                    stdout=subprocess.DEVNULL,
                )
            )
        time.sleep(1)
        used = before - mem_available_kib()
        return used / 1024 / max(1, len(procs)), len(procs)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="guests to start (default 200)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel create+start workers")
    parser.add_argument(
        "--min-free-mib", type=int, default=1024, help="stop when MemAvailable drops below"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (containers need namespaces and cgroups)")

    work = Path(tempfile.mkdtemp(prefix="runnc-density-"))
    guests = build_guests(work / "guests")
    fleet = Fleet(work / "root", bundle_for(work, guests / "time.spt"))
    (work / "pids").mkdir()
    print(f"host limits: {limits_text()}")
    before = mem_available_kib()
    started = time.monotonic()
    stopped_by = "the requested count"
    try:
        with ThreadPoolExecutor(args.jobs) as pool:
            index = 0
            while index < args.count and not fleet.failure:
                batch = range(index, min(args.count, index + 50))
                list(pool.map(fleet.launch, batch))
                index = batch.stop
                if mem_available_kib() < args.min_free_mib * 1024:
                    stopped_by = f"MemAvailable below {args.min_free_mib} MiB"
                    break
                print(f"  {len(fleet.pids)} guests running", end="\r", flush=True)
        if fleet.failure:
            stopped_by = f"an error: {fleet.failure}"
        elapsed = time.monotonic() - started
        time.sleep(1)  # let page cache and slab settle
        running = len(fleet.pids)
        used_mib = (before - mem_available_kib()) / 1024
        guest_rss = sum(rss_kib(pid) for pid in fleet.pids.values()) / 1024
    finally:
        left = fleet.teardown()
        shutil.rmtree(work, ignore_errors=True)

    per_guest = used_mib / max(1, running)
    print(f"\n{running} idle spt guests through create+start in {elapsed:.0f} s "
          f"({running / max(elapsed, 1e-9):.1f}/s); stopped by {stopped_by}")  # fmt: skip
    print(f"{'':28} {'host MiB/guest':>15} {'guest RSS MiB total':>20}")
    print(f"{'runnc-py':28} {per_guest:>15.3f} {guest_rss:>20.1f}")
    peer = solo5_fleet(min(running, 1000), guests / "time.spt")
    if peer is not None:
        peer_mib, peer_n = peer
        print(f"{f'solo5-spt ({peer_n} guests)':28} {peer_mib:>15.3f}")
        print(f"ratio runnc-py / solo5-spt: {per_guest / peer_mib:.2f}x")
    else:
        print("solo5-spt: set SOLO5_SPT=/path/to/solo5-spt to measure it alike")
    goal = 24 * 1024 / 10_000
    print(f"goal: 10 000 guests on 24 GiB -> at most {goal:.2f} MiB per guest "
          f"({'met' if per_guest <= goal else 'missed'} at this count)")  # fmt: skip
    print("teardown: " + ("nothing left" if not left else f"LEFT BEHIND: {left[:10]}"))
    return 0 if not left else 1


if __name__ == "__main__":
    sys.exit(main())
