"""The OCI lifecycle through the real `runnc-py` CLI, on bundles built from our test guests.

Like containerd's shim, the test process makes itself a child subreaper: a container's init
outlives `runnc-py create` and is re-parented to us, so we can wait for it and read the guest's
exit status (128 + N for a guest killed by signal N, as engines report it). Every test uses its
own --root and container IDs, and the `rt` fixture removes whatever a failing test left.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import runnc_binary

pytestmark = pytest.mark.root

PR_SET_CHILD_SUBREAPER = 36
CGROUP_ROOT = Path("/sys/fs/cgroup")
MIB = 1 << 20


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def subreaper() -> Iterator[None]:
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    yield
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def cgroup_dirs(path: str) -> list[Path]:
    """Where cgroup PATH would live in each hierarchy (v1 controllers or v2)."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT / path.lstrip("/")]
    return [
        d / path.lstrip("/")
        for d in CGROUP_ROOT.iterdir()
        if d.is_dir() and not d.is_symlink() and d.name != "unified"
    ]


def children(zombies: bool = False) -> set[int]:
    """Live (or, with ZOMBIES, dead but unreaped) processes whose parent is this process."""
    me = str(os.getpid())
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            data = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        if fields[1].decode() == me and (fields[0] in (b"Z", b"X")) == zombies:
            found.add(int(entry))
    return found


class Runtime:
    """`runnc-py --root ROOT --log LOG --log-format json ...` plus waiting for inits."""

    def __init__(self, tmp: Path, guests: Path) -> None:
        self.tmp = tmp
        self.guests = guests
        self.root = tmp / "root"
        self.log = tmp / "log.json"
        self.base = [*runnc_binary(), "--root", str(self.root), "--log", str(self.log)]
        self.base += ["--log-format", "json"]
        self.ids: list[str] = []

    def new_id(self, prefix: str = "c") -> str:
        cid = f"rt-{prefix}-{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        return cid

    def __call__(
        self, *args: str, timeout: float = 30, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=timeout, **kw
        )

    def bundle(
        self,
        guest: str = "hello.spt",
        args: tuple[str, ...] = (),
        *,
        name: str | None = None,
        annotations: dict[str, str] | None = None,
        hooks: dict[str, list[dict[str, Any]]] | None = None,
        memory_limit: int | None = None,
        terminal: bool = False,
        namespaces: list[dict[str, str]] | None = None,
        env: list[str] | None = None,
    ) -> Path:
        bundle = self.tmp / (name or f"bundle-{uuid.uuid4().hex[:8]}")
        (bundle / "rootfs").mkdir(parents=True)
        (bundle / "rootfs" / guest).write_bytes((self.guests / guest).read_bytes())
        config: dict[str, Any] = {
            "ociVersion": "1.0.2",
            "process": {
                "terminal": terminal,
                "user": {"uid": 0, "gid": 0},
                "args": [f"/{guest}", *args],
                "env": env or ["PATH=/bin", "HOSTNAME=x"],
                "cwd": "/",
            },
            "root": {"path": "rootfs", "readonly": True},
            "hostname": "uk",
            "annotations": annotations or {},
            "linux": {
                "namespaces": namespaces
                if namespaces is not None
                else [{"type": "network"}, {"type": "uts"}, {"type": "ipc"}, {"type": "pid"}],
                "resources": {"memory": {"limit": memory_limit}} if memory_limit else {},
            },
        }
        if hooks:
            config["hooks"] = hooks
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle

    def create(
        self, cid: str, bundle: Path, *extra: str, out: Path | None = None
    ) -> tuple[subprocess.CompletedProcess[str], Path]:
        """`create`; the guest's stdio (inherited from create) goes to OUT."""
        out = out or self.tmp / f"{cid}.out"
        with open(out, "w") as f:
            done = subprocess.run(
                [*self.base, "create", "--bundle", str(bundle), *extra, cid],
                stdout=f,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=30,
                text=True,
            )
        return done, out

    def created(self, cid: str, bundle: Path, *extra: str) -> tuple[int, Path]:
        pid_file = self.tmp / f"{cid}.pid"
        done, out = self.create(cid, bundle, "--pid-file", str(pid_file), *extra)
        assert done.returncode == 0, out.read_text()
        return int(pid_file.read_text()), out

    def state(self, cid: str) -> dict[str, Any]:
        done = self("state", cid)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def status(self, cid: str) -> str:
        return str(self.state(cid)["status"])

    def log_entries(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def cleanup(self) -> None:
        for cid in self.ids:
            if (self.root / cid).exists():
                self("delete", "--force", cid)


def wait_exit(pid: int, timeout: float = 20) -> int:
    """The exit status of our (re-parented) child PID as engines report it (128+N on signal N)."""
    deadline = time.monotonic() + timeout
    while True:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got == pid:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"pid {pid} did not exit within {timeout} s")
        time.sleep(0.01)


def wait_for(predicate: Any, timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def assert_gone(rt: Runtime, cid: str, pid: int | None = None) -> None:
    """Nothing of CID is left: state dir, cgroup, init process."""
    assert not (rt.root / cid).exists(), f"state dir of {cid} left behind"
    for d in cgroup_dirs(f"/runnc-py/{cid}"):
        assert not d.exists(), f"cgroup {d} left behind"
    if pid is not None:
        try:
            data = Path(f"/proc/{pid}/stat").read_bytes()
        except FileNotFoundError:
            return
        assert data[data.rindex(b")") + 2 :].split()[0] in (b"Z", b"X"), f"init {pid} still alive"


@pytest.fixture
def rt(tmp_path: Path, guests: Path) -> Iterator[Runtime]:
    runtime = Runtime(tmp_path, guests)
    yield runtime
    runtime.cleanup()
    for pid in children():  # an init a failing test left behind
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    for pid in children(zombies=True):  # inits `delete` killed: re-parented to us, so ours to reap
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


# ---------------------------------------------------------------------------- lifecycle


def test_create_start_wait_delete(rt: Runtime) -> None:
    cid = rt.new_id()
    bundle = rt.bundle("hello.spt", ("one", "two"))
    pid, out = rt.created(cid, bundle)

    state = rt.state(cid)
    assert state["status"] == "created"
    assert state["pid"] == pid and state["id"] == cid
    assert state["bundle"] == str(bundle) and state["rootfs"] == str(bundle / "rootfs")
    assert state["ociVersion"].startswith("1.") and state["created"].endswith("Z")
    assert Path(f"/proc/{pid}").exists()
    # The init sits in the container's cgroup and its own network namespace.
    assert any(d.exists() for d in cgroup_dirs(f"/runnc-py/{cid}"))
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    assert out.read_text() == ""  # nothing runs before start

    assert rt("start", cid).returncode == 0
    assert wait_exit(pid) == 0
    assert "Hello, World" in out.read_text()
    assert "Command line is: 'one two'" in out.read_text()
    assert rt.status(cid) == "stopped"
    assert rt.state(cid)["pid"] == 0

    done = rt("delete", cid)
    assert done.returncode == 0, done.stderr
    assert_gone(rt, cid, pid)
    assert rt("state", cid).returncode != 0


@pytest.mark.parametrize(
    ("guest", "args", "expected"),
    [
        ("hello.spt", (), 0),
        ("hello.spt", ("exit=3",), 3),
        ("fault.spt", (), 139),
        ("seccomp.spt", (), 159),
    ],
)
def test_exit_status_propagates(
    rt: Runtime, guest: str, args: tuple[str, ...], expected: int
) -> None:
    cid = rt.new_id()
    pid, _ = rt.created(cid, rt.bundle(guest, args))
    assert rt("start", cid).returncode == 0
    assert wait_exit(pid) == expected
    assert rt("delete", cid).returncode == 0
    assert_gone(rt, cid)


def test_run_foreground_returns_guest_status(rt: Runtime) -> None:
    cid = rt.new_id()
    bundle = rt.bundle("hello.spt", ("exit=3",))
    done = rt("run", "--bundle", str(bundle), cid)
    assert done.returncode == 3, done.stderr
    assert "Command line is: 'exit=3'" in done.stdout
    assert_gone(rt, cid)  # run without --detach deletes the container


def test_run_detach(rt: Runtime) -> None:
    cid = rt.new_id()
    pid_file = rt.tmp / "run.pid"
    bundle = rt.bundle("time.spt", ("sleep=30",))
    with open(rt.tmp / "run.out", "w") as out:
        done = subprocess.run(
            [
                *rt.base,
                "run",
                "--detach",
                "--bundle",
                str(bundle),
                "--pid-file",
                str(pid_file),
                cid,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=30,
        )
    assert done.returncode == 0
    pid = int(pid_file.read_text())
    assert rt.status(cid) == "running"
    assert rt("kill", cid, "KILL").returncode == 0
    assert wait_exit(pid) == 137
    assert rt("delete", cid).returncode == 0
    assert_gone(rt, cid)


@pytest.mark.parametrize(("sig", "expected"), [("TERM", 143), ("SIGKILL", 137), ("2", 130)])
def test_kill_sleeping_guest(rt: Runtime, sig: str, expected: int) -> None:
    cid = rt.new_id()
    pid, out = rt.created(cid, rt.bundle("time.spt", ("sleep=30",)))
    assert rt("start", cid).returncode == 0
    wait_for(lambda: "sleeping" in out.read_text(), what="the guest to sleep")
    assert rt.status(cid) == "running"
    done = rt("kill", cid, sig)
    assert done.returncode == 0, done.stderr
    assert wait_exit(pid) == expected
    assert rt.status(cid) == "stopped"
    assert rt("delete", cid).returncode == 0


def test_kill_created_container(rt: Runtime) -> None:
    cid = rt.new_id()
    pid, out = rt.created(cid, rt.bundle("hello.spt"))
    assert rt("kill", cid).returncode == 0  # default SIGTERM
    assert wait_exit(pid) == 143
    assert "Hello" not in out.read_text()  # the guest never booted
    assert rt.status(cid) == "stopped"
    assert rt("delete", cid).returncode == 0


# ---------------------------------------------------------------------------- refusals


def last_error(rt: Runtime) -> str:
    entries = [e for e in rt.log_entries() if e["level"] == "error"]
    assert entries, "no error entry in --log"
    entry = entries[-1]
    assert set(entry) == {"level", "msg", "time"}
    assert "\n" not in entry["msg"]
    return str(entry["msg"])


def test_refusals(rt: Runtime) -> None:
    cid = rt.new_id()
    pid, _ = rt.created(cid, rt.bundle("time.spt", ("sleep=30",)))

    done, _ = rt.create(cid, rt.bundle())  # the ID is taken
    assert done.returncode != 0
    assert "already exists" in last_error(rt)

    assert rt("start", cid).returncode == 0
    done = rt("start", cid)  # start twice
    assert done.returncode != 0
    assert "cannot start a container that is running" in done.stderr
    assert "cannot start" in last_error(rt)
    assert len(done.stderr.strip().splitlines()) == 1

    done = rt("delete", cid)  # running, no --force
    assert done.returncode != 0
    assert "not stopped" in last_error(rt)
    assert rt.status(cid) == "running"

    assert rt("kill", cid, "KILL").returncode == 0
    assert wait_exit(pid) == 137
    done = rt("kill", cid, "TERM")  # kill a stopped container
    assert done.returncode != 0
    assert "container not running" in last_error(rt)  # the phrase containerd's shim matches
    done = rt("start", cid)
    assert done.returncode != 0
    assert "stopped" in last_error(rt)

    assert rt("delete", cid).returncode == 0
    for verb in ("state", "start", "kill", "delete", "pause"):
        done = rt(verb, cid)
        assert done.returncode != 0
        assert "does not exist" in last_error(rt), verb
    assert_gone(rt, cid)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.update(ociVersion="2.0.0"), "ociVersion"),
        (lambda c: c["process"].update(args=[]), "process.args[0]"),
        (lambda c: c["process"].update(args=["/missing.spt"]), "not found"),
        (lambda c: c["process"].update(args=["/../../etc/passwd.spt"]), "not found"),
        (lambda c: c["annotations"].update({"org.runnc-py.mem": "lots"}), "org.runnc-py.mem"),
        (
            lambda c: c["annotations"].update({"org.runnc-py.bogus": "1"}),
            "unknown runnc-py annotation",
        ),
        (lambda c: c["linux"]["resources"].update(memory={"limit": 4 * MIB}), "memory.limit"),
        (lambda c: c["linux"].update(namespaces=[{"type": "user"}]), "user namespaces"),
        (lambda c: c["process"].update(user={"uid": -1}), "process.user.uid"),
        (lambda c: c["linux"].update(cgroupsPath="/../x"), "cgroupsPath"),
    ],
)
def test_bad_bundle_is_refused_cleanly(rt: Runtime, mutate: Any, message: str) -> None:
    cid = rt.new_id()
    bundle = rt.bundle("hello.spt")
    config = json.loads((bundle / "config.json").read_text())
    mutate(config)
    (bundle / "config.json").write_text(json.dumps(config))
    done, out = rt.create(cid, bundle)
    assert done.returncode != 0
    assert message in last_error(rt)
    assert len(out.read_text().strip().splitlines()) == 1, out.read_text()
    assert_gone(rt, cid)
    assert not children()


def test_not_a_unikernel(rt: Runtime) -> None:
    cid = rt.new_id()
    bundle = rt.bundle("hello.spt")
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["/bin/true"]
    (bundle / "rootfs" / "bin").mkdir()
    (bundle / "rootfs" / "bin" / "true").write_bytes(Path("/bin/true").read_bytes())
    (bundle / "config.json").write_text(json.dumps(config))
    done, _ = rt.create(cid, bundle)
    assert done.returncode != 0
    assert "'/bin/true' is not a unikernel" in last_error(rt)
    assert_gone(rt, cid)


def test_corrupt_and_foreign_state_dirs(rt: Runtime) -> None:
    rt.root.mkdir(parents=True, exist_ok=True)
    corrupt, foreign, empty = rt.new_id("corrupt"), rt.new_id("foreign"), rt.new_id("empty")
    for cid, content in ((corrupt, "{not json"), (foreign, json.dumps({"id": foreign}))):
        (rt.root / cid).mkdir()
        (rt.root / cid / "lock").touch()
        (rt.root / cid / "state.json").write_text(content)
    (rt.root / empty).mkdir()
    (rt.root / empty / "lock").touch()

    for cid, message in ((corrupt, "corrupt"), (foreign, "foreign"), (empty, "missing")):
        done = rt("state", cid)
        assert done.returncode != 0
        assert message in last_error(rt)
        assert "Traceback" not in done.stderr
        assert rt("delete", cid).returncode != 0  # only --force removes what we cannot read
        assert rt("delete", "--force", cid).returncode == 0
        assert not (rt.root / cid).exists()

    done = rt("list", "--format", "json")
    assert done.returncode == 0 and json.loads(done.stdout) == []


# ---------------------------------------------------------------------------- hooks

HOOK_SCRIPT = (
    'n=$(ls "$2" | wc -l); { cat; echo; readlink /proc/self/ns/net; } > "$2/$(printf %02d "$n")-$1"'
)


def recording_hook(kind: str, directory: Path, **extra: Any) -> dict[str, Any]:
    return {
        "path": "/bin/sh",
        "args": ["sh", "-c", HOOK_SCRIPT, "hook", kind, str(directory)],
        **extra,
    }


def test_hooks_order_and_state(rt: Runtime) -> None:
    cid = rt.new_id()
    record = rt.tmp / "hooks"
    record.mkdir()
    kinds = [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ]
    bundle = rt.bundle(
        "hello.spt",
        annotations={"com.example.note": "x"},
        hooks={kind: [recording_hook(kind, record)] for kind in kinds},
    )
    pid, out = rt.created(cid, bundle)
    assert sorted(p.name for p in record.iterdir()) == [
        "00-prestart",
        "01-createRuntime",
        "02-createContainer",
    ]
    assert rt("start", cid).returncode == 0
    # start returns after startContainer and poststart ran
    assert sorted(p.name for p in record.iterdir())[3:] == ["03-startContainer", "04-poststart"]
    assert wait_exit(pid) == 0
    assert rt("delete", cid).returncode == 0
    runs = sorted(record.iterdir())
    assert [p.name[3:] for p in runs] == kinds

    host_net = os.readlink("/proc/self/ns/net")
    expected_status = {
        "prestart": "creating",
        "createRuntime": "creating",
        "createContainer": "creating",
        "startContainer": "created",
        "poststart": "running",
        "poststop": "stopped",
    }
    for path in runs:
        kind = path.name[3:]
        state_text, netns = path.read_text().strip().rsplit("\n", 1)
        state = json.loads(state_text)
        assert state["id"] == cid and state["bundle"] == str(bundle)
        assert state["status"] == expected_status[kind]
        assert state["annotations"] == {"com.example.note": "x"}
        if kind != "poststop":
            assert state["pid"] == pid
        # createContainer/startContainer run inside the container's namespaces.
        assert (netns == host_net) == (kind not in ("createContainer", "startContainer")), kind
    assert "Hello, World" in out.read_text()


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_hook_aborts_create(rt: Runtime, kind: str) -> None:
    cid = rt.new_id()
    hook = {"path": "/bin/sh", "args": ["sh", "-c", "echo boom from hook >&2; exit 7"]}
    done, out = rt.create(
        cid, rt.bundle("hello.spt", hooks={kind: [hook]}), "--pid-file", str(rt.tmp / "p")
    )
    assert done.returncode != 0
    message = last_error(rt)
    assert f"{kind} hook /bin/sh: exited with status 7" in message
    assert "boom from hook" in message
    assert not (rt.tmp / "p").exists()
    assert_gone(rt, cid)
    assert not children()  # the init is gone (reaped), not orphaned
    assert "Hello" not in out.read_text()


def test_init_killed_by_a_create_hook(rt: Runtime) -> None:
    """The init dies while the runtime's hooks run: create says so in one line (not as a
    broken pipe) and leaves nothing behind."""
    cid = rt.new_id()
    # Kill it, then wait until it is a zombie (its pipes closed) before the hook returns.
    kill_init = (
        "pid=$(tr -d ' \\n' | sed 's/.*\"pid\":\\([0-9]*\\).*/\\1/'); kill -9 $pid; "
        "until cut -d')' -f2 /proc/$pid/stat | grep -q '^ Z'; do sleep 0.01; done"
    )
    hook = {"path": "/bin/sh", "args": ["sh", "-c", kill_init]}
    done, _ = rt.create(cid, rt.bundle("hello.spt", hooks={"createRuntime": [hook]}))
    assert done.returncode == 1
    assert last_error(rt) == "create: devices: the container's init exited unexpectedly"
    assert_gone(rt, cid)
    assert not children()


def test_hook_timeout(rt: Runtime) -> None:
    cid = rt.new_id()
    hook = {"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}
    done, _ = rt.create(cid, rt.bundle("hello.spt", hooks={"prestart": [hook]}))
    assert done.returncode != 0
    assert "timed out after 1 s" in last_error(rt)
    assert_gone(rt, cid)


def test_hook_env_and_args(rt: Runtime) -> None:
    cid = rt.new_id()
    dump = rt.tmp / "env"
    script = (
        f'tr "\\0" " " < /proc/$$/cmdline > {dump}; echo "$FOO" >> {dump}; env | wc -l >> {dump}'
    )
    hook = {
        "path": "/bin/sh",
        "args": ["custom-argv0", "-c", script, "zero", "arg1"],
        "env": ["FOO=bar"],
    }
    pid, _ = rt.created(cid, rt.bundle("hello.spt", hooks={"createRuntime": [hook]}))
    lines = dump.read_text().split("\n")
    assert lines[0] == f"custom-argv0 -c {script} zero arg1 bar"  # argv as given, FOO from env
    assert int(lines[1]) <= 3  # FOO plus what sh itself sets (PWD, SHLVL): nothing inherited
    assert rt("delete", "--force", cid).returncode == 0
    assert_gone(rt, cid, pid)


# ---------------------------------------------------------------------------- console, pid file


def test_console_socket(rt: Runtime) -> None:
    cid = rt.new_id()
    sock_path = rt.tmp / "console.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(1)
    server.settimeout(20)
    received: dict[str, Any] = {}

    def accept() -> None:
        conn, _ = server.accept()
        with conn:
            msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
            received["name"], received["fds"] = msg, fds

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        pid, out = rt.created(
            cid, rt.bundle("hello.spt", ("tty",), terminal=True), "--console-socket", str(sock_path)
        )
        thread.join(20)
        assert len(received["fds"]) == 1 and received["name"]
        master = received["fds"][0]
        assert os.isatty(master)
        # The guest's stdio is the pty slave, not what create inherited.
        assert os.readlink(f"/proc/{pid}/fd/1").startswith("/dev/pts/")
        assert rt("start", cid).returncode == 0
        assert wait_exit(pid) == 0
        data = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the slave side is closed
                break
            if not chunk:
                break
            data += chunk
        os.close(master)
        assert b"Hello, World" in data
        assert b"Command line is: 'tty'" in data
        assert out.read_text() == ""
    finally:
        server.close()
    assert rt("delete", cid).returncode == 0


def test_terminal_without_console_socket_is_refused(rt: Runtime) -> None:
    cid = rt.new_id()
    done, _ = rt.create(cid, rt.bundle("hello.spt", terminal=True))
    assert done.returncode != 0
    assert "console-socket" in last_error(rt)
    assert_gone(rt, cid)


def test_pid_file_relative_path(rt: Runtime) -> None:
    cid = rt.new_id()
    bundle = rt.bundle("hello.spt")
    with open(rt.tmp / "o", "w") as out:
        done = subprocess.run(
            [*rt.base, "create", "-b", str(bundle), "--pid-file", "rel.pid", cid],
            cwd=rt.tmp,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=30,
        )
    assert done.returncode == 0
    pid = int((rt.tmp / "rel.pid").read_text())
    assert rt.state(cid)["pid"] == pid
    assert rt("delete", cid).returncode == 0  # a created container may be deleted
    assert_gone(rt, cid, pid)
    assert wait_exit(pid) == 137


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def test_guest_runs_unprivileged(rt: Runtime) -> None:
    """process.user, rlimits, no capabilities, NO_NEW_PRIVS, no stray fds: on the live guest."""
    cid = rt.new_id()
    bundle = rt.bundle("time.spt", ("sleep=30",))
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["user"] = {"uid": 65534, "gid": 65534, "additionalGids": [65533]}
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 64, "hard": 64}]
    (bundle / "config.json").write_text(json.dumps(config))
    pid, out = rt.created(cid, bundle)
    # Privileges are dropped in create: the init waits for start as the container's user.
    assert proc_status(pid)["Uid"].split() == ["65534"] * 4
    assert rt("start", cid).returncode == 0
    wait_for(lambda: "sleeping" in out.read_text(), what="the guest to sleep")
    status = proc_status(pid)
    assert status["Uid"].split() == ["65534"] * 4 and status["Gid"].split() == ["65534"] * 4
    assert status["Groups"].split() == ["65533"]
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[caps], 16) == 0, caps
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    limits = Path(f"/proc/{pid}/limits").read_text()
    assert any(line.startswith("Max open files") and line.split()[3:5] == ["64", "64"]
               for line in limits.splitlines())  # fmt: skip
    # stdio plus the guest's own epoll and timer fds: nothing of the runtime's leaks in.
    assert len(os.listdir(f"/proc/{pid}/fd")) == 5
    assert rt("kill", cid, "KILL").returncode == 0
    assert wait_exit(pid) == 137
    assert rt("delete", cid).returncode == 0


@pytest.mark.kvm
def test_hvt_guest_runs_as_an_unprivileged_user(rt: Runtime) -> None:
    """An hvt container as uid 65534: /dev/kvm is opened and the monitor's filter compiled
    while the init is still root (in `create`), so dropping privileges before boot is fine."""
    cid = rt.new_id()
    bundle = rt.bundle("hello.spt", ("a", "b"))
    (bundle / "rootfs" / "hello.hvt").write_bytes((rt.guests / "hvt" / "hello.hvt").read_bytes())
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["/hello.hvt", "a", "b"]
    config["process"]["user"] = {"uid": 65534, "gid": 65534}
    (bundle / "config.json").write_text(json.dumps(config))
    pid, out = rt.created(cid, bundle)
    assert rt("start", cid).returncode == 0
    assert wait_exit(pid) == 0, out.read_text()
    assert out.read_text() == "Hello, World\nCommand line is: 'a b'\n"
    assert rt("delete", cid).returncode == 0


# ---------------------------------------------------------------------------- memory


def guest_memory_end(pid: int) -> int:
    """End of the guest's memory: the contiguous mappings from 0x10000 up (the spt layout;
    the loaded segments split it by protection)."""
    end = None
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        if lo == 0x10000 or (end is not None and lo == end):
            end = hi
    assert end is not None, f"no guest mapping at 0x10000 in /proc/{pid}/maps"
    return end


@pytest.mark.parametrize(
    ("limit", "annotation", "expected_mb"),
    [
        (64 * MIB, None, 56),  # limit - 8 MiB host overhead
        (64 * MIB + 123456, None, 56),  # rounded down to whole MiB
        (1024 * MIB, None, 1016),  # no 512 MiB cap
        (64 * MIB, "40", 40),  # the annotation wins
        (None, None, 512),  # the monitor's default
    ],
)
def test_memory_limit_sets_guest_memory(
    rt: Runtime, limit: int | None, annotation: str | None, expected_mb: int
) -> None:
    cid = rt.new_id()
    bundle = rt.bundle(
        "time.spt",
        ("sleep=30",),
        memory_limit=limit,
        annotations={"org.runnc-py.mem": annotation} if annotation else None,
    )
    pid, out = rt.created(cid, bundle)
    assert rt("start", cid).returncode == 0
    wait_for(lambda: "sleeping" in out.read_text(), what="the guest to sleep")
    assert guest_memory_end(pid) == expected_mb * MIB
    if limit is not None:
        files = [d / "memory.limit_in_bytes" for d in cgroup_dirs(f"/runnc-py/{cid}")]
        files += [d / "memory.max" for d in cgroup_dirs(f"/runnc-py/{cid}")]
        values = [int(f.read_text()) for f in files if f.exists()]
        assert values == [limit - limit % 4096]
    assert rt("kill", cid, "KILL").returncode == 0
    assert wait_exit(pid) == 137
    assert rt("delete", cid).returncode == 0


# ------------------------------------------------------------------ pause, ps, list, update


def test_pause_resume_ps_list_update(rt: Runtime) -> None:
    cid = rt.new_id()
    pid, out = rt.created(cid, rt.bundle("time.spt", ("sleep=30",)))
    done = rt("pause", cid)
    assert done.returncode != 0 and "cannot pause a container that is created" in last_error(rt)
    assert rt("start", cid).returncode == 0
    wait_for(lambda: "sleeping" in out.read_text(), what="the guest to sleep")

    done = rt("ps", "--format", "json", cid)
    assert done.returncode == 0 and json.loads(done.stdout) == [pid]
    done = rt("ps", cid)
    assert done.returncode == 0 and "PID" in done.stdout.splitlines()[0]
    assert any(line.split()[1] == str(pid) for line in done.stdout.splitlines()[1:])

    listed = json.loads(rt("list", "--format", "json").stdout)
    assert [(e["id"], e["pid"], e["status"]) for e in listed] == [(cid, pid, "running")]
    assert rt("list", "-q").stdout.split() == [cid]
    assert cid in rt("list").stdout

    assert rt("pause", cid).returncode == 0
    assert rt.status(cid) == "paused"
    stat_state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    assert stat_state in ("D", "S", "T")  # frozen tasks sleep in the freezer
    assert rt("pause", cid).returncode != 0
    assert rt("resume", cid).returncode == 0
    assert rt.status(cid) == "running"
    assert rt("resume", cid).returncode != 0

    done = rt("update", "--resources", "-", cid, input=json.dumps({"pids": {"limit": 7}}))
    assert done.returncode == 0, done.stderr
    pids_files = [
        d / "pids.max" for d in cgroup_dirs(f"/runnc-py/{cid}") if (d / "pids.max").exists()
    ]
    assert [f.read_text().strip() for f in pids_files] == ["7"]
    done = rt("update", "--memory", str(200 * MIB), cid)
    assert done.returncode == 0, done.stderr

    # SIGKILL reaches a paused guest too (it is thawed for it).
    assert rt("pause", cid).returncode == 0
    assert rt("kill", cid, "9").returncode == 0
    assert wait_exit(pid) == 137
    assert rt("delete", cid).returncode == 0
    assert_gone(rt, cid)


def test_exec_into_container_is_refused(rt: Runtime) -> None:
    cid = rt.new_id()
    pid, _ = rt.created(cid, rt.bundle("hello.spt"))
    process = rt.tmp / "process.json"
    process.write_text(json.dumps({"args": ["/bin/sh"], "cwd": "/"}))
    done = rt("exec", "--process", str(process), "--detach", cid)
    assert done.returncode != 0
    assert "single address space" in done.stderr
    assert rt("delete", cid).returncode == 0
    assert_gone(rt, cid, pid)


# ---------------------------------------------------------------------------- many, crashes


def test_twenty_parallel_containers_leave_nothing(rt: Runtime) -> None:
    ids = [rt.new_id(f"p{i}") for i in range(20)]

    def one(cid: str) -> tuple[int, str, int]:
        pid, out = rt.created(cid, rt.bundle("hello.spt", (f"id={cid}",)))
        started = rt("start", cid).returncode
        return pid, str(out), started

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, ids))
    for cid, (pid, out, started) in zip(ids, results, strict=True):
        assert started == 0
        assert wait_exit(pid) == 0
        assert f"Command line is: 'id={cid}'" in Path(out).read_text()
    with ThreadPoolExecutor(max_workers=20) as pool:
        deleted = list(pool.map(lambda cid: rt("delete", cid).returncode, ids))
    assert deleted == [0] * 20
    for cid in ids:
        assert_gone(rt, cid)
    assert os.listdir(rt.root) == []
    assert not children()


def test_kill_9_during_create_then_delete_force(rt: Runtime) -> None:
    cid = rt.new_id()
    marker = rt.tmp / "hook.pid"
    # A prestart hook that parks create half-way: cgroup made, init forked and waiting.
    hook = {
        "path": "/bin/sh",
        "args": ["sh", "-c", f"echo $$ > {marker}.tmp; mv {marker}.tmp {marker}; exec sleep 60"],
    }
    bundle = rt.bundle("hello.spt", hooks={"prestart": [hook]})
    with open(rt.tmp / "create.out", "w") as out:
        create = subprocess.Popen(
            [*rt.base, "create", "--bundle", str(bundle), "--pid-file", str(rt.tmp / "p"), cid],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(marker.exists, timeout=20, what="the prestart hook")
        assert rt.status(cid) == "creating"  # `state` answers while create holds the lock
        state = json.loads((rt.root / cid / "state.json").read_text())
        init_pid = state["pid"]
        assert init_pid > 0 and Path(f"/proc/{init_pid}").exists()
        assert any(d.exists() for d in cgroup_dirs(f"/runnc-py/{cid}"))
        create.kill()
        create.wait(10)
    finally:
        hook_pid = int(marker.read_text()) if marker.exists() else None
        if hook_pid:
            os.kill(hook_pid, signal.SIGKILL)
    assert rt.status(cid) == "stopped"  # its creator is gone
    done = rt("delete", "--force", cid)
    assert done.returncode == 0, done.stderr
    assert_gone(rt, cid, init_pid)
    wait_for(lambda: not children(), what="orphans to be reaped")
    for pid in (init_pid, hook_pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)  # re-parented to us: reap, no zombie left
    assert not (rt.tmp / "p").exists()


def test_concurrent_verbs_are_serialized(rt: Runtime) -> None:
    """Many starts and deletes at once on one container: exactly one start wins."""
    cid = rt.new_id()
    pid, _ = rt.created(cid, rt.bundle("time.spt", ("sleep=30",)))
    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = list(pool.map(lambda _: rt("start", cid).returncode, range(6)))
    assert sorted(codes) == [0, 1, 1, 1, 1, 1]
    assert rt("kill", cid, "KILL").returncode == 0
    assert wait_exit(pid) == 137
    with ThreadPoolExecutor(max_workers=4) as pool:
        codes = list(pool.map(lambda _: rt("delete", cid).returncode, range(4)))
    assert sorted(codes) == [0, 1, 1, 1]
    assert_gone(rt, cid)


# ---------------------------------------------------------------------------- delegate, misc


def test_delegate_runs_plain_bundles_with_runc(rt: Runtime, tmp_path: Path) -> None:
    runc = "/usr/sbin/runc"
    if not os.access(runc, os.X_OK):
        pytest.skip("runc is not installed (Debian package runc)")
    static = tmp_path / "static"
    src = tmp_path / "exit5.c"
    src.write_text("int main(void) { return 5; }\n")
    built = subprocess.run(
        ["gcc", "-static", "-O2", "-o", str(static), str(src)], capture_output=True
    )
    if built.returncode != 0:
        pytest.skip(f"cannot link a static binary: {built.stderr.decode()[-200:]}")
    cid = rt.new_id()
    bundle = rt.bundle("hello.spt", namespaces=[{"type": "mount"}, {"type": "pid"}])
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["/exit5"]
    del config["hostname"]  # runc refuses a hostname without a uts namespace
    config["mounts"] = [{"destination": "/proc", "type": "proc", "source": "proc"}]
    (bundle / "rootfs" / "exit5").write_bytes(static.read_bytes())
    (bundle / "rootfs" / "exit5").chmod(0o755)
    (bundle / "config.json").write_text(json.dumps(config))

    base, rt.base = rt.base, [*rt.base, "--delegate", runc]
    try:
        pid, _ = rt.created(cid, bundle)
        assert (rt.root / ".delegate" / cid).is_dir()  # runc's own state, under our root
        assert not (rt.root / cid).exists()
        assert rt.status(cid) == "created"  # answered by runc
        assert rt("start", cid).returncode == 0
        assert wait_exit(pid) == 5
        assert rt.status(cid) == "stopped"
        assert rt("delete", cid).returncode == 0
        assert not (rt.root / ".delegate" / cid).exists()
    finally:
        rt.base = base
        subprocess.run(
            [runc, "--root", str(rt.root / ".delegate"), "delete", "--force", cid],
            capture_output=True,
        )


def test_features_and_spec(rt: Runtime) -> None:
    done = rt("features")
    assert done.returncode == 0
    features = json.loads(done.stdout)
    assert features["ociVersionMin"] <= features["ociVersionMax"]
    assert "prestart" in features["hooks"] and "poststop" in features["hooks"]

    bundle = rt.tmp / "spec-bundle"
    (bundle / "rootfs").mkdir(parents=True)
    assert rt("spec", "--bundle", str(bundle), "--unikernel", "/hello.spt").returncode == 0
    assert rt("spec", "--bundle", str(bundle)).returncode != 0  # never overwrites
    (bundle / "rootfs" / "hello.spt").write_bytes((rt.guests / "hello.spt").read_bytes())
    cid = rt.new_id()
    pid, out = rt.created(cid, bundle)
    assert rt("start", cid).returncode == 0
    assert wait_exit(pid) == 0
    assert "Hello, World" in out.read_text()
    assert rt("delete", cid).returncode == 0
    assert stat.S_ISDIR(os.stat(rt.root).st_mode)
