"""Images from `runnc-py image build` in the real engines: `docker load`, `podman load`,
`ctr images import` take the archive, each runs it by its Entrypoint with no arguments given,
and the image's settings reach the runtime.

The image asks for `org.runnc-py.cmdline=env` (the guest then prints the environment words
before `--`), so its output shows whether the setting arrived. What each engine puts into
config.json is checked where the claim is made in docs/engines.md ("Images"): Docker passes
neither labels nor image annotations (the settings come from /runnc-py.json in the rootfs);
podman passes the image manifest's annotations.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import RUNTIME, Containerd, docker, run
from tests.e2e.images import unikernel_image

pytestmark = [pytest.mark.e2e, pytest.mark.root]

SETTINGS = ("--annotation", "org.runnc-py.cmdline=env", "--arg", "from-image", "--mem", "32")
DOCKER_TASKS = Path("/run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby")


def _tag() -> str:
    return f"localhost/runnc-py-e2e/image:{uuid.uuid4().hex[:12]}"


def _settings_arrived(stdout: str) -> None:
    assert "Hello, World" in stdout
    line = next(x for x in stdout.splitlines() if x.startswith("Command line is:"))
    assert "PATH=" in line and line.endswith(" -- from-image'"), line


@pytest.fixture
def archive(guests: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    tag = _tag()
    yield tag, unikernel_image(guests / "hello.spt", tag, tmp_path / "img.tar", extra=SETTINGS)


def test_docker_loads_and_runs_the_image(dockerd: object, archive: tuple[str, Path]) -> None:
    tag, path = archive
    done = docker("load", "-i", str(path))
    assert done.returncode == 0, done.stderr
    try:
        assert f"Loaded image: {tag}" in done.stdout
        labels = json.loads(docker("image", "inspect", "-f", "{{json .Config.Labels}}", tag).stdout)
        assert labels["org.runnc-py.image"] == "1" and labels["org.runnc-py.mem"] == "32"
        ran = docker("run", "--rm", "--runtime=runnc-py", tag)
        assert ran.returncode == 0, ran.stderr
        _settings_arrived(ran.stdout)
    finally:
        docker("rmi", "-f", tag)


def test_docker_config_json_has_no_image_settings(
    dockerd: object, guests: Path, tmp_path: Path
) -> None:
    """Docker's config.json for a running container: Env and args from the image, but none of
    its labels as annotations; /runnc-py.json is how the settings travel."""
    tag = _tag()
    path = unikernel_image(guests / "time.spt", tag, tmp_path / "time.tar",
                           extra=("--arg", "sleep=30", "--mem", "32"))  # fmt: skip
    assert docker("load", "-i", str(path)).returncode == 0
    name = f"runnc-py-e2e-{uuid.uuid4().hex[:8]}"
    try:
        started = docker("run", "-d", "--name", name, "--runtime=runnc-py", tag)
        assert started.returncode == 0, started.stderr
        cid = started.stdout.strip()
        config_path = DOCKER_TASKS / cid / "config.json"
        deadline = time.monotonic() + 30
        while not config_path.exists():
            assert time.monotonic() < deadline, f"{config_path} never appeared"
            time.sleep(0.1)
        config = json.loads(config_path.read_text())
        assert config["process"]["args"] == ["/time.spt", "sleep=30"]
        assert any(e.startswith("PATH=") for e in config["process"]["env"])
        notes = config.get("annotations") or {}
        assert not [k for k in notes if k.startswith("org.runnc-py.")], notes
    finally:
        docker("rm", "-f", name)
        docker("rmi", "-f", tag)


def podman(*args: str, timeout: float = 60):  # type: ignore[no-untyped-def]
    return run(["podman", *args], timeout=timeout)


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_podman_loads_and_runs_the_image(
    podman_engine: None, guests: Path, tmp_path: Path, fmt: str
) -> None:
    tag = _tag()
    path = unikernel_image(guests / "hello.spt", tag, tmp_path / "img.tar",
                           extra=(*SETTINGS, "--format", fmt))  # fmt: skip
    done = podman("load", "-i", str(path))
    assert done.returncode == 0, done.stderr
    try:
        assert tag in done.stdout
        ran = podman("run", "--rm", "--runtime", "runnc-py", tag)
        assert ran.returncode == 0, ran.stderr
        _settings_arrived(ran.stdout)
    finally:
        podman("rmi", "-f", tag)


def test_podman_passes_the_manifest_annotations(
    podman_engine: None, archive: tuple[str, Path]
) -> None:
    """The config.json podman writes for `podman init` (our `create` runs on it)."""
    tag, path = archive
    assert podman("load", "-i", str(path)).returncode == 0
    name = f"runnc-py-e2e-{uuid.uuid4().hex[:8]}"
    try:
        created = podman("create", "--name", name, "--runtime", "runnc-py", tag)
        assert created.returncode == 0, created.stderr
        cid = created.stdout.strip().splitlines()[-1]
        inited = podman("init", name)
        assert inited.returncode == 0, inited.stderr
        graph = podman("info", "--format", "{{.Store.GraphRoot}}").stdout.strip()
        config_path = Path(graph) / "overlay-containers" / cid / "userdata" / "config.json"
        notes = json.loads(config_path.read_text()).get("annotations") or {}
        assert notes["org.runnc-py.mem"] == "32" and notes["org.runnc-py.cmdline"] == "env"
        assert "org.runnc-py.image" not in notes  # a label: labels do not reach config.json
    finally:
        podman("rm", "-f", name)
        podman("rmi", "-f", tag)


def test_ctr_imports_and_runs_the_image(containerd: Containerd, archive: tuple[str, Path]) -> None:
    tag, path = archive
    done = containerd.ctr("images", "import", str(path))
    assert done.returncode == 0, done.stderr
    try:
        names = containerd.ctr("images", "ls", "-q").stdout.split()
        assert tag in names, names
        cid = f"runnc-py-e2e-{uuid.uuid4().hex[:8]}"
        ran = containerd.ctr("run", "--rm", "--runc-binary", RUNTIME, tag, cid)
        assert ran.returncode == 0, ran.stderr
        _settings_arrived(ran.stdout)
    finally:
        containerd.ctr("images", "rm", tag)
