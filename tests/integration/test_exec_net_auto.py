"""`runnc-py exec --net-auto`: the namespace's eth0 handed to the real `net` unikernel."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import runnc_binary
from tests.integration.netlab import Lab
from tests.integration.test_exec import wait_for_line

pytestmark = pytest.mark.root


def test_net_auto_gives_the_guest_eth0_and_undoes_it_on_exit(lab: Lab, guests: Path) -> None:
    # The command-line form has no route flags: drop the lab's extra static route first.
    lab.ip(lab.ctr, "route", "del", "10.99.0.0/16")
    before = lab.state()
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.ctr,
            *runnc_binary(),
            "exec",
            "--net-auto",
            "--mem",
            "8",
            str(guests / "net.spt"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_line(proc, b"net: ready")
        during = lab.state()
        assert "10.77.0.2" not in str(during["addrs"]), "the host stack must not answer for it"
        for addr in ("10.77.0.2", "fd77::2"):
            ping = lab.ping(addr)
            assert ping.returncode == 0 and " 0% packet loss" in ping.stdout, ping.stdout
    finally:
        proc.send_signal(signal.SIGTERM)  # to the supervisor, which forwards it to the guest
        status = proc.wait(timeout=20)
    assert status == -signal.SIGTERM, proc.stderr.read() if proc.stderr else status
    assert lab.state() == before, "taps, filters and addresses must be as they were"


def test_net_auto_refuses_a_namespace_without_interfaces(guests: Path, netns: str) -> None:
    proc = subprocess.run(
        ["ip", "netns", "exec", netns, *runnc_binary(), "exec", "--net-auto",
         str(guests / "net.spt")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "interface" in proc.stderr
    links = subprocess.run(["ip", "-n", netns, "-o", "link"], capture_output=True, text=True)
    assert links.stdout.count("\n") == 1, links.stdout  # only lo: no tap was left behind
