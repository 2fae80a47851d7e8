"""`runnc-py install --docker` against the real dockerd: a second registration under another
name with `--delegate runc` and `--reload`, used by `docker run`, then removed again.

The session's dockerd fixture (conftest.py) already registered `runnc-py`; this adds
`runnc-py-delegating` next to it in the same /etc/docker/daemon.json, and checks that
uninstalling it gives the file back byte for byte, the fixture's registration intact.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import runnc_binary
from tests.e2e.conftest import DAEMON_JSON, DockerEngine, docker
from tests.e2e.images import busybox_archive, unikernel_image

pytestmark = [pytest.mark.e2e, pytest.mark.root]

NAME = "runnc-py-delegating"
CONFIG = ("--docker", "--config", f"docker={DAEMON_JSON}", "--name", NAME)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*runnc_binary(), *args], capture_output=True, text=True, timeout=60)


def docker_knows(name: str) -> bool:
    info = docker("info", "--format", "{{json .Runtimes}}")
    return info.returncode == 0 and name in json.loads(info.stdout)


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 15
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.fixture
def delegating(dockerd: DockerEngine) -> Iterator[str]:
    before = DAEMON_JSON.read_bytes()
    done = cli("install", *CONFIG, "--delegate", "runc", "--reload")
    assert done.returncode == 0, done.stderr
    assert "reloaded" in done.stderr, done.stderr
    try:
        wait_until(lambda: docker_knows(NAME), "dockerd to load the new runtime")
        yield NAME
    finally:
        undone = cli("uninstall", *CONFIG, "--reload")
        assert undone.returncode == 0, undone.stderr
        assert DAEMON_JSON.read_bytes() == before
        wait_until(lambda: not docker_knows(NAME), "dockerd to forget the runtime")


def test_delegating_runtime_runs_both_kinds(delegating: str, guests: Path, tmp_path: Path) -> None:
    entry = json.loads(DAEMON_JSON.read_text())["runtimes"][delegating]
    assert entry["runtimeArgs"][0] == "--delegate" and entry["runtimeArgs"][1].startswith("/")
    tag = f"localhost/runnc-py-e2e/mixed:{uuid.uuid4().hex[:12]}"
    bb = f"localhost/runnc-py-e2e/bb:{uuid.uuid4().hex[:12]}"
    assert docker("load", "-i", str(busybox_archive(bb, tmp_path / "bb.tar"))).returncode == 0
    uk = unikernel_image(guests / "hello.spt", tag, tmp_path / "uk.tar")
    assert docker("load", "-i", str(uk)).returncode == 0
    try:
        ordinary = docker("run", "--rm", f"--runtime={delegating}", bb, "/bin/busybox", "echo",
                          "delegated")  # fmt: skip
        assert ordinary.returncode == 0, ordinary.stderr
        assert ordinary.stdout.strip() == "delegated"
        ours = docker("run", "--rm", f"--runtime={delegating}", tag, "a")
        assert ours.returncode == 0, ours.stderr
        assert "Command line is: 'a'" in ours.stdout
    finally:
        docker("rmi", "-f", tag, bb)
