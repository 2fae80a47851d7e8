"""Smoke test with the real Docker engine (Debian's docker.io): `docker run --runtime=runnc-py`.

The fixture registers runnc-py in /etc/docker/daemon.json (merged into what is there, restored
afterwards), starts dockerd if it is not running (and stops it at the end), and builds the image
without any registry: `docker import` of a tar holding our hello.spt. Containers use Docker's
default bridge network: its prestart hook (libnetwork-setkey) must run for `docker run` to work.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.root]

DAEMON_JSON = Path("/etc/docker/daemon.json")
SOCKET = Path("/var/run/docker.sock")
RUNTIME = "/usr/local/bin/runnc-py"
START_TIMEOUT = 30.0


def docker(*args: str, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,  # type: ignore[arg-type]
    )


def daemon_answers() -> bool:
    if not SOCKET.exists():
        return False
    try:
        return docker("info", "--format", "{{.ServerVersion}}", timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def merged_config(current: dict[str, object]) -> dict[str, object]:
    """daemon.json with our runtime added; every other setting kept."""
    config = dict(current)
    runtimes = dict(config.get("runtimes") or {})  # type: ignore[call-overload]
    runtimes["runnc-py"] = {"path": RUNTIME}
    config["runtimes"] = runtimes
    return config


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    for tool in ("dockerd", "docker"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found: install Debian's docker.io (python3 build.py setup)")
    if not os.path.exists(RUNTIME):
        pytest.skip(f"{RUNTIME} missing: run python3 build.py setup")

    original = DAEMON_JSON.read_text() if DAEMON_JSON.exists() else None
    current = json.loads(original) if original and original.strip() else {}
    wanted = merged_config(current)
    changed = wanted != current
    if changed:
        DAEMON_JSON.parent.mkdir(parents=True, exist_ok=True)
        DAEMON_JSON.write_text(json.dumps(wanted, indent=2) + "\n")

    started: subprocess.Popen[bytes] | None = None
    log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    try:
        if daemon_answers():
            if changed:  # a running dockerd reloads its runtimes on SIGHUP
                os.kill(_dockerd_pid(), signal.SIGHUP)
                time.sleep(1)
        else:
            with open(log, "wb") as out:
                started = subprocess.Popen(
                    ["dockerd"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            deadline = time.monotonic() + START_TIMEOUT
            while not daemon_answers():
                if started.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                    pytest.skip(f"dockerd did not start here: {' | '.join(tail)}")
                time.sleep(0.2)
        yield
    finally:
        if started is not None:
            started.terminate()
            try:
                started.wait(30)
            except subprocess.TimeoutExpired:
                started.kill()
                started.wait()
        if changed:
            if original is None:
                DAEMON_JSON.unlink()
            else:
                DAEMON_JSON.write_text(original)
            if started is None and daemon_answers():
                os.kill(_dockerd_pid(), signal.SIGHUP)


def _dockerd_pid() -> int:
    pid = Path("/var/run/docker.pid")
    if pid.exists():
        return int(pid.read_text().strip())
    found = subprocess.run(["pgrep", "-xo", "dockerd"], capture_output=True, text=True)
    return int(found.stdout.split()[0])


@pytest.fixture(scope="module")
def image(dockerd: None, guests: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An image holding /hello.spt, /time.spt and /net.spt, made with `docker import` (no
    registry)."""
    tree = tmp_path_factory.mktemp("image")
    for guest in ("hello.spt", "time.spt", "net.spt"):
        (tree / guest).write_bytes((guests / guest).read_bytes())
        (tree / guest).chmod(0o755)
    tar = tree.parent / "image.tar"
    subprocess.run(["tar", "-C", str(tree), "-cf", str(tar), "."], check=True)
    name = f"runnc-py-e2e/guests:{uuid.uuid4().hex[:12]}"
    done = docker("import", str(tar), name)
    assert done.returncode == 0, done.stderr
    yield name
    docker("rmi", "-f", name)


def test_docker_run_hello(image: str) -> None:
    done = docker("run", "--rm", "--runtime=runnc-py", image, "/hello.spt", "from", "docker")
    assert done.returncode == 0, done.stderr
    assert "Hello, World" in done.stdout
    assert "Command line is: 'from docker'" in done.stdout


def test_docker_exit_status_and_memory(image: str) -> None:
    done = docker("run", "--rm", "-m", "64m", "--runtime=runnc-py", image, "/hello.spt", "exit=3")
    assert done.returncode == 3, done.stderr
    assert "Command line is: 'exit=3'" in done.stdout


def test_docker_tty(image: str) -> None:
    done = subprocess.run(
        ["docker", "run", "--rm", "-t", "--runtime=runnc-py", image, "/hello.spt", "tty"],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # The pty we sent over --console-socket turns "\n" into "\r\n" (bytes: text mode would
    # fold it back).
    assert b"Hello, World\r\nCommand line is: 'tty'\r\n" in done.stdout


def test_docker_stop_is_prompt(image: str) -> None:
    name = f"runnc-py-e2e-{uuid.uuid4().hex[:8]}"
    done = docker("run", "-d", "--name", name, "--runtime=runnc-py", image, "/time.spt", "sleep=60")
    assert done.returncode == 0, done.stderr
    try:
        assert docker("stop", name).returncode == 0
        code = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        assert code == "143"  # SIGTERM ended the guest: Docker's SIGKILL fallback would be 137
    finally:
        docker("rm", "-f", name)


def test_docker_reports_bad_image_clearly(image: str) -> None:
    done = docker("run", "--rm", "--runtime=runnc-py", image, "/bin/sh")
    assert done.returncode != 0
    assert "'/bin/sh' is not a unikernel" in done.stderr  # our --log entry, relayed by the shim


def test_docker_network_is_the_guests(image: str) -> None:
    """The bridge network libnetwork's prestart hook sets up goes to the guest: its address and
    MAC are the ones Docker assigned. No traffic is sent (Docker's bridge is not ours)."""
    name = f"runnc-py-e2e-{uuid.uuid4().hex[:8]}"
    done = docker("run", "-d", "--name", name, "--runtime=runnc-py", image, "/net.spt")
    assert done.returncode == 0, done.stderr
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "net: ready" not in (logs := docker("logs", name).stdout):
            assert time.monotonic() < deadline, logs
            time.sleep(0.1)
        settings = json.loads(docker("inspect", "-f", "{{json .NetworkSettings}}", name).stdout)
        assert f"net: ipv4 {settings['IPAddress']}/{settings['IPPrefixLen']}" in logs
        assert f"mac {settings['MacAddress']} mtu" in logs
    finally:
        docker("rm", "-f", name)
