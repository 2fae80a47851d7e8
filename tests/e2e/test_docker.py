"""The real Docker engine (Debian's docker.io) with `docker run --runtime=runnc-py`.

The `dockerd` fixture (conftest.py) registers runnc-py with `runnc-py install --docker` into a
daemon.json that holds other settings, and starts dockerd when none runs. Images are built
without any registry. Containers use Docker's default bridge unless a test makes its own:
its prestart hook (libnetwork-setkey) must run for `docker run` to work.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    DOCKER_OTHER_SETTINGS,
    NAME,
    RUNTIME,
    DockerEngine,
    debugfs_cat,
    docker,
)
from tests.e2e.images import busybox_archive, unikernel_image

pytestmark = [pytest.mark.e2e, pytest.mark.root]

START_TIMEOUT = 30.0
GUESTS = ("hello.spt", "time.spt", "net.spt", "fault.spt", "seccomp.spt", "rootfs.spt")
RUN = ("run", "--runtime=runnc-py")


def unique(prefix: str = "runnc-py-e2e") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def uk(
    dockerd: DockerEngine, guests: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """One image per test guest, made by `runnc-py image build` and `docker load`ed: the
    guest is its entrypoint, so `docker run IMAGE ARGS` passes ARGS to the guest. The LKL-shaped
    one carries a root filesystem (with an /etc of its own)."""
    work = tmp_path_factory.mktemp("images")
    tree = work / "rootfs"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "motd").write_text("in the image\n")
    tags: dict[str, str] = {}
    for guest in GUESTS:
        name = guest.removesuffix(".spt")
        tag = f"runnc-py-e2e/{name}:{uuid.uuid4().hex[:12]}"
        archive = unikernel_image(
            guests / guest, tag, work / f"{name}.tar", rootfs=tree if name == "rootfs" else None
        )
        done = docker("load", "-i", str(archive))
        assert done.returncode == 0, done.stderr
        tags[name] = tag
    yield tags
    docker("rmi", "-f", *tags.values())


@pytest.fixture(scope="module")
def busybox_image(dockerd: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An ordinary Linux image (static busybox) for the peer that pings our guest."""
    tree = tmp_path_factory.mktemp("busybox")
    name = f"runnc-py-e2e/busybox:{uuid.uuid4().hex[:12]}"
    archive = busybox_archive(name, tree / "bb.tar")
    done = docker("load", "-i", str(archive))
    assert done.returncode == 0, done.stderr
    yield name
    docker("rmi", "-f", name)


def wait_logs(name: str, text: str) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while text not in (logs := docker("logs", name).stdout):
        assert time.monotonic() < deadline, logs
        time.sleep(0.1)
    return logs


def inspect(name: str, template: str) -> str:
    done = docker("inspect", "-f", template, name)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def detached(uk: dict[str, str]) -> Iterator[list[str]]:
    """Names of containers a test starts; all removed afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        docker("rm", "-f", name)


def start(detached: list[str], *args: str) -> str:
    name = unique()
    detached.append(name)
    done = docker(*RUN, "-d", "--name", name, *args)
    assert done.returncode == 0, done.stderr
    return name


# ---------------------------------------------------------------------------- registration


def test_install_kept_the_other_settings(dockerd: DockerEngine) -> None:
    config = json.loads(Path("/etc/docker/daemon.json").read_text())
    assert config["runtimes"][NAME]["path"] == RUNTIME
    for key, value in dockerd.config_before_install.items():
        if key != "runtimes":
            assert config[key] == value
    info = json.loads(docker("info", "--format", "{{json .Runtimes}}").stdout)
    assert NAME in info


def test_install_uninstall_round_trip_is_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    text = json.dumps({**DOCKER_OTHER_SETTINGS, "runtimes": {"x": {"path": "/x"}}}, indent=4)
    path.write_text(text + "\n")
    for verb in ("install", "uninstall"):
        done = subprocess.run(
            [RUNTIME, verb, "--docker", "--config", f"docker={path}"], capture_output=True
        )
        assert done.returncode == 0, done.stderr
    assert path.read_text() == text + "\n"


# ---------------------------------------------------------------------------- run


def test_docker_run_hello(uk: dict[str, str]) -> None:
    done = docker(*RUN, "--rm", uk["hello"], "from", "docker")
    assert done.returncode == 0, done.stderr
    assert "Hello, World" in done.stdout
    assert "Command line is: 'from docker'" in done.stdout


@pytest.mark.parametrize(
    ("guest", "args", "code"),
    [
        ("hello", (), 0),
        ("hello", ("exit=3",), 3),
        ("fault", (), 139),  # SIGSEGV
        ("seccomp", (), 159),  # SIGSYS: the seccomp filter killed it
    ],
)
def test_exit_codes_in_docker_inspect(
    uk: dict[str, str], detached: list[str], guest: str, args: tuple[str, ...], code: int
) -> None:
    name = start(detached, uk[guest], *args)
    assert docker("wait", name).stdout.strip() == str(code)
    assert inspect(name, "{{.State.ExitCode}}") == str(code)


def test_detached_logs_stop_and_kill(uk: dict[str, str], detached: list[str]) -> None:
    stopped = start(detached, uk["time"], "sleep=60")
    killed = start(detached, uk["time"], "sleep=60")
    for name in (stopped, killed):
        assert "sleeping" in wait_logs(name, "sleeping")
        assert inspect(name, "{{.State.Running}}") == "true"
    assert docker("stop", stopped).returncode == 0
    assert inspect(stopped, "{{.State.ExitCode}}") == "143"  # SIGTERM, not the SIGKILL fallback
    assert docker("kill", killed).returncode == 0
    assert docker("wait", killed).stdout.strip() == "137"
    assert inspect(killed, "{{.State.ExitCode}}") == "137"


def test_docker_exec_is_refused(uk: dict[str, str], detached: list[str]) -> None:
    """A unikernel is one address space: there is no second process to start."""
    name = start(detached, uk["time"], "sleep=60")
    wait_logs(name, "sleeping")
    done = docker("exec", name, "/bin/sh")
    assert done.returncode != 0
    assert "cannot exec into a unikernel container" in done.stderr + done.stdout
    assert inspect(name, "{{.State.Running}}") == "true"  # the guest is unharmed


def test_memory_limit_reaches_the_guest(uk: dict[str, str], detached: list[str]) -> None:
    """`--memory 256m`: the guest's RAM is 256 MiB minus 8 MiB of host overhead, mapped from
    0x10000 in the guest's process (the container's pid), inside a 256 MiB cgroup."""
    name = start(detached, "--memory", "256m", uk["time"], "sleep=60")
    wait_logs(name, "sleeping")
    pid = inspect(name, "{{.State.Pid}}")
    maps = Path(f"/proc/{pid}/maps").read_text()
    # Guest RAM: 0x10000 up to its size, split by the unikernel's own segment permissions.
    spans = [[int(x, 16) for x in line.split()[0].split("-")] for line in maps.splitlines()]
    low = [(start, end) for start, end in spans if end <= 1 << 32]
    assert low[0][0] == 0x10000, maps
    assert max(end for _, end in low) == 248 << 20, maps
    cgroup = Path(f"/proc/{pid}/cgroup").read_text()
    memory = re.search(r"^\d+:memory:(.*)$", cgroup, re.M)
    if memory:  # cgroup v1 (this host); v2 would be memory.max
        limit = Path("/sys/fs/cgroup/memory", memory.group(1).lstrip("/"), "memory.limit_in_bytes")
        assert int(limit.read_text()) == 256 << 20


def test_docker_tty(uk: dict[str, str]) -> None:
    done = subprocess.run(
        ["docker", *RUN, "--rm", "-t", uk["hello"], "tty"],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # The pty we sent over --console-socket turns "\n" into "\r\n" (bytes: text mode would
    # fold it back).
    assert b"Hello, World\r\nCommand line is: 'tty'\r\n" in done.stdout


def test_docker_reports_an_ordinary_image_clearly(busybox_image: str) -> None:
    done = docker(*RUN, "--rm", busybox_image, "/bin/busybox", "echo", "hi")
    assert done.returncode != 0
    # our --log entry, relayed by the shim
    assert "'/bin/busybox' is not a unikernel" in done.stderr


# ---------------------------------------------------------------------------- network


def test_docker_network_is_the_guests(uk: dict[str, str], detached: list[str]) -> None:
    """The bridge network libnetwork's prestart hook sets up goes to the guest: its address and
    MAC are the ones Docker assigned. No traffic is sent (Docker's bridge is not ours)."""
    name = start(detached, uk["net"])
    logs = wait_logs(name, "net: ready")
    settings = json.loads(inspect(name, "{{json .NetworkSettings}}"))
    assert f"net: ipv4 {settings['IPAddress']}/{settings['IPPrefixLen']}" in logs
    assert f"mac {settings['MacAddress']} mtu" in logs


def test_network_none(uk: dict[str, str]) -> None:
    """--network none: a guest without network devices runs; one with a device is refused with
    one line (there is nothing to attach it to)."""
    done = docker(*RUN, "--rm", "--network", "none", uk["hello"])
    assert done.returncode == 0, done.stderr
    assert "Hello, World" in done.stdout
    done = docker(*RUN, "--rm", "--network", "none", uk["net"])
    assert done.returncode != 0
    assert "network device(s) service0 have nothing to attach" in done.stderr


@pytest.fixture
def bridge(dockerd: DockerEngine) -> Iterator[str]:
    """A user-defined bridge network that is `--internal`: no route out, no NAT; traffic on
    it stays between its containers."""
    name = unique("runnc-py-e2e-net")
    done = docker("network", "create", "--internal", "--driver", "bridge", name)
    assert done.returncode == 0, done.stderr
    yield name
    docker("network", "rm", name)


def test_ping_the_guest_from_a_second_container(
    uk: dict[str, str], busybox_image: str, bridge: str, detached: list[str]
) -> None:
    guest = start(detached, "--network", bridge, uk["net"])
    wait_logs(guest, "net: ready")
    address = inspect(guest, f'{{{{(index .NetworkSettings.Networks "{bridge}").IPAddress}}}}')
    assert address
    done = docker(
        "run",
        "--rm",
        "--network",
        bridge,
        busybox_image,
        "/bin/busybox",
        "ping",
        "-c",
        "3",
        "-W",
        "5",
        address,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 packets received" in done.stdout


# ---------------------------------------------------------------------------- files, mounts


def _state_file(container: str) -> Path:
    """runnc-py's state.json of a Docker container (the shim's --root is Docker's choice)."""
    found = list(Path("/run/docker").glob(f"runtime-*/*/{container}/state.json"))
    found += list(Path("/run/containerd").glob(f"**/{container}/state.json"))
    assert len(found) == 1, found
    return found[0]


def test_lkl_image_gets_dockers_resolv_conf_hosts_hostname(
    uk: dict[str, str], detached: list[str]
) -> None:
    """An LKL-shaped guest (block device `rootfs`) gets the image as its own ext4 copy, with
    the files Docker manages for the container written in (read back while it runs)."""
    name = start(detached, "--hostname", "uk-e2e", uk["rootfs"], "sleep=60")
    wait_logs(name, "sleeping")
    assert "rootfs: ext4 ok" in docker("logs", name).stdout
    container = inspect(name, "{{.Id}}")
    copy = Path(json.loads(_state_file(container).read_text())["rootfsImage"])
    for field, path in (
        ("ResolvConfPath", "/etc/resolv.conf"),
        ("HostsPath", "/etc/hosts"),
        ("HostnamePath", "/etc/hostname"),
    ):
        engine_file = Path(inspect(name, "{{." + field + "}}"))
        assert debugfs_cat(copy, path) == engine_file.read_text(), path
    assert debugfs_cat(copy, "/etc/hostname") == "uk-e2e\n"
    assert debugfs_cat(copy, "/etc/motd") == "in the image\n"
    assert docker("stop", name).returncode == 0
    assert not copy.exists()


def test_host_directory_volume_is_refused_with_one_line(uk: dict[str, str], tmp_path: Path) -> None:
    done = docker(*RUN, "--rm", "-v", f"{tmp_path}:/data", uk["hello"])
    assert done.returncode != 0
    line = f"bind mount {tmp_path} -> /data cannot reach a unikernel"
    # One line of ours, inside the one line the docker CLI prints for a failed create.
    ours = [text for text in done.stderr.splitlines() if "unikernel" in text]
    assert len(ours) == 1 and ours[0].count(line) == 1, done.stderr
    assert "set annotation org.runnc-py.mounts=ignore" in ours[0]
