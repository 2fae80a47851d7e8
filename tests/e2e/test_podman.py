"""The real podman (Debian's, with conmon and CNI) with `podman run --runtime runnc-py`.

The `podman` fixture (conftest.py) registers runnc-py with `runnc-py install --podman`
(containers.conf: the runtime and, on this kind of host, `default_ulimits`); podman has no
daemon. Images are loaded from archives built here; no registry.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import debugfs_cat, run
from tests.e2e.images import busybox_archive, unikernel_image

pytestmark = [pytest.mark.e2e, pytest.mark.root]

START_TIMEOUT = 30.0
GUESTS = ("hello.spt", "time.spt", "net.spt", "rootfs.spt")
RUNC = "/usr/sbin/runc"


def podman(*args: str, timeout: float = 60):  # type: ignore[no-untyped-def]
    return run(["podman", *args], timeout=timeout)


def ours(*args: str, timeout: float = 60):  # type: ignore[no-untyped-def]
    return podman("run", "--runtime", "runnc-py", *args, timeout=timeout)


def load(archive: Path) -> None:
    done = podman("load", "-i", str(archive))
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def uk(
    podman_engine: None, guests: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """One image per guest from `runnc-py image build`, `podman load`ed; the guest is its
    entrypoint, so `podman run IMAGE ARGS` passes ARGS to the guest."""
    work = tmp_path_factory.mktemp("podman-images")
    tags: dict[str, str] = {}
    for guest in GUESTS:
        name = guest.removesuffix(".spt")
        tag = f"localhost/runnc-py-e2e/{name}:{uuid.uuid4().hex[:12]}"
        load(unikernel_image(guests / guest, tag, work / f"{name}.tar"))
        tags[name] = tag
    yield tags
    podman("rmi", "-f", *tags.values())


@pytest.fixture(scope="module")
def busybox_image(podman_engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tree = tmp_path_factory.mktemp("podman-busybox")
    name = f"localhost/runnc-py-e2e/busybox:{uuid.uuid4().hex[:12]}"
    load(busybox_archive(name, tree / "bb.tar"))
    yield name
    podman("rmi", "-f", name)


@pytest.fixture
def names() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for name in made:
        podman("rm", "-f", name)


def detached(names: list[str], *args: str) -> str:
    name = f"runnc-py-e2e-{uuid.uuid4().hex[:8]}"
    names.append(name)
    done = ours("-d", "--name", name, *args)
    assert done.returncode == 0, done.stderr
    return name


def wait_logs(name: str, text: str) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while text not in (logs := podman("logs", name).stdout):
        assert time.monotonic() < deadline, logs
        time.sleep(0.1)
    return logs


def test_install_registered_runtime_and_limits(podman_engine: None) -> None:
    import tomllib

    conf = tomllib.loads(Path("/etc/containers/containers.conf").read_text())
    assert conf["engine"]["runtimes"]["runnc-py"] == ["/usr/local/bin/runnc-py"]
    limits = {e.split("=")[0]: e for e in conf["containers"]["default_ulimits"]}
    assert set(limits) == {"nofile", "nproc"}  # this host's hard limits are below podman's


def test_bind_mount_refused_unless_annotated(
    uk: dict[str, str], tmp_path: Path, names: list[str]
) -> None:
    volume = ("-v", f"{tmp_path}:/data")
    done = ours("--rm", *volume, uk["hello"])
    assert done.returncode != 0
    assert f"bind mount {tmp_path} -> /data cannot reach a unikernel" in done.stderr
    # Read from the container's log, not `run`'s stdout: under load podman 4.3 may attach after a
    # guest this short has already exited, and then prints nothing although conmon logged it all.
    name = detached(names, *volume, "--annotation", "org.runnc-py.mounts=ignore", uk["hello"])
    assert podman("wait", name).stdout.strip() == "0"
    assert "Hello, World" in wait_logs(name, "Hello, World")


def test_run_and_exit_status(uk: dict[str, str]) -> None:
    done = ours("--rm", uk["hello"], "from", "podman")
    assert done.returncode == 0, done.stderr
    assert "Hello, World" in done.stdout
    assert "Command line is: 'from podman'" in done.stdout
    done = ours("--rm", uk["hello"], "exit=3")
    assert done.returncode == 3, done.stderr


def test_detached_logs_stop(uk: dict[str, str], names: list[str]) -> None:
    name = detached(names, uk["time"], "sleep=60")
    assert "sleeping" in wait_logs(name, "sleeping")
    assert podman("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
    assert podman("stop", "-t", "10", name).returncode == 0
    assert podman("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "143"


def test_default_network_is_the_guests(uk: dict[str, str], names: list[str]) -> None:
    """podman's default network (CNI bridge) reaches the guest: the address podman assigned.
    No traffic is sent (the bridge is podman's, not the test's)."""
    name = detached(names, uk["net"])
    logs = wait_logs(name, "net: ready")
    settings = json.loads(podman("inspect", "-f", "{{json .NetworkSettings}}", name).stdout)
    assert settings["IPAddress"], settings
    assert f"net: ipv4 {settings['IPAddress']}/{settings['IPPrefixLen']}" in logs


def test_network_none(uk: dict[str, str]) -> None:
    done = ours("--rm", "--network", "none", uk["hello"])
    assert done.returncode == 0, done.stderr
    assert "Hello, World" in done.stdout
    done = ours("--rm", "--network", "none", uk["net"])
    assert done.returncode != 0
    assert "network device(s) service0 have nothing to attach" in done.stderr


def test_lkl_image_gets_podmans_resolv_conf_hosts_hostname(
    uk: dict[str, str], names: list[str]
) -> None:
    """The LKL-shaped guest's own ext4 copy holds podman's per-container files; the image has
    no /etc of its own (it is made for them)."""
    name = detached(names, "--hostname", "uk-podman", uk["rootfs"], "sleep=60")
    assert "rootfs: ext4 ok" in wait_logs(name, "sleeping")
    container = podman("inspect", "-f", "{{.Id}}", name).stdout.strip()
    state = Path("/run/runnc-py", container, "state.json")  # podman passes no --root
    copy = Path(json.loads(state.read_text())["rootfsImage"])
    for field, path in (
        ("ResolvConfPath", "/etc/resolv.conf"),
        ("HostsPath", "/etc/hosts"),
        ("HostnamePath", "/etc/hostname"),
    ):
        engine_file = Path(podman("inspect", "-f", "{{." + field + "}}", name).stdout.strip())
        assert debugfs_cat(copy, path) == engine_file.read_text(), path
    assert debugfs_cat(copy, "/etc/hostname").strip() == "uk-podman"
    assert podman("stop", "-t", "10", name).returncode == 0
    assert not copy.exists()


def test_ordinary_image_is_delegated_to_runc(busybox_image: str, names: list[str]) -> None:
    """With --delegate (podman's --runtime-flag), a Linux image runs under runc, from the state
    directory runnc-py keeps for it (`<root>/.delegate`)."""
    delegate = ("--runtime-flag", f"delegate={RUNC}")
    done = podman(
        *delegate,
        "run",
        "--runtime",
        "runnc-py",
        "--rm",
        busybox_image,
        "/bin/busybox",
        "echo",
        "under runc",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "under runc\n"
    name = f"runnc-py-e2e-{uuid.uuid4().hex[:8]}"
    names.append(name)
    done = podman(
        *delegate,
        "run",
        "--runtime",
        "runnc-py",
        "-d",
        "--name",
        name,
        busybox_image,
        "/bin/busybox",
        "sleep",
        "60",
    )
    assert done.returncode == 0, done.stderr
    container = podman("inspect", "-f", "{{.Id}}", name).stdout.strip()
    state = run([RUNC, "--root", "/run/runnc-py/.delegate", "state", container])
    assert state.returncode == 0, state.stderr
    assert json.loads(state.stdout)["status"] == "running"
    assert podman(*delegate, "stop", "-t", "2", name).returncode == 0
    # Without the delegate, the same image is refused with one line.
    done = ours("--rm", busybox_image, "/bin/busybox", "true")
    assert done.returncode != 0
    assert "'/bin/busybox' is not a unikernel" in done.stderr
