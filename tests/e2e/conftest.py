"""Shared fixtures for the real-engine tests: dockerd, podman, a containerd with CRI.

Each engine gets runnc-py registered by `runnc-py install` (the user's command), and each daemon
is started in the background only when none answers; what a fixture started it stops, what it
registered it unregisters (`runnc-py uninstall`), and the configuration file must then be
byte-identical to what it was. A registration that was already there (another session's) is
used and left alone.

containerd: the tests run their own instance (config, root, state and socket in a temp dir),
so the node's containerd, if any, and Docker's managed one are never reconfigured or restarted.
Its config is `containerd config default` plus `install --containerd --config containerd=...`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import runnc_binary

RUNTIME = "/usr/local/bin/runnc-py"
NAME = "runnc-py"
START_TIMEOUT = 30.0
DAEMON_JSON = Path("/etc/docker/daemon.json")
DOCKER_SOCKET = Path("/var/run/docker.sock")
CONTAINERS_CONF = Path("/etc/containers/containers.conf")
# What an administrator's daemon.json might hold already: install must keep it.
DOCKER_OTHER_SETTINGS = {"log-level": "info", "max-concurrent-downloads": 2}


def need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found: run python3 build.py setup (Debian packages)")
    if not os.path.exists(RUNTIME):
        pytest.skip(f"{RUNTIME} missing: run python3 build.py setup")


def run(argv: list[str], timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]


def runnc(*args: str) -> subprocess.CompletedProcess[str]:
    done = run([*runnc_binary(), *args])
    assert done.returncode == 0, f"runnc-py {' '.join(args)}: {done.stderr}"
    return done


def debugfs_cat(image: Path, path: str) -> str:
    """PATH's contents inside the ext4 IMAGE (read without mounting it)."""
    done = subprocess.run(["debugfs", "-R", f"cat {path}", str(image)], capture_output=True)
    return done.stdout.decode()


# ---------------------------------------------------------------------------- daemons


def start_daemon(
    argv: list[str], answers: Callable[[], bool], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ARGV in its own session, logging to LOG; return once ANSWERS() (else skip)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
    deadline = time.monotonic() + START_TIMEOUT
    while not answers():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_daemon(proc)
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            pytest.skip(f"{argv[0]} did not start here: {' | '.join(tail)}")
        time.sleep(0.2)
    return proc


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Registration:
    """What an engine fixture did to a configuration file, to undo it exactly."""

    engine: str
    path: Path
    before: bytes | None  # the file before the fixture touched it (None: absent)
    installed: bytes | None = None  # before `install`: what uninstall must give back
    changed: bool = False
    seeded: bool = False
    records_before: set[Path] = field(default_factory=set)

    def records(self) -> set[Path]:
        """install's records next to the file (FILE.runnc-py.*: backup, what it did)."""
        return set(self.path.parent.glob(self.path.name + ".runnc-py.*"))

    def install(self, *extra: str) -> None:
        self.installed = self.path.read_bytes() if self.path.exists() else None
        self.records_before = self.records()
        runnc("install", f"--{self.engine}", "--config", f"{self.engine}={self.path}", *extra)
        after = self.path.read_bytes() if self.path.exists() else None
        self.changed = after != self.installed

    def uninstall(self) -> None:
        """Undo install (only if it changed anything), check the round trip, then put the
        file back as it was before the fixture."""
        try:
            if self.changed:
                runnc("uninstall", f"--{self.engine}", "--config", f"{self.engine}={self.path}")
                now = self.path.read_bytes() if self.path.exists() else None
                assert now == self.installed, f"{self.path}: install/uninstall not byte-identical"
        finally:
            if self.changed:  # a failed uninstall must not leave install's records behind
                for record in self.records() - self.records_before:
                    record.unlink()
            if self.changed or self.seeded:
                if self.before is None:
                    self.path.unlink(missing_ok=True)
                else:
                    self.path.write_bytes(self.before)

    def seed(self, text: str) -> None:
        """Give a missing file TEXT (settings install must keep), removed again at the end."""
        if self.before is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(text)
            self.seeded = True

    @classmethod
    def of(cls, engine: str, path: Path) -> Registration:
        return cls(engine, path, path.read_bytes() if path.exists() else None)


class EngineLock:
    """Coordinates the test sessions (other agents', CI jobs) sharing one host engine, so no
    session stops a daemon or unregisters a runtime another one is using: setup under an
    exclusive lock, the tests under a shared one, the teardown under an exclusive one again.

        with EngineLock("docker") as lock:   # exclusive: set up
            lock.using()                     # shared: run the tests
            lock.finishing()                 # exclusive again (waits for the others): tear down
    """

    def __init__(self, name: str) -> None:
        self.path = f"/run/lock/runnc-py-e2e-{name}.lock"
        self.fd = -1

    def __enter__(self) -> EngineLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def using(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_SH)

    def finishing(self) -> None:
        # Unlock first: two sessions both holding LOCK_SH and asking for LOCK_EX in one step
        # would wait for each other forever.
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # releases the lock


# ---------------------------------------------------------------------------- Docker


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run(["docker", *args], timeout=timeout)


def docker_answers() -> bool:
    if not DOCKER_SOCKET.exists():
        return False
    try:
        return docker("info", "--format", "{{.ServerVersion}}", timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _dockerd_pid() -> int:
    pid = Path("/var/run/docker.pid")
    if pid.exists():
        return int(pid.read_text().strip())
    found = run(["pgrep", "-xo", "dockerd"])
    return int(found.stdout.split()[0])


@dataclass(frozen=True)
class DockerEngine:
    config_before_install: dict[str, object]  # daemon.json as install found it


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerEngine]:
    """A dockerd with runnc-py registered by `runnc-py install --docker` into a daemon.json
    that holds other settings (added for the test when the file is new)."""
    need("dockerd", "docker")
    with EngineLock("docker") as lock:
        reg = Registration.of("docker", DAEMON_JSON)
        running = docker_answers()
        started: subprocess.Popen[bytes] | None = None
        try:
            reg.seed(json.dumps(DOCKER_OTHER_SETTINGS, indent=2) + "\n")
            found = json.loads(DAEMON_JSON.read_text() or "{}")
            if NAME not in (found.get("runtimes") or {}):
                reg.install(*(("--reload",) if running else ()))
            if not running:
                log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
                started = start_daemon(["dockerd"], docker_answers, log)
            lock.using()
            yield DockerEngine(found)
        finally:
            lock.finishing()
            if started is not None:
                stop_daemon(started)
            reg.uninstall()
            if started is None and running and reg.changed and docker_answers():
                os.kill(_dockerd_pid(), signal.SIGHUP)  # forget the runtime again


# ---------------------------------------------------------------------------- podman


@pytest.fixture(scope="session")
def podman_engine() -> Iterator[None]:
    """podman (no daemon) with runnc-py registered by `runnc-py install --podman`."""
    need("podman", "conmon")
    with EngineLock("podman") as lock:
        reg = Registration.of("podman", CONTAINERS_CONF)
        try:
            reg.install()
            lock.using()
            yield
        finally:
            lock.finishing()
            reg.uninstall()


# ---------------------------------------------------------------------------- containerd


@dataclass(frozen=True)
class Containerd:
    address: str
    namespace: str
    config: Path
    log: Path

    @property
    def state(self) -> Path:
        """Its state directory (bundles under io.containerd.runtime.v2.task/NAMESPACE/ID)."""
        return Path(self.address).parent / "state"

    def ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run(
            ["ctr", "--address", self.address, "--namespace", self.namespace, *args],
            timeout=timeout,
        )


PAUSE_IMAGE = "docker.io/runnc-py-e2e/pause:1"  # built and imported by the CRI test
DELEGATE = "/usr/sbin/runc"


def _private_containerd_config(base: Path, run_dir: Path) -> str:
    """`containerd config default` rooted in BASE/RUN_DIR, with its own socket and our pause
    image (no registry to pull registry.k8s.io/pause from)."""
    text = run(["containerd", "config", "default"]).stdout
    replacements = {
        'root = "/var/lib/containerd"': f'root = "{base / "root"}"',
        'state = "/run/containerd"': f'state = "{run_dir / "state"}"',
        'address = "/run/containerd/containerd.sock"': f'address = "{run_dir / "containerd.sock"}"',
        'sandbox_image = "registry.k8s.io/pause:3.6"': f'sandbox_image = "{PAUSE_IMAGE}"',
        # CRI gives the pause container oom_score_adj -998; lowering it needs
        # CAP_SYS_RESOURCE, which this kind of host lacks (runc fails too). Restricted,
        # containerd keeps it at its own value.
        "restrict_oom_score_adj = false": "restrict_oom_score_adj = true",
    }
    for old, new in replacements.items():
        assert old in text, f"containerd config default has no {old!r}"
        text = text.replace(old, new)
    # The opt plugin's directory (/opt/containerd) stays: it is only created, never filled.
    return text


@pytest.fixture(scope="session")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    """A private containerd (with its CRI plugin) whose config got the `runnc-py` runtime
    handler from `runnc-py install --containerd`."""
    need("containerd", "ctr")
    base = tmp_path_factory.mktemp("containerd")
    run_dir = Path(f"/run/runnc-py-e2e-{uuid.uuid4().hex[:8]}")  # short: socket path limit
    config = base / "config.toml"
    engine = Containerd(str(run_dir / "containerd.sock"), "runnc-py-e2e", config, base / "log")
    started: subprocess.Popen[bytes] | None = None
    try:
        run_dir.mkdir(mode=0o700)
        config.write_text(_private_containerd_config(base, run_dir))
        reg = Registration.of("containerd", config)
        reg.install()
        assert reg.changed, "install --containerd changed nothing"

        def answers() -> bool:
            return (
                os.path.exists(engine.address) and engine.ctr("version", timeout=10).returncode == 0
            )

        # The shims inherit containerd's environment: bundles without a unikernel (the pause
        # container) go to runc, as a node's containerd unit would set it.
        env = {**os.environ, "RUNNC_PY_DELEGATE": DELEGATE}
        started = start_daemon(["containerd", "--config", str(config)], answers, engine.log, env)
        yield engine
        reg.uninstall()
    finally:
        if started is not None:
            stop_daemon(started)
        _unmount_below(base)
        _unmount_below(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)


def _unmount_below(path: Path) -> None:
    """Lazily unmount what a killed task may have left mounted under PATH (shm, rootfs)."""
    prefix = str(path) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
