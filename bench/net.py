#!/usr/bin/env python3
"""Network benchmark (issue 6): wiring time, and ping round trip through the tap vs a veth.

    python3 bench/net.py [--runs 30] [--cold 10] [--pings 300]      (root)

Builds its own namespaces (deleted at the end): a host with a bridge, container A (wired:
tap + tc redirect, a stand-in guest answering on the tap) and container B (plain veth, the
kernel answers). Rows:
  import            importing runnc_py.net.read + wiring (pyroute2 included), fresh process
  read_facts/wire   per call, warm (repeated in one process) and cold (first call in a fresh
                    process, what `create` pays); wire includes the netns hop and 2 dumps
  unwire            per call, warm (the kernel's tap deletion dominates)
  ping rtt          host -> A through veth + tc + tap + Python guest, vs host -> B (veth only)
The guest here is Python (tens of microseconds per packet); a unikernel answers faster, so the
tap ratio is an upper bound for the plumbing.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

COLD = """
import json, sys, time
t0 = time.perf_counter()
import runnc_py.net.read, runnc_py.net.wiring
t1 = time.perf_counter()
facts = runnc_py.net.read.read_facts(sys.argv[1])
t2 = time.perf_counter()
wired = runnc_py.net.wiring.wire(sys.argv[1], facts)
t3 = time.perf_counter()
runnc_py.net.wiring.unwire(wired)
print(json.dumps({"import": t1 - t0, "read": t2 - t1, "wire": t3 - t2}))
"""


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


def ping_rtt(host: str, addr: str, count: int) -> float:
    """Average RTT in microseconds of `count` pings, 2 ms apart, after a warm-up ping."""
    sh("ip", "netns", "exec", host, "ping", "-c", "3", "-i", "0.2", "-W", "1", addr)
    out = sh(
        "ip", "netns", "exec", host, "ping", "-q", "-c", str(count), "-i", "0.002", "-W", "1", addr
    )
    if f"{count} received" not in out:
        raise SystemExit(f"ping {addr} lost packets:\n{out}")
    avg = re.search(r"= [\d.]+/([\d.]+)/", out)
    assert avg, out
    return float(avg.group(1)) * 1000


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1e3:7.2f} ms  min {min(values) * 1e3:7.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="warm wire/unwire cycles")
    parser.add_argument("--cold", type=int, default=10, help="fresh processes")
    parser.add_argument("--pings", type=int, default=300)
    args = parser.parse_args()

    from runnc_py.net.echo_guest import EchoGuest
    from runnc_py.net.read import read_facts
    from runnc_py.net.wiring import unwire, wire

    host, a, b = build(uuid.uuid4().hex[:6])
    path_a = f"/run/netns/{a}"
    try:
        cold = [
            json.loads(
                subprocess.run(
                    [sys.executable, "-c", COLD, path_a],
                    check=True,
                    capture_output=True,
                    text=True,
                    cwd=REPO,
                ).stdout
            )
            for _ in range(args.cold)
        ]
        reads, wires, unwires = [], [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            facts = read_facts(path_a)
            t1 = time.perf_counter()
            wired = wire(path_a, facts)
            t2 = time.perf_counter()
            unwire(wired)
            t3 = time.perf_counter()
            reads.append(t1 - t0)
            wires.append(t2 - t1)
            unwires.append(t3 - t2)

        facts = read_facts(path_a)
        wired = wire(path_a, facts)
        try:
            nic = wired.devices[0]
            with EchoGuest(path_a, nic.tap, nic.mac, [a.ipv4[0].addr for a in facts.interfaces]):
                tap_rtt = ping_rtt(host, "10.66.0.2", args.pings)
            veth_rtt = ping_rtt(host, "10.66.0.3", args.pings)
        finally:
            unwire(wired)
    finally:
        for ns in (a, b, host):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    both_warm = [r + w for r, w in zip(reads, wires, strict=True)]
    both_cold = [c["read"] + c["wire"] for c in cold]
    print(f"runnc-py network wiring, 1 interface ({args.runs} warm runs, {args.cold} cold)")
    print(f"  import (pyroute2)     {ms([c['import'] for c in cold])}")
    print(f"  read_facts warm       {ms(reads)}")
    print(f"  wire warm             {ms(wires)}")
    print(f"  read_facts+wire warm  {ms(both_warm)}")
    print(f"  read_facts cold       {ms([c['read'] for c in cold])}")
    print(f"  wire cold             {ms([c['wire'] for c in cold])}")
    print(f"  read_facts+wire cold  {ms(both_cold)}   (goal < 5 ms)")
    print(f"  unwire warm           {ms(unwires)}")
    print(f"ping rtt ({args.pings} pings, 2 ms apart)")
    print(f"  plain veth            {veth_rtt:7.1f} us")
    print(f"  veth+tc+tap+guest     {tap_rtt:7.1f} us   ratio {tap_rtt / veth_rtt:.2f}x veth")


if __name__ == "__main__":
    main()
