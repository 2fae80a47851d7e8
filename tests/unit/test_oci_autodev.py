"""Which devices `create` attaches by itself (rootfs image, network), decided without root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from runnc_py.errors import RunncError
from runnc_py.monitor.launch import LaunchRequest
from runnc_py.net import store as net_store
from runnc_py.net.handover import free_net_devices, has_interfaces, interface_names
from runnc_py.oci import autodev, lifecycle
from runnc_py.oci.plan import plan_from_spec
from runnc_py.oci.spec import parse_spec
from runnc_py.oci.state import ContainerState, Store
from runnc_py.unikernel.manifest import DeviceType, Manifest, ManifestEntry

BLOCK, NET = DeviceType.BLOCK_BASIC, DeviceType.NET_BASIC


def manifest(*devices: tuple[str, int]) -> Manifest:
    entries = [ManifestEntry(0, "", DeviceType.RESERVED_FIRST)]
    entries += [ManifestEntry(i + 1, name, kind) for i, (name, kind) in enumerate(devices)]
    return Manifest(version=1, entries=tuple(entries), raw=b"")


LKL = manifest(("rootfs", BLOCK), ("tap", NET))
BLK = manifest(("storage", BLOCK))
TWO_NETS = manifest(("service0", NET), ("service1", NET))
REQ = LaunchRequest(unikernel="/u.spt", args=("a",))


def plan(annotations: dict[str, str], mft: Manifest, req: LaunchRequest = REQ) -> Any:
    return autodev.plan_auto_devices(annotations, mft, req)


def test_lkl_image_gets_rootfs_network_and_lkl_json() -> None:
    auto = plan({}, LKL)
    assert (auto.rootfs_device, auto.nets, auto.net_kind) == ("rootfs", ("tap",), "lkl-json")
    assert auto.rootfs_size is None and auto.rootfs_headroom is None
    req = auto.with_rootfs(REQ, "/c/x.ext4")
    assert req.blocks == {"rootfs": "/c/x.ext4"}
    checked = auto.check_request(req)
    assert checked.nets == {"tap": autodev.PENDING_TAP} and checked.blocks == req.blocks


def test_annotations_attach_and_opt_out() -> None:
    attached = LaunchRequest(unikernel="/u.spt", blocks={"rootfs": "/img"}, nets={"tap": "tap0"})
    auto = plan({}, LKL, attached)
    assert auto.rootfs_device is None and auto.nets == ()
    assert auto.check_request(attached) is attached
    assert plan({"org.runnc-py.rootfs": "none"}, LKL).rootfs_device is None
    # No block device named rootfs: nothing automatic, solo5-cmdline for the network.
    auto = plan({}, TWO_NETS)
    assert (auto.rootfs_device, auto.nets, auto.net_kind) == (None, TWO_NETS_NAMES, "solo5-cmdline")
    assert plan({"org.runnc-py.net.config": "rumprun-json"}, LKL).net_kind == "rumprun-json"


TWO_NETS_NAMES = ("service0", "service1")


def test_rootfs_on_a_named_device_with_sizes() -> None:
    auto = plan(
        {
            "org.runnc-py.rootfs": "ext4",
            "org.runnc-py.rootfs.device": "storage",
            "org.runnc-py.rootfs.size": "64M",
            "org.runnc-py.rootfs.headroom": "1M",
        },
        BLK,
    )
    assert (auto.rootfs_device, auto.rootfs_size, auto.rootfs_headroom) == (
        "storage",
        64 << 20,
        1 << 20,
    )
    # The device annotation alone also picks the automatic case's device.
    assert plan({"org.runnc-py.rootfs.device": "storage"}, BLK).rootfs_device == "storage"


@pytest.mark.parametrize(
    ("annotations", "mft", "message"),
    [
        ({"org.runnc-py.rootfs": "squashfs"}, LKL, "unknown rootfs kind 'squashfs'"),
        ({"org.runnc-py.rootfs": "ext4"}, BLK, "no block device 'rootfs'.*storage"),
        (
            {"org.runnc-py.rootfs": "ext4", "org.runnc-py.rootfs.device": "tap"},
            LKL,
            "no block device 'tap'",
        ),
        ({"org.runnc-py.rootfs.size": "big"}, LKL, "invalid size 'big'"),
        ({"org.runnc-py.net.config": "yaml"}, BLK, "unknown network configuration kind"),
    ],
)
def test_refusals(annotations: dict[str, str], mft: Manifest, message: str) -> None:
    with pytest.raises(RunncError, match=message):
        plan(annotations, mft)


def test_rootfs_attached_twice_is_refused() -> None:
    req = LaunchRequest(unikernel="/u.spt", blocks={"storage": "/img"})
    with pytest.raises(RunncError, match="attached both"):
        plan({"org.runnc-py.rootfs": "ext4", "org.runnc-py.rootfs.device": "storage"}, BLK, req)


def test_free_net_devices_keep_manifest_order() -> None:
    assert free_net_devices(TWO_NETS, ["service0"]) == ("service1",)
    assert free_net_devices(LKL, []) == ("tap",)
    assert free_net_devices(BLK, []) == ()


def test_annotations_are_known_and_net_config_is_no_device(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    (root / "u.spt").write_bytes(b"x")
    data = {
        "ociVersion": "1.0.2",
        "process": {"args": ["/u.spt"], "cwd": "/"},
        "root": {"path": str(root)},
        "annotations": {
            "org.runnc-py.net.config": "lkl-json",
            "org.runnc-py.net.service0": "tap7",
            "org.runnc-py.rootfs": "ext4",
            "org.runnc-py.rootfs.device": "storage",
            "org.runnc-py.rootfs.size": "1G",
            "org.runnc-py.rootfs.headroom": "64M",
        },
    }
    assert plan_from_spec(parse_spec(data, str(tmp_path))).nets == {"service0": "tap7"}


# ---------------------------------------------------------------------------- rootfs copy


def test_rootfs_copy_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RUNNC_PY_CACHE", str(tmp_path))
    path = autodev.rootfs_copy_path("/run/runnc-py", "c1")
    assert Path(path).parent == tmp_path / "containers"
    assert Path(path).name.startswith("c1-") and path.endswith(".ext4")
    assert path != autodev.rootfs_copy_path("/run/other-root", "c1")
    long = autodev.rootfs_copy_path("/run/runnc-py", "x" * 1024)
    assert len(Path(long).name) < 255


def test_remove_rootfs_copy(tmp_path: Path) -> None:
    containers = tmp_path / "containers"
    containers.mkdir()
    image = containers / "c1-abc.ext4"
    image.write_bytes(b"x")
    leftover = containers / f".c1-abc.ext4.{4242}.tmp"  # a create killed mid-copy
    leftover.write_bytes(b"x")
    autodev.remove_rootfs_copy(str(image), 4242)
    assert list(containers.iterdir()) == []
    autodev.remove_rootfs_copy(str(image), 4242)  # already gone: fine
    victim = tmp_path / "precious.ext4"
    victim.write_bytes(b"x")
    with pytest.raises(RunncError, match="not a container rootfs image"):
        autodev.remove_rootfs_copy(str(victim), 1)
    assert victim.exists()


def test_state_records_the_rootfs_image(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.make_dir("c1")
    image = autodev.rootfs_copy_path(store.root, "c1")
    state = ContainerState("c1", "/b", "/b/rootfs", "t", rootfs_image=image)
    store.save(state)
    assert store.load("c1").rootfs_image == image
    state.rootfs_image = "relative.ext4"
    store.save(state)
    with pytest.raises(RunncError, match="rootfsImage must be an absolute path"):
        store.load("c1")
    # `delete` unlinks it: another container's copy (or any other file) is refused.
    state.rootfs_image = autodev.rootfs_copy_path(store.root, "c2")
    store.save(state)
    with pytest.raises(RunncError, match="rootfsImage is not this container's"):
        store.load("c1")


# ---------------------------------------------------------------------------- network


def test_constants_kept_apart_for_import_time_agree() -> None:
    from runnc_py.net.config import CONFIG_ANNOTATION

    assert lifecycle.NET_JSON == net_store.NET_JSON
    assert autodev.NET_CONFIG_KEY == CONFIG_ANNOTATION


def test_planning_a_plain_guest_imports_no_renderer_or_rootfs_builder() -> None:
    """`create` of a guest without devices must not pay for what it does not use."""
    import subprocess
    import sys

    code = (
        "import sys; from runnc_py.oci import autodev; "
        "from runnc_py.monitor.launch import LaunchRequest; "
        "from runnc_py.unikernel.manifest import DeviceType, Manifest, ManifestEntry; "
        "m = Manifest(1, (ManifestEntry(0, '', DeviceType.RESERVED_FIRST),), b''); "
        "autodev.plan_auto_devices({}, m, LaunchRequest('/u.spt')); "
        "print(sorted(n for n in sys.modules if n.startswith(('runnc_py.net', 'runnc_py.rootfs'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['runnc_py.net', 'runnc_py.net.handover']"


PROC_NET_DEV = """\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs
    lo:       0       0    0    0    0     0          0         0        0       0    0
{extra}"""


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ("", ["lo"]),
        ("  eth0:    1234      10    0    0    0     0          0         0      0  0    0\n",
         ["lo", "eth0"]),
    ],
)  # fmt: skip
def test_interface_names(tmp_path: Path, extra: str, names: list[str]) -> None:
    text = PROC_NET_DEV.format(extra=extra)
    assert interface_names(text) == names
    (tmp_path / "dev").write_text(text)
    assert has_interfaces(str(tmp_path / "dev")) == (names != ["lo"])


def _spec(tmp_path: Path, mounts: list[dict[str, Any]] | None = None, **linux: Any) -> Any:
    root = tmp_path / "rootfs"
    root.mkdir(exist_ok=True)
    data = {
        "ociVersion": "1.0.2",
        "process": {"args": ["/u.spt"], "cwd": "/"},
        "root": {"path": str(root)},
        "mounts": mounts or [],
        "linux": linux,
    }
    return parse_spec(data, str(tmp_path))


def _read_fd(fd: int | None) -> str | None:
    if fd is None:
        return None
    with os.fdopen(fd) as f:
        return f.read()


def test_resolv_conf_prefers_the_engines_bind_mount(tmp_path: Path) -> None:
    engine = tmp_path / "engine-resolv.conf"
    engine.write_text("nameserver 10.0.0.53\n")
    assert autodev.engine_resolv_conf(_spec(tmp_path)) is None
    mount = {"destination": "/etc/resolv.conf", "type": "bind", "source": str(engine)}
    assert autodev.engine_resolv_conf(_spec(tmp_path, [mount])) == str(engine)
    missing = {**mount, "source": str(tmp_path / "gone")}
    assert autodev.engine_resolv_conf(_spec(tmp_path, [missing])) is None
    job = autodev.network_job(_spec(tmp_path, [missing]), plan({}, TWO_NETS), "/s", 0, 0)
    assert job is not None and job.resolv_conf is None
    assert job.rootfs == str(tmp_path / "rootfs")  # the init reads the rootfs's own


def test_rootfs_resolv_conf_is_read_inside_the_rootfs(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    assert autodev.rootfs_resolv_conf(str(root)) is None
    (root / "etc" / "resolv.conf").write_text("nameserver 1.1.1.1\n")
    assert _read_fd(autodev.rootfs_resolv_conf(str(root))) == "nameserver 1.1.1.1\n"
    # Swapped for a symlink out of the rootfs (as a hook could do after create planned):
    # absolute and relative targets both resolve inside it, where the target is missing.
    host_file = tmp_path / "host-secret"
    host_file.write_text("nameserver 6.6.6.6\n")
    for target in (str(host_file), "../../host-secret"):
        (root / "etc" / "resolv.conf").unlink()
        (root / "etc" / "resolv.conf").symlink_to(target)
        assert autodev.rootfs_resolv_conf(str(root)) is None, target
    (root / "etc" / "resolv.conf").unlink()
    (root / "etc" / "resolv.conf").mkdir()  # not a regular file
    assert autodev.rootfs_resolv_conf(str(root)) is None
    assert autodev.rootfs_resolv_conf(str(tmp_path / "no-rootfs")) is None


def test_network_job(tmp_path: Path) -> None:
    spec = _spec(tmp_path, namespaces=[{"type": "network", "path": "/run/netns/x"}])
    auto = plan({}, TWO_NETS)
    job = autodev.network_job(spec, auto, "/run/runnc-py/c1", 1000, 1001)
    assert job is not None
    assert (job.names, job.kind, job.netns) == (TWO_NETS_NAMES, "solo5-cmdline", "/run/netns/x")
    assert (job.owner, job.group, job.state_dir) == (1000, 1001, "/run/runnc-py/c1")
    own = autodev.network_job(_spec(tmp_path, namespaces=[{"type": "network"}]), auto, "/d", 0, 0)
    assert own is not None and own.netns is None
    assert autodev.network_job(spec, plan({}, BLK), "/d", 0, 0) is None
    assert os.path.basename(net_store.NET_JSON) == "net.json"
