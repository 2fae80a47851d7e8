"""`create`/`start`/`delete` wiring the container's network and root filesystem into the guest.

Network: the lab's namespaces (netlab.py) stand in for an engine's; the bundle either joins the
lab's container netns by path (podman) or gets a new one that a prestart hook connects to the
lab's bridge (Docker's libnetwork-setkey). Traffic goes only to addresses in those namespaces.
Rootfs: our `blk` guest gets the bundle's rootfs as an ext4 image on its `storage` device; the
cache lives in the test's own directory (RUNNC_PY_CACHE), never /var/lib/runnc-py.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import test_lifecycle
from tests.integration.netlab import Lab
from tests.integration.test_lifecycle import (
    Runtime,
    assert_gone,
    children,
    last_error,
    wait_exit,
    wait_for,
)

pytestmark = pytest.mark.root

# The lifecycle tests' fixtures: `rt` (runnc-py with its own --root, cleaned up after) and the
# module-wide child subreaper that lets us wait for container inits.
rt = test_lifecycle.rt
subreaper = test_lifecycle.subreaper

NET_ONLY = [{"type": "uts"}, {"type": "ipc"}]  # + the network entry each test chooses


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every runnc-py these tests start keeps its caches (rootfs images, copies) here."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RUNNC_PY_CACHE", str(cache))
    monkeypatch.delenv("RUNNC_PY_CACHE_DIR", raising=False)
    return cache


@pytest.fixture
def lab_cmdline(lab: Lab) -> Iterator[Lab]:
    """The lab without its static route: the solo5 command-line form has no route flags."""
    lab.ip(lab.ctr, "route", "del", "10.99.0.0/16")
    yield lab


def net_bundle(
    rt: Runtime,
    lab: Lab,
    *,
    netns: str | None,
    hooks: dict[str, list[dict[str, Any]]] | None = None,
    annotations: dict[str, str] | None = None,
) -> Path:
    """A bundle of our `net` guest whose resolv.conf is bind-mounted as engines do."""
    network = {"type": "network", "path": netns} if netns else {"type": "network"}
    bundle = rt.bundle(
        "net.spt",
        annotations={"org.runnc-py.mem": "8", **(annotations or {})},
        hooks=hooks,
        namespaces=[network, *NET_ONLY],
    )
    config = json.loads((bundle / "config.json").read_text())
    config["mounts"] = [
        {"destination": "/etc/resolv.conf", "type": "bind", "source": str(lab.resolv)}
    ]
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def pinged(lab: Lab, addr: str, ns: str | None = None) -> bool:
    ping = lab.ping(addr, count=2, ns=ns)
    return ping.returncode == 0 and " 0% packet loss" in ping.stdout


def stop_and_delete(rt: Runtime, cid: str, pid: int) -> None:
    assert rt("kill", cid, "KILL").returncode == 0
    assert wait_exit(pid) == 137
    done = rt("delete", cid)
    assert done.returncode == 0, done.stderr
    assert_gone(rt, cid)


# ---------------------------------------------------------------------------- network


def test_podman_style_netns_is_handed_to_the_guest(rt: Runtime, lab_cmdline: Lab) -> None:
    lab = lab_cmdline
    before = lab.state()
    cid = rt.new_id("net")
    pid, out = rt.created(cid, net_bundle(rt, lab, netns=lab.path))

    # Wired at create: the tap exists, the host stack no longer holds the guest's addresses.
    created = lab.state()
    assert "tapeth0" in created["links"]  # type: ignore[operator]
    assert "10.77.0.2" not in str(created["addrs"])
    show = rt("net", "show", cid)
    assert show.returncode == 0, show.stderr
    assert "service0 <- tap tapeth0 <-> eth0" in show.stdout
    assert "inet 10.77.0.2/24" in show.stdout and "inet6 fd77::2/64" in show.stdout
    assert "dns: nameservers 10.77.0.53; search lab.example" in show.stdout
    assert f"netns: {lab.path}" in show.stdout
    assert (
        "config (solo5-cmdline): --ipv4=10.77.0.2/24 --ipv4-gateway=10.77.0.1 "
        "--ipv6=fd77::2/64 --ipv6-gateway=fd77::1" in show.stdout
    )

    assert rt("start", cid).returncode == 0
    wait_for(lambda: "net: ready" in out.read_text(), what="the guest to listen")
    assert pinged(lab, "10.77.0.2") and pinged(lab, "fd77::2"), out.read_text()
    neighbour = lab.add_container("10.77.0.3/24")
    assert pinged(lab, "10.77.0.2", ns=neighbour)

    stop_and_delete(rt, cid, pid)
    assert lab.state() == before, "taps, filters and addresses must be as they were"


def test_docker_style_prestart_hook_network(rt: Runtime, lab: Lab) -> None:
    """A new netns per container, connected by a prestart hook (as libnetwork-setkey does)."""
    veth = f"vd{os.getpid() % 10000}"
    script = (
        'pid=$(sed -n "s/.*\\"pid\\": *\\([0-9]*\\).*/\\1/p"); '
        f"ip -n {lab.host} link add {veth} type veth peer name eth0 netns $pid && "
        f"ip -n {lab.host} link set {veth} master br0 up && "
        "nsenter -t $pid -n sh -c 'ip link set eth0 up && ip addr add 10.77.0.5/24 dev eth0 "
        "&& ip route add default via 10.77.0.1'"
    )
    hooks = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]}
    cid = rt.new_id("dock")
    pid, out = rt.created(cid, net_bundle(rt, lab, netns=None, hooks=hooks))
    show = rt("net", "show", cid)
    assert f"netns: /proc/{pid}/ns/net" in show.stdout, show.stdout + show.stderr
    assert "config (solo5-cmdline): --ipv4=10.77.0.5/24 --ipv4-gateway=10.77.0.1" in show.stdout
    assert rt("start", cid).returncode == 0
    wait_for(lambda: "net: ready" in out.read_text(), what="the guest to listen")
    assert pinged(lab, "10.77.0.5"), out.read_text()
    stop_and_delete(rt, cid, pid)
    # The namespace died with the guest and took the veth pair along.
    wait_for(lambda: veth not in lab.ip(lab.host, "-o", "link"), what="the veth to go")


def test_network_none_is_no_wiring(rt: Runtime) -> None:
    """A guest without network devices in a namespace with only lo: nothing is wired."""
    cid = rt.new_id("none")
    pid, out = rt.created(cid, rt.bundle("hello.spt"))
    assert not (rt.root / cid / "net.json").exists()
    assert rt("start", cid).returncode == 0
    assert wait_exit(pid) == 0 and "Hello, World" in out.read_text()
    assert rt("delete", cid).returncode == 0


def test_network_device_without_interface_is_refused(rt: Runtime, lab: Lab) -> None:
    cid = rt.new_id("lo")
    done, _ = rt.create(cid, net_bundle(rt, lab, netns=None))
    assert done.returncode != 0
    message = last_error(rt)
    assert "service0" in message and "only lo" in message
    assert_gone(rt, cid)
    assert not children()


def _add_veth_pair(lab: Lab) -> None:
    lab.ip(lab.ctr, "link", "add", "eth1", "type", "veth", "peer", "name", "eth2")


def _failing_hook(kind: str) -> dict[str, list[dict[str, Any]]]:
    return {kind: [{"path": "/bin/sh", "args": ["sh", "-c", "echo no >&2; exit 7"]}]}


@pytest.mark.parametrize(
    ("setup", "hooks", "message"),
    [
        # Fails after the wiring: the teardown unwires through net.json.
        (None, _failing_hook("createContainer"), "createContainer hook /bin/sh: exited"),
        # Refused before the wiring (one guest device, three interfaces).
        (_add_veth_pair, None, "3 interfaces but the guest has 1 free network device(s)"),
    ],
    ids=["createContainer-hook", "too-many-interfaces"],
)
def test_failure_after_or_during_wiring_leaves_nothing(
    rt: Runtime, lab_cmdline: Lab, setup: Any, hooks: Any, message: str
) -> None:
    lab = lab_cmdline
    if setup is not None:
        setup(lab)
    before = lab.state()
    cid = rt.new_id("fail")
    done, _ = rt.create(cid, net_bundle(rt, lab, netns=lab.path, hooks=hooks))
    assert done.returncode != 0
    assert message in last_error(rt)
    assert_gone(rt, cid)
    assert lab.state() == before
    assert not children()


def test_network_the_renderer_cannot_express_is_refused_before_wiring(
    rt: Runtime, lab: Lab
) -> None:
    before = lab.state()  # with the lab's static route 10.99.0.0/16
    cid = rt.new_id("route")
    done, _ = rt.create(cid, net_bundle(rt, lab, netns=lab.path))
    assert done.returncode != 0
    assert "solo5-cmdline: static route 10.99.0.0/16" in last_error(rt)
    assert_gone(rt, cid)
    assert lab.state() == before


def test_net_config_annotation_picks_the_renderer(rt: Runtime, lab_cmdline: Lab) -> None:
    cid = rt.new_id("kind")
    bundle = net_bundle(
        rt, lab_cmdline, netns=lab_cmdline.path, annotations={"org.runnc-py.net.config": "none"}
    )
    pid, _ = rt.created(cid, bundle)
    show = rt("net", "show", cid, "--json")
    record = json.loads(show.stdout)
    assert record["config"] == {"kind": "none", "text": ""}
    assert record["wired"]["devices"][0]["guest_device"] == "service0"
    assert rt("delete", "--force", cid).returncode == 0
    wait_exit(pid)
    bad = net_bundle(rt, lab_cmdline, netns=None, annotations={"org.runnc-py.net.config": "xml"})
    done, _ = rt.create(rt.new_id("kind"), bad)
    assert done.returncode != 0 and "unknown network configuration kind 'xml'" in last_error(rt)


# ---------------------------------------------------------------------------- rootfs

ROOTFS = {
    "org.runnc-py.rootfs": "ext4",
    "org.runnc-py.rootfs.device": "storage",
    "org.runnc-py.mem": "8",
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_entries(cache: Path) -> list[Path]:
    return sorted((cache / "rootfs").glob("*.ext4"))


def test_rootfs_image_is_the_guests_own_copy(rt: Runtime, private_cache: Path) -> None:
    bundle = rt.bundle("blk.spt", annotations=ROOTFS)
    (bundle / "rootfs" / "etc").mkdir()
    (bundle / "rootfs" / "etc" / "hostname").write_text("uk\n")
    os.chmod(bundle / "rootfs", 0o555)  # read-only, as an engine's overlay may be
    first = rt.new_id("blk")
    pid, out = rt.created(first, bundle)
    copy = Path(json.loads((rt.root / first / "state.json").read_text())["rootfsImage"])
    assert copy.parent == private_cache / "containers" and copy.exists()
    [entry] = cache_entries(private_cache)
    cached = sha256(entry)
    assert sha256(copy) == cached

    assert rt("start", first).returncode == 0
    assert wait_exit(pid) == 0, out.read_text()
    assert "blk: ok" in out.read_text()
    assert sha256(copy) != cached, "the guest wrote to its own copy"
    assert sha256(entry) == cached, "the cache entry is never written"
    fsck = subprocess.run(["e2fsck", "-fn", str(entry)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr

    second = rt.new_id("blk")
    inode = entry.stat().st_ino
    pid2, _ = rt.created(second, bundle)
    copy2 = Path(json.loads((rt.root / second / "state.json").read_text())["rootfsImage"])
    assert copy2 != copy and sha256(copy2) == cached, "a fresh copy of the cached image"
    assert cache_entries(private_cache) == [entry] and entry.stat().st_ino == inode  # a hit

    assert rt("delete", first).returncode == 0
    assert not copy.exists() and copy2.exists()
    assert rt("delete", "--force", second).returncode == 0
    wait_exit(pid2)
    assert not copy2.exists()
    assert list((private_cache / "containers").iterdir()) == []
    assert sorted(p.name for p in (bundle / "rootfs").iterdir()) == ["blk.spt", "etc"]


def test_rootfs_too_large_for_its_size_fails_cleanly(rt: Runtime, private_cache: Path) -> None:
    bundle = rt.bundle("blk.spt", annotations={**ROOTFS, "org.runnc-py.rootfs.size": "2M"})
    (bundle / "rootfs" / "data").write_bytes(os.urandom(3 << 20))
    cid = rt.new_id("big")
    done, _ = rt.create(cid, bundle)
    assert done.returncode != 0
    assert "rootfs content needs at least" in last_error(rt)
    assert_gone(rt, cid)
    assert cache_entries(private_cache) == []
    assert list((private_cache / "containers").iterdir()) == []
    assert not children()


def test_rootfs_refusals_happen_before_anything_exists(rt: Runtime, private_cache: Path) -> None:
    for notes, message in (
        ({**ROOTFS, "org.runnc-py.rootfs.device": "disk"}, "no block device 'disk'"),
        ({**ROOTFS, "org.runnc-py.rootfs": "squashfs"}, "unknown rootfs kind 'squashfs'"),
        ({**ROOTFS, "org.runnc-py.rootfs.size": "huge"}, "invalid size 'huge'"),
    ):
        cid = rt.new_id("no")
        done, _ = rt.create(cid, rt.bundle("blk.spt", annotations=notes))
        assert done.returncode != 0
        assert message in last_error(rt)
        assert_gone(rt, cid)
    assert not (private_cache / "rootfs").exists()
    assert not (private_cache / "containers").exists()


# ---------------------------------------------------------------------------- kill -9


@pytest.mark.parametrize("guest", ["net.spt", "blk.spt"])
def test_kill_9_mid_create_then_delete_force(
    rt: Runtime, lab_cmdline: Lab, private_cache: Path, guest: str
) -> None:
    """create dies after the network is wired / the rootfs copied: `delete --force` undoes it."""
    lab = lab_cmdline
    before = lab.state()
    marker = rt.tmp / "hook.pid"
    park = f"echo $$ > {marker}.tmp; mv {marker}.tmp {marker}; exec sleep 60"
    hooks = {"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", park]}]}
    if guest == "net.spt":
        bundle = net_bundle(rt, lab, netns=lab.path, hooks=hooks)
    else:
        bundle = rt.bundle("blk.spt", annotations=ROOTFS, hooks=hooks)
    cid = rt.new_id("k9")
    with open(rt.tmp / "create.out", "w") as out:
        create = subprocess.Popen(
            [*rt.base, "create", "--bundle", str(bundle), cid], stdout=out, stderr=out
        )
    hook_pid = None
    try:
        wait_for(marker.exists, timeout=20, what="the createContainer hook")
        hook_pid = int(marker.read_text())
        init_pid = json.loads((rt.root / cid / "state.json").read_text())["pid"]
        if guest == "net.spt":
            assert "tapeth0" in lab.state()["links"]  # type: ignore[operator]
        else:
            assert len(list((private_cache / "containers").iterdir())) == 1
        create.kill()
        create.wait(10)
    finally:
        if hook_pid:
            os.kill(hook_pid, signal.SIGKILL)
    done = rt("delete", "--force", cid)
    assert done.returncode == 0, done.stderr
    assert_gone(rt, cid, init_pid)
    assert lab.state() == before
    if guest == "blk.spt":
        assert list((private_cache / "containers").iterdir()) == []


def test_dns_from_the_rootfs_is_read_inside_it(rt: Runtime, lab_cmdline: Lab) -> None:
    """Without the engine's resolv.conf the guest's DNS is the rootfs's own, read when the
    init wires; a createRuntime hook that swaps it for a symlink to a host file by then gets
    nothing of the host's read (the link resolves inside the rootfs, where it leads nowhere)."""
    lab = lab_cmdline
    host_file = rt.tmp / "host-resolv.conf"
    host_file.write_text("nameserver 10.66.6.6\n")
    for swap in (False, True):
        etc_placeholder = "ROOTFS_ETC"
        hook = {"path": "/bin/sh", "args": ["sh", "-c", f"ln -sf {host_file} {etc_placeholder}"]}
        bundle = net_bundle(
            rt, lab, netns=lab.path, hooks={"createRuntime": [hook]} if swap else None
        )
        config = json.loads((bundle / "config.json").read_text())
        config["mounts"] = []
        etc = bundle / "rootfs" / "etc"
        etc.mkdir()
        (etc / "resolv.conf").write_text("nameserver 10.77.0.54\n")
        if swap:
            hooks = config["hooks"]["createRuntime"]
            hooks[0]["args"][2] = hooks[0]["args"][2].replace(
                etc_placeholder, str(etc / "resolv.conf")
            )
        (bundle / "config.json").write_text(json.dumps(config))
        cid = rt.new_id("dns")
        pid, _ = rt.created(cid, bundle)
        show = rt("net", "show", cid)
        assert show.returncode == 0, show.stderr
        assert "10.66.6.6" not in show.stdout
        if swap:
            assert (etc / "resolv.conf").is_symlink()  # the hook did run
            assert "10.77.0.54" not in show.stdout
        else:
            assert "dns: nameservers 10.77.0.54" in show.stdout
        assert rt("kill", cid, "KILL").returncode == 0
        assert wait_exit(pid) == 137
        assert rt("delete", cid).returncode == 0
