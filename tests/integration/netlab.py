"""A Docker-like network lab built from scratch for each test that asks for `lab`.

    rnh-XXXX (host): br0 10.77.0.1/24 fd77::1/64 ── vh0 ═══ eth0 ── rnc-XXXX (container)
                                                                   10.77.0.2/24 fd77::2/64
                                                                   default via .1 / fd77::1
                                                                   10.99.0.0/16 via 10.77.0.254
Traffic only ever goes to addresses inside these namespaces; all of them are deleted after.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def sh(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=20)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class Lab:
    host: str
    ctr: str
    resolv: Path
    extra: list[str]

    @property
    def path(self) -> str:
        return f"/run/netns/{self.ctr}"

    def ip(self, ns: str, *args: str) -> str:
        return sh("ip", "-n", ns, *args)

    def ping(
        self, addr: str, *, count: int = 3, ns: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                ns or self.host,
                "ping",
                "-c",
                str(count),
                "-i",
                "0.2",
                "-W",
                "1",
                addr,
            ],
            capture_output=True,
            text=True,
            timeout=count + 5,
        )

    def state(self) -> dict[str, object]:
        """What wiring may change in the container namespace, for before/after comparisons."""
        links = json.loads(self.ip(self.ctr, "-j", "link", "show"))
        addrs = json.loads(self.ip(self.ctr, "-j", "addr", "show"))
        return {
            "links": sorted(link["ifname"] for link in links),
            "addrs": sorted(
                (a["ifname"], i["local"], i["prefixlen"])
                for a in addrs
                for i in a.get("addr_info", [])
                if i.get("scope") != "link"
            ),
            "routes4": self.ip(self.ctr, "route", "show"),
            "routes6": self.ip(self.ctr, "-6", "route", "show"),
            "qdiscs": sh("tc", "-n", self.ctr, "qdisc", "show"),
            "filters": sh("tc", "-n", self.ctr, "filter", "show", "dev", "eth0", "ingress"),
        }

    def add_container(self, addr: str) -> str:
        """Another container on the same bridge (plain veth, no wiring); returns its netns."""
        ns = f"{self.ctr}-{len(self.extra) + 2}"
        sh("ip", "netns", "add", ns)
        self.extra.append(ns)
        peer = f"vh{len(self.extra)}"
        self.ip(self.host, "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self.ip(self.host, "link", "set", peer, "master", "br0", "up")
        self.ip(ns, "link", "set", "eth0", "up")
        self.ip(ns, "addr", "add", addr, "dev", "eth0")
        return ns


@contextmanager
def network_lab(tmp_path: Path) -> Iterator[Lab]:
    tag = uuid.uuid4().hex[:6]
    host, ctr = f"rnh-{tag}", f"rnc-{tag}"
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.77.0.53\nsearch lab.example\noptions ndots:2\n")
    made = Lab(host, ctr, resolv, [])
    sh("ip", "netns", "add", host)
    try:
        sh("ip", "netns", "add", ctr)
        for args in (
            ("link", "add", "br0", "type", "bridge"),
            ("addr", "add", "10.77.0.1/24", "dev", "br0"),
            ("addr", "add", "fd77::1/64", "dev", "br0", "nodad"),
            ("link", "set", "br0", "up"),
            ("link", "add", "vh0", "type", "veth", "peer", "name", "eth0", "netns", ctr),
            ("link", "set", "vh0", "master", "br0", "up"),
        ):
            made.ip(host, *args)
        for args in (
            ("link", "set", "lo", "up"),
            ("link", "set", "eth0", "up"),
            ("addr", "add", "10.77.0.2/24", "dev", "eth0"),
            ("addr", "add", "fd77::2/64", "dev", "eth0", "nodad"),
            ("route", "add", "default", "via", "10.77.0.1"),
            ("-6", "route", "add", "default", "via", "fd77::1"),
            ("route", "add", "10.99.0.0/16", "via", "10.77.0.254"),
        ):
            made.ip(ctr, *args)
        yield made
    finally:
        for ns in (*made.extra, ctr, host):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for ns in (*made.extra, ctr, host):
            assert not os.path.exists(f"/run/netns/{ns}"), f"netns {ns} left behind"
