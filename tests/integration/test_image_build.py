"""`runnc-py image build` checked by independent tools (skopeo, umoci), and images' settings
read back by the runtime: our own /runnc-py.json and urunc's /urunc.json or annotations, on
real bundles run with `runnc-py run` (create + start + wait + delete)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import runnc_binary
from tests.integration import test_lifecycle
from tests.integration.netlab import Lab
from tests.integration.test_lifecycle import Runtime, wait_exit, wait_for


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*runnc_binary(), *args], capture_output=True, text=True, timeout=timeout)


def build(guests: Path, out: Path, tag: str, *extra: str) -> Path:
    done = cli("image", "build", str(guests / "hello.spt"), "-t", tag, "-o", str(out), *extra)
    assert done.returncode == 0, done.stderr
    return out


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not found (Debian package {tool})")


# ---------------------------------------------------------------------------- skopeo, umoci


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_skopeo_reads_and_copies_the_archive(guests: Path, tmp_path: Path, fmt: str) -> None:
    """skopeo (containers/image, podman's library) parses the archive and, copying it, checks
    every blob against its digest."""
    need("skopeo")
    archive = build(guests, tmp_path / "img.tar", "runnc-py-test/hello:1", "--format", fmt,
                    "--mem", "32")  # fmt: skip
    transports = [fmt] if fmt == "oci-archive" else ["docker-archive", "oci-archive"]
    for transport in transports:  # a docker-archive is an OCI archive too
        done = subprocess.run(
            ["skopeo", "inspect", f"{transport}:{archive}"], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        info = json.loads(done.stdout)
        assert info["Labels"]["org.runnc-py.mem"] == "32"
        assert info["Os"] == "linux" and len(info["Layers"]) == 1
    copy = subprocess.run(
        ["skopeo", "copy", f"{fmt}:{archive}", f"oci:{tmp_path / 'copy'}:hello"],
        capture_output=True,
        text=True,
    )
    assert copy.returncode == 0, copy.stderr


def _umoci_bundle(guests: Path, tmp_path: Path, *extra: str) -> Path:
    need("umoci")
    archive = build(guests, tmp_path / "img.tar", "runnc-py-test/hello:1",
                    "--format", "oci-archive", *extra)  # fmt: skip
    layout = tmp_path / "layout"
    with tarfile.open(archive) as tar:
        tar.extractall(layout, filter="data")
    bundle = tmp_path / "bundle"
    done = subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:runnc-py-test/hello:1", str(bundle)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return bundle


def _run(tmp_path: Path, bundle: Path) -> subprocess.CompletedProcess[str]:
    cid = f"rp-image-{uuid.uuid4().hex[:8]}"
    return cli("--root", str(tmp_path / "state"), "run", "--bundle", str(bundle), cid)


@pytest.mark.root
def test_bundle_from_the_image_runs_with_the_images_settings(guests: Path, tmp_path: Path) -> None:
    """umoci turns the archive into a runtime bundle as an engine does. Like Docker, we then
    drop the annotations (umoci copies the labels; Docker does not): the settings still arrive,
    through /runnc-py.json in the rootfs."""
    bundle = _umoci_bundle(guests, tmp_path, "--annotation", "org.runnc-py.cmdline=env",
                           "--arg", "one")  # fmt: skip
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["/hello.spt", "one"]  # Entrypoint + Cmd
    config["annotations"] = {}
    (bundle / "config.json").write_text(json.dumps(config))
    done = _run(tmp_path, bundle)
    assert done.returncode == 0, done.stderr
    # cmdline=env came from the image: the guest sees the env words, then its argument.
    assert "Command line is: 'PATH=" in done.stdout and " -- one'" in done.stdout


@pytest.mark.root
def test_config_json_annotations_override_the_image(guests: Path, tmp_path: Path) -> None:
    bundle = _umoci_bundle(guests, tmp_path, "--annotation", "org.runnc-py.cmdline=env",
                           "--arg", "one")  # fmt: skip
    config = json.loads((bundle / "config.json").read_text())
    config["annotations"] = {"org.runnc-py.cmdline": "args"}
    (bundle / "config.json").write_text(json.dumps(config))
    done = _run(tmp_path, bundle)
    assert done.returncode == 0, done.stderr
    assert "Command line is: 'one'" in done.stdout


@pytest.mark.root
@pytest.mark.kvm
def test_hvt_image_runs_under_our_kvm_monitor(guests: Path, tmp_path: Path) -> None:
    need("umoci")
    archive = tmp_path / "hvt.tar"
    done = cli("image", "build", str(guests / "hvt" / "hello.hvt"), "--monitor", "hvt",
               "--mem", "16", "--arg", "from-hvt", "-t", "runnc-py-test/hvt:1",
               "--format", "oci-archive", "-o", str(archive))  # fmt: skip
    assert done.returncode == 0, done.stderr
    layout, bundle = tmp_path / "layout", tmp_path / "bundle"
    with tarfile.open(archive) as tar:
        tar.extractall(layout, filter="data")
    unpack = ["umoci", "unpack", "--image", f"{layout}:runnc-py-test/hvt:1", str(bundle)]
    assert subprocess.run(unpack, capture_output=True).returncode == 0
    config = json.loads((bundle / "config.json").read_text())
    config["annotations"] = {}
    (bundle / "config.json").write_text(json.dumps(config))
    ran = _run(tmp_path, bundle)
    assert ran.returncode == 0, ran.stderr
    assert "Command line is: 'from-hvt'" in ran.stdout


# ---------------------------------------------------------------------------- urunc images


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _urunc_bundle(
    guests: Path,
    tmp_path: Path,
    args: list[str],
    annotations: dict[str, str] | None = None,
    urunc_json: dict[str, str] | None = None,
) -> Path:
    """A bundle shaped like urunc's Solo5 images: the unikernel under /unikernel/."""
    bundle = tmp_path / "urunc-bundle"
    (bundle / "rootfs" / "unikernel").mkdir(parents=True)
    shutil.copy(guests / "hello.spt", bundle / "rootfs" / "unikernel" / "hello.spt")
    if urunc_json is not None:
        (bundle / "rootfs" / "urunc.json").write_text(json.dumps(urunc_json))
    config: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"args": args, "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}},
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]},
        "annotations": annotations or {},
    }
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


@pytest.mark.root
def test_urunc_json_image_runs_unchanged(guests: Path, tmp_path: Path) -> None:
    """/urunc.json with base64 values (what urunc's bunny writes) names binary, monitor and
    the command line; process.args (the image's Cmd) are then not the guest's."""
    urunc_json = {
        "com.urunc.unikernel.unikernelType": _b64("mirage"),
        "com.urunc.unikernel.hypervisor": _b64("spt"),
        "com.urunc.unikernel.binary": _b64("/unikernel/hello.spt"),
        "com.urunc.unikernel.cmdline": "b64:" + _b64("from urunc"),
        "com.urunc.unikernel.unikernelVersion": "",
    }
    bundle = _urunc_bundle(guests, tmp_path, ["/unikernel/hello.spt"], urunc_json=urunc_json)
    done = _run(tmp_path, bundle)
    assert done.returncode == 0, done.stderr
    assert "Hello, World" in done.stdout
    assert "Command line is: 'from urunc'" in done.stdout


@pytest.mark.root
def test_urunc_annotations_image_runs_unchanged(guests: Path, tmp_path: Path) -> None:
    """urunc's keys as config.json annotations (plain values), no /urunc.json: process.args
    after the unikernel are the guest's arguments."""
    notes = {
        "com.urunc.unikernel.unikernelType": "rumprun",
        "com.urunc.unikernel.hypervisor": "spt",
        "com.urunc.unikernel.binary": "/unikernel/hello.spt",
    }
    bundle = _urunc_bundle(guests, tmp_path, ["/unikernel/hello.spt", "exit=3"], notes)
    done = _run(tmp_path, bundle)
    assert done.returncode == 3, done.stderr
    assert "Command line is: 'exit=3'" in done.stdout


@pytest.mark.root
def test_urunc_image_for_qemu_is_refused_in_one_line(guests: Path, tmp_path: Path) -> None:
    urunc_json = {
        "com.urunc.unikernel.unikernelType": _b64("unikraft"),
        "com.urunc.unikernel.hypervisor": _b64("qemu"),
        "com.urunc.unikernel.binary": _b64("/unikernel/hello.spt"),
    }
    bundle = _urunc_bundle(guests, tmp_path, ["/unikernel/hello.spt"], urunc_json=urunc_json)
    done = _run(tmp_path, bundle)
    assert done.returncode == 1
    line = done.stderr.strip()
    assert "\n" not in line and "urunc hypervisor 'qemu' is no Solo5 target" in line
    state = tmp_path / "state"
    assert not state.exists() or not any(state.iterdir())


# ---------------------------------------------------------------------------- urunc net guest

# `create`/`start` through the lifecycle tests' runtime (own --root, a child subreaper to wait
# for the guest) and the network lab's namespaces, as in test_oci_wiring.
rt = test_lifecycle.rt
subreaper = test_lifecycle.subreaper


@pytest.mark.root
def test_urunc_command_line_survives_network_wiring(rt: Runtime, lab: Lab) -> None:
    """The network wiring re-encodes the guest's command line with the addresses it hands
    over: it must start from the urunc image's `cmdline` (here `pings=1`: the `net` guest
    exits 0 after one echo reply), not from process.args."""
    lab.ip(lab.ctr, "route", "del", "10.99.0.0/16")  # the solo5 command-line form has no routes
    bundle = rt.bundle("net.spt", namespaces=[{"type": "network", "path": lab.path}])
    urunc_json = {
        "com.urunc.unikernel.unikernelType": _b64("mirage"),
        "com.urunc.unikernel.hypervisor": _b64("spt"),
        "com.urunc.unikernel.binary": _b64("/net.spt"),
        "com.urunc.unikernel.cmdline": _b64("pings=1"),
    }
    (bundle / "rootfs" / "urunc.json").write_text(json.dumps(urunc_json))
    cid = rt.new_id("urunc-net")
    pid, out = rt.created(cid, bundle)
    assert rt("start", cid).returncode == 0
    wait_for(lambda: "net: ready" in out.read_text(), what="the guest to listen")
    assert lab.ping("10.77.0.2", count=1).returncode == 0, out.read_text()
    assert wait_exit(pid) == 0, out.read_text()
    assert rt("delete", cid).returncode == 0
