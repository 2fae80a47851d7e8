"""Real netlink: a Docker-like pair of namespaces built here, read, wired to a tap, pinged
through a stand-in guest on that tap, unwired; and failures that must leave nothing behind.

Layout (per test, unique names, always deleted):

    rnh-XXXX (host): br0 10.77.0.1/24 fd77::1/64 ── vh0 ═══ eth0 ── rnc-XXXX (container)
                                                                   10.77.0.2/24 fd77::2/64
                                                                   default via .1 / fd77::1
                                                                   10.99.0.0/16 via 10.77.0.254
Traffic only ever goes to addresses inside these namespaces.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runnc_py.errors import RunncError
from runnc_py.net import read_facts, unwire, wire
from runnc_py.net.config import guest_config
from runnc_py.net.echo_guest import EchoGuest
from runnc_py.net.facts import Address, NetworkFacts, Route
from tests.integration.netlab import Lab, sh

pytestmark = pytest.mark.root


def eth0_mac(lab: Lab) -> str:
    return json.loads(lab.ip(lab.ctr, "-j", "link", "show", "eth0"))[0]["address"]


def test_read_facts_sees_what_the_engine_set_up(lab: Lab) -> None:
    facts = read_facts(lab.path, str(lab.resolv))
    (eth0,) = facts.interfaces  # lo is not a fact
    assert eth0.name == "eth0"
    assert eth0.mac == eth0_mac(lab)
    assert eth0.mtu == 1500
    assert eth0.ipv4 == (Address("10.77.0.2", 24),)
    assert eth0.ipv6 == (Address("fd77::2", 64),)  # the link-local one is not a fact
    assert set(eth0.routes) == {
        Route("0.0.0.0", 0, "10.77.0.1", "eth0"),
        Route("10.99.0.0", 16, "10.77.0.254", "eth0"),
        Route("::", 0, "fd77::1", "eth0", metric=1024),
    }
    assert facts.dns.nameservers == ("10.77.0.53",)
    assert facts.dns.search == ("lab.example",)


def test_read_facts_sees_every_interface_and_host_prefixes(lab: Lab) -> None:
    lab.ip(lab.ctr, "link", "add", "net1", "type", "veth", "peer", "name", "net1p")
    lab.ip(lab.ctr, "link", "set", "net1", "mtu", "9000", "up")
    lab.ip(lab.ctr, "addr", "add", "10.88.0.5/32", "dev", "net1")
    lab.ip(lab.ctr, "addr", "add", "2001:db8::5/128", "dev", "net1", "nodad")
    lab.ip(lab.ctr, "tuntap", "add", "othertap", "mode", "tap")  # not the container's network
    facts = read_facts(lab.path)
    names = [i.name for i in facts.interfaces]
    assert names[0] == "eth0"  # the default route's interface is the guest's first device
    assert sorted(names) == ["eth0", "net1", "net1p"]
    net1 = next(i for i in facts.interfaces if i.name == "net1")
    assert (net1.mtu, net1.ipv4, net1.ipv6) == (
        9000,
        (Address("10.88.0.5", 32),),
        (Address("2001:db8::5", 128),),
    )
    assert facts.dns.nameservers == ()


def test_wire_builds_taps_and_filters_then_unwire_restores_everything(lab: Lab) -> None:
    from pyroute2 import IPRoute  # checked with pyroute2's own high-level API, not our client

    before, facts = lab.state(), read_facts(lab.path)
    wired = wire(lab.path, facts)
    ((device, tap, mac, mtu, iface),) = wired.devices
    assert (device, tap, mac, mtu, iface) == ("service0", "tapeth0", eth0_mac(lab), 1500, "eth0")
    with IPRoute(netns=lab.path, flags=0) as ipr:
        eth0 = ipr.link_lookup(ifname="eth0")[0]
        (tap_link,) = ipr.get_links(ifname="tapeth0")
        info = dict(tap_link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")["attrs"])
        assert tap_link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "tun"
        assert (info["IFLA_TUN_TYPE"], info["IFLA_TUN_PI"], info["IFLA_TUN_PERSIST"]) == (2, 0, 1)
        assert tap_link["flags"] & 1 and tap_link.get_attr("IFLA_MTU") == 1500
        for src, dst in ((eth0, tap_link["index"]), (tap_link["index"], eth0)):
            (mirred,) = [
                f.get_nested("TCA_OPTIONS", "TCA_U32_ACT").get_attr("TCA_ACT_PRIO_1")
                for f in ipr.get_filters(index=src, parent=0xFFFF0000)
                if f.get_nested("TCA_OPTIONS", "TCA_U32_ACT")
            ]
            parms = mirred.get_nested("TCA_ACT_OPTIONS", "TCA_MIRRED_PARMS")
            assert mirred.get_attr("TCA_ACT_KIND") == "mirred"
            assert (parms["eaction"], parms["ifindex"]) == (1, dst)  # egress redirect to the other
        assert ipr.get_addr(index=eth0) == ()  # no address left: the host stack stays silent
        assert ipr.get_addr(index=tap_link["index"]) == ()  # not even a link-local on the tap
    unwire(wired)
    assert lab.state() == before
    assert read_facts(lab.path) == facts
    unwire(wired)  # a second unwire finds nothing to do
    assert lab.state() == before


def test_guest_on_the_tap_answers_the_host_and_the_host_stack_does_not(lab: Lab) -> None:
    facts = read_facts(lab.path)
    wired = wire(lab.path, facts)
    try:
        silent = lab.ping("10.77.0.2", count=1)
        assert silent.returncode != 0, "the container's own stack answered in the guest's place"
        (nic,) = wired.devices
        with EchoGuest(lab.path, nic.tap, nic.mac, ["10.77.0.2", "fd77::2"]) as guest:
            for addr in ("10.77.0.2", "fd77::2"):
                proc = lab.ping(addr)
                assert proc.returncode == 0, proc.stdout + proc.stderr
                assert " 3 received" in proc.stdout
            neighbours = lab.ip(lab.host, "neigh", "show", "10.77.0.2")
            assert nic.mac in neighbours  # the network sees the container's MAC, nothing else
            assert guest.answered >= 6
    finally:
        unwire(wired)


def test_second_container_on_the_bridge_reaches_the_guest(lab: Lab) -> None:
    other = lab.add_container("10.77.0.3/24")
    wired = wire(lab.path, read_facts(lab.path))
    try:
        (nic,) = wired.devices
        with EchoGuest(lab.path, nic.tap, nic.mac, ["10.77.0.2"]):
            proc = lab.ping("10.77.0.2", ns=other)
            assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        unwire(wired)


def test_unwire_in_another_process_from_the_stored_json(lab: Lab, tmp_path: Path) -> None:
    before = lab.state()
    wired = wire(lab.path, read_facts(lab.path))
    record = tmp_path / "wired.json"
    record.write_text(json.dumps(wired.to_dict()))
    code = "import json,sys; from runnc_py.net import unwire; unwire(json.load(open(sys.argv[1])))"
    proc = subprocess.run([sys.executable, "-c", code, str(record)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert lab.state() == before


def test_unwire_after_the_namespace_is_gone_is_a_no_op(lab: Lab) -> None:
    wired = wire(lab.path, read_facts(lab.path))
    sh("ip", "netns", "del", lab.ctr)
    unwire(wired)


def test_tap_name_clash_fails_cleanly(lab: Lab) -> None:
    lab.ip(lab.ctr, "tuntap", "add", "tapeth0", "mode", "tap")  # a stale tap
    before = lab.state()
    with pytest.raises(RunncError, match="a device named tapeth0 already exists"):
        wire(lab.path, read_facts(lab.path))
    assert lab.state() == before


def test_failure_on_a_later_interface_rolls_back_the_earlier_ones(lab: Lab) -> None:
    lab.ip(lab.ctr, "link", "add", "net1", "type", "veth", "peer", "name", "net1p")
    lab.ip(lab.ctr, "addr", "add", "10.88.0.5/24", "dev", "net1")
    facts = read_facts(lab.path)
    last = facts.interfaces[-1].name
    assert facts.interfaces[0].name == "eth0" and len(facts.interfaces) == 3
    lab.ip(lab.ctr, "tuntap", "add", f"tap{last}", "mode", "tap")  # the last tap name is taken
    before = lab.state()
    with pytest.raises(RunncError, match=f"tap{last} already exists"):
        wire(lab.path, facts)
    assert lab.state() == before
    assert read_facts(lab.path) == facts
    assert "10.88.0.5/24" in lab.ip(lab.ctr, "addr", "show", "net1")


def test_an_existing_ingress_qdisc_is_not_taken_over(lab: Lab) -> None:
    sh("tc", "-n", lab.ctr, "qdisc", "add", "dev", "eth0", "ingress")
    before = lab.state()
    with pytest.raises(RunncError, match="eth0 already has an ingress qdisc"):
        wire(lab.path, read_facts(lab.path))
    assert lab.state() == before


def test_more_interfaces_than_guest_devices_is_refused_before_any_change(lab: Lab) -> None:
    lab.ip(lab.ctr, "link", "add", "net1", "type", "veth", "peer", "name", "net1p")
    before = lab.state()
    with pytest.raises(RunncError, match="3 interfaces but the guest has 1 network device"):
        wire(lab.path, read_facts(lab.path), max_devices=1)
    assert lab.state() == before


def test_a_namespace_with_only_lo(lab: Lab) -> None:
    lonely = lab.add_container("10.77.0.9/24")
    lab.ip(lonely, "link", "del", "eth0")
    facts = read_facts(f"/run/netns/{lonely}")
    assert facts == NetworkFacts(interfaces=())
    with pytest.raises(RunncError, match="no network interface"):
        wire(f"/run/netns/{lonely}", facts)


def test_a_missing_namespace_is_one_clear_error(lab: Lab) -> None:
    missing = f"/run/netns/{lab.ctr}-missing"
    with pytest.raises(RunncError) as err:
        read_facts(missing)
    assert (err.value.where, err.value.message) == (missing, "network namespace does not exist")
    with pytest.raises(RunncError, match="network namespace does not exist"):
        wire(missing, read_facts(lab.path))
    assert not os.path.exists(missing)  # pyroute2's habit of creating it on open is avoided


def test_net_facts_command_renders_the_guest_config(lab: Lab) -> None:
    from tests.conftest import runnc_binary

    proc = subprocess.run(
        [
            *runnc_binary(),
            "net",
            "facts",
            "--netns",
            lab.path,
            "--resolv-conf",
            str(lab.resolv),
            "--config",
            "lkl-json",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    facts = NetworkFacts.from_dict(out["facts"])
    assert out["config"]["text"] == guest_config(facts, "lkl-json")
    assert json.loads(out["config"]["text"])["route"] == "10.99.0.0/16=10.77.0.254"


OPEN_AS = """
import fcntl, os, struct, sys
uid = int(sys.argv[2])
# Opened before dropping privileges, as the container's init does: the host's /dev/net/tun mode
# (0666 or Debian's 0600) must not decide the test; the tap's owner must.
fd = os.open("/dev/net/tun", os.O_RDWR)
os.setgroups([]); os.setgid(uid); os.setuid(uid)  # no capabilities left
try:
    fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH22x", sys.argv[1].encode(), 0x1002))
except PermissionError:
    sys.exit(13)
"""


def test_tap_owner_keeps_other_users_off_the_tap(lab: Lab) -> None:
    def open_as(uid: int) -> int:
        cmd = ["ip", "netns", "exec", lab.ctr, sys.executable, "-c", OPEN_AS, "tapeth0", str(uid)]
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode

    wired = wire(lab.path, read_facts(lab.path), owner=65534, group=65534)
    try:
        assert open_as(65534) == 0  # the container's user may attach without CAP_NET_ADMIN
        assert open_as(65533) == 13  # anyone else may not
    finally:
        unwire(wired)


def test_real_net_unikernel_on_the_wired_tap_answers_v4_and_v6(lab: Lab, guests: Path) -> None:
    """Our `net` test unikernel through `runnc-py exec`, told its addresses by the solo5-cmdline
    renderer, given the container's MAC: the path a container's unikernel takes."""
    import select

    from tests.conftest import runnc_binary

    facts = read_facts(lab.path)
    wired = wire(lab.path, facts)
    (nic,) = wired.devices
    try:
        # The renderer refuses the lab's static route (MirageOS has no route flags), so the
        # guest gets the interface alone.
        eth0 = facts.interfaces[0]
        only_eth0 = NetworkFacts(interfaces=(eth0.replace(routes=eth0.routes[:0]),))
        args = guest_config(only_eth0, "solo5-cmdline").split()
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                lab.ctr,
                *runnc_binary(),
                "exec",
                "--mem",
                "8",
                "--net",
                f"{nic.guest_device}={nic.tap}",
                "--net-mac",
                f"{nic.guest_device}={nic.mac}",
                str(guests / "net.spt"),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            assert proc.stdout is not None
            seen = b""
            while b"net: ready" not in seen:
                assert select.select([proc.stdout], [], [], 10)[0], seen
                chunk = os.read(proc.stdout.fileno(), 4096)
                assert chunk, seen
                seen += chunk
            for addr in ("10.77.0.2", "fd77::2"):
                ping = lab.ping(addr)
                assert ping.returncode == 0, ping.stdout + ping.stderr
        finally:
            proc.kill()
            proc.wait()
    finally:
        unwire(wired)


def reference_wiring(lab: Lab) -> None:
    """The same wiring done by hand with iproute2: an implementation independent of ours."""
    ns = lab.ctr
    lab.ip(ns, "tuntap", "add", "tapeth0", "mode", "tap")
    lab.ip(ns, "link", "set", "tapeth0", "mtu", "1500", "addrgenmode", "none")
    lab.ip(ns, "link", "set", "tapeth0", "up")
    for dev, to in (("tapeth0", "eth0"), ("eth0", "tapeth0")):
        sh("tc", "-n", ns, "qdisc", "add", "dev", dev, "ingress")
        sh("tc", "-n", ns, "filter", "add", "dev", dev, "parent", "ffff:", "protocol", "all",
           "prio", "1", "u32", "match", "u32", "0", "0",
           "action", "mirred", "egress", "redirect", "dev", to)  # fmt: skip
    lab.ip(ns, "addr", "flush", "dev", "eth0")


def wiring_seen(path: str) -> dict[str, object]:
    """What pyroute2 reads back of a wired namespace, with ifindexes and MACs named away."""
    from pyroute2 import IPRoute

    with IPRoute(netns=path, flags=0) as ipr:
        links = {link["index"]: link for link in ipr.get_links()}

        def name(index: int) -> str:
            return str(links[index].get_attr("IFLA_IFNAME")) if index in links else f"#{index}"

        seen: dict[str, object] = {}
        for link in links.values():
            kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
            data = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA") if kind == "tun" else None
            tun = {k: v for k, v in data["attrs"] if k != "IFLA_TUN_NUM_QUEUES"} if data else {}
            seen[f"link {link.get_attr('IFLA_IFNAME')}"] = (
                kind,
                link["flags"] & 1,  # IFF_UP
                link.get_attr("IFLA_MTU"),
                tun,
                link.get_nested("IFLA_AF_SPEC", "AF_INET6", "IFLA_INET6_ADDR_GEN_MODE"),
            )
        seen["ingress"] = sorted(
            (name(q["index"]), q.get_attr("TCA_KIND"))
            for q in ipr.get_qdiscs()
            if q["parent"] == 0xFFFFFFF1
        )
        for index in links:
            for f in ipr.get_filters(index=index, parent=0xFFFF0000):
                act = f.get_nested("TCA_OPTIONS", "TCA_U32_ACT")
                if not act:
                    continue
                mirred = act.get_attr("TCA_ACT_PRIO_1")
                parms = mirred.get_nested("TCA_ACT_OPTIONS", "TCA_MIRRED_PARMS")
                sel = f.get_nested("TCA_OPTIONS", "TCA_U32_SEL")
                seen[f"filter {name(index)}"] = (
                    f.get_attr("TCA_KIND"),
                    f["info"],  # protocol + priority
                    mirred.get_attr("TCA_ACT_KIND"),
                    (parms["eaction"], parms["action"], name(parms["ifindex"])),
                    (
                        sel["flags"],
                        sel["nkeys"],
                        [(k["key_mask"], k["key_val"], k["key_off"]) for k in sel["keys"]],
                    ),
                )
        seen["addresses"] = sorted(
            (name(a["index"]), a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr()
        )
        seen["routes"] = sorted(
            (r["family"], r.get_attr("RTA_DST"), r["dst_len"], r.get_attr("RTA_GATEWAY"))
            for r in ipr.get_routes(family=0, table=254)
        )
    return seen


def test_our_wiring_equals_the_same_wiring_by_iproute2_read_back_with_pyroute2(
    lab: Lab, tmp_path: Path
) -> None:
    from tests.integration.netlab import network_lab

    wired = wire(lab.path, read_facts(lab.path))
    try:
        ours = wiring_seen(lab.path)
        (tmp_path / "reference").mkdir()
        with network_lab(tmp_path / "reference") as ref:  # built exactly like `lab`
            reference_wiring(ref)
            theirs = wiring_seen(ref.path)
    finally:
        unwire(wired)
    assert ours == theirs
    assert {"filter eth0", "filter tapeth0"} <= set(ours)  # both redirects were compared
    assert ours["link tapeth0"] == ("tun", 1, 1500, ours["link tapeth0"][3], 1)  # type: ignore[index]
    assert [a for a in ours["addresses"] if a[0] != "lo"] == []  # type: ignore[attr-defined]


def facts_read_by_pyroute2(path: str) -> NetworkFacts:
    """`read_facts`'s selection rules applied to what pyroute2's IPRoute dumps: the oracle for
    our own decoding of links, addresses and routes."""
    from pyroute2 import IPRoute

    from runnc_py.net.read import Link, build_facts
    from runnc_py.net.wired import AddressRecord

    with IPRoute(netns=path, flags=0) as ipr:
        links = [
            Link(
                m["index"],
                m.get_attr("IFLA_IFNAME"),
                m.get_attr("IFLA_ADDRESS"),
                m.get_attr("IFLA_MTU"),
            )
            for m in ipr.get_links()
            if m["ifi_type"] == 1
            and not m["flags"] & 0x8
            and m.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") != "tun"
        ]
        names = {link.index: link.name for link in links}
        addresses: dict[int, list[AddressRecord]] = {}
        for a in ipr.get_addr():
            if a["index"] in names:
                addr = a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS")
                addresses.setdefault(a["index"], []).append(
                    AddressRecord(Address(addr, a["prefixlen"]), a["scope"], 0)
                )
        routes: dict[int, list[Route]] = {}
        for r in ipr.get_routes(family=0, table=254):
            oif = r.get_attr("RTA_OIF")
            if oif not in names or r["proto"] == 2 or r["type"] != 1 or r.get_attr("RTA_MULTIPATH"):
                continue
            default = "0.0.0.0" if r["family"] == 2 else "::"
            routes.setdefault(oif, []).append(
                Route(
                    r.get_attr("RTA_DST") or default,
                    r["dst_len"],
                    r.get_attr("RTA_GATEWAY"),
                    names[oif],
                    metric=r.get_attr("RTA_PRIORITY"),
                    proto=r["proto"],
                    scope=r["scope"],
                    onlink=bool(r["flags"] & 4),
                )
            )
    return build_facts(links, addresses, routes, read_facts(path).dns)


def test_read_facts_decodes_what_pyroute2_reads(lab: Lab) -> None:
    lab.ip(lab.ctr, "link", "add", "net1", "type", "veth", "peer", "name", "net1p")
    lab.ip(lab.ctr, "link", "set", "net1", "mtu", "9000", "up")
    lab.ip(lab.ctr, "addr", "add", "10.88.0.5/32", "dev", "net1")
    lab.ip(lab.ctr, "addr", "add", "10.88.1.5/24", "dev", "net1")
    lab.ip(lab.ctr, "addr", "add", "2001:db8::5/128", "dev", "net1", "nodad")
    lab.ip(lab.ctr, "route", "add", "169.254.1.1", "dev", "net1", "scope", "link")
    lab.ip(lab.ctr, "route", "add", "10.200.0.0/16", "via", "169.254.1.1", "dev", "net1",
           "onlink", "metric", "7")  # fmt: skip
    lab.ip(lab.ctr, "-6", "route", "add", "2001:db8:1::/48", "dev", "net1", "metric", "300")
    lab.ip(lab.ctr, "tuntap", "add", "othertap", "mode", "tap")
    ours = read_facts(lab.path)
    assert ours == facts_read_by_pyroute2(lab.path)
    assert len(ours.interfaces) == 3 and sum(len(i.routes) for i in ours.interfaces) == 6
