"""The container's init and the launcher against a hostile bundle and a hostile caller.

Through the real CLI, like tests/integration/test_lifecycle.py (whose Runtime and fixtures
these tests share): rootfs paths opened once (a symlink swapped in by a hook changes nothing),
only `--preserve-fds` fds reach the guest, `exec` guests hold no capabilities, and a created
container waits for `start` with the interpreter already gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import runnc_binary
from tests.integration import test_lifecycle
from tests.integration.test_lifecycle import Runtime, wait_exit

pytestmark = pytest.mark.root

# test_lifecycle's fixtures: a Runtime that cleans up after itself, and the subreaper that
# makes each container's init our child.
rt = test_lifecycle.rt
subreaper = test_lifecycle.subreaper

MIB = 1 << 20


# ---------------------------------------------------------------------------- rootfs paths


def test_block_path_swapped_for_a_symlink_after_create_checked_it(rt: Runtime) -> None:
    """A createRuntime hook replaces rootfs/data by a symlink to a host directory between the
    check and the init's open: the guest still writes the rootfs's image, never the host's."""
    host_dir = rt.tmp / "host-secrets"
    host_dir.mkdir()
    host_disk = host_dir / "disk.img"
    host_disk.write_bytes(bytes(MIB))
    cid = rt.new_id("swap")
    bundle = rt.bundle(
        "blk.spt",
        annotations={"org.runnc-py.block.storage": "/data/disk.img"},
    )
    rootfs = bundle / "rootfs"
    (rootfs / "data").mkdir()
    (rootfs / "data" / "disk.img").write_bytes(bytes(MIB))
    swap = f"mv {rootfs}/data {rootfs}/data.real && ln -s {host_dir} {rootfs}/data"
    config = json.loads((bundle / "config.json").read_text())
    config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", swap]}]}
    (bundle / "config.json").write_text(json.dumps(config))

    pid, out = rt.created(cid, bundle)
    assert (rootfs / "data").is_symlink()  # the hook did swap it
    assert rt("start", cid).returncode == 0
    assert wait_exit(pid) == 0, out.read_text()
    assert "blk: ok" in out.read_text()
    assert host_disk.read_bytes() == bytes(MIB), "the guest wrote into the host's file"
    assert (rootfs / "data.real" / "disk.img").read_bytes() != bytes(MIB)
    assert rt("delete", cid).returncode == 0


def test_unikernel_path_swapped_for_a_symlink_after_create_checked_it(rt: Runtime) -> None:
    """Same for process.args[0]: the init boots the file create checked."""
    host_dir = rt.tmp / "host-bin"
    host_dir.mkdir()
    (host_dir / "hello.spt").write_bytes((rt.guests / "fault.spt").read_bytes())
    cid = rt.new_id("swapk")
    bundle = rt.bundle("hello.spt", ("x",), name=f"bundle-{cid}")
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir()
    (rootfs / "hello.spt").rename(rootfs / "bin" / "hello.spt")
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["/bin/hello.spt", "x"]
    swap = f"mv {rootfs}/bin {rootfs}/bin.real && ln -s {host_dir} {rootfs}/bin"
    config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", swap]}]}
    (bundle / "config.json").write_text(json.dumps(config))

    pid, out = rt.created(cid, bundle)
    assert rt("start", cid).returncode == 0
    assert wait_exit(pid) == 0, out.read_text()
    assert "Hello, World" in out.read_text()
    assert rt("delete", cid).returncode == 0


def test_block_image_must_be_a_regular_file_inside_the_rootfs(rt: Runtime) -> None:
    cid = rt.new_id("devnode")
    bundle = rt.bundle("blk.spt", annotations={"org.runnc-py.block.storage": "/dev/null"})
    (bundle / "rootfs" / "dev").mkdir()
    os.mknod(bundle / "rootfs" / "dev" / "null", 0o666 | 0o020000, os.makedev(1, 3))
    done, out = rt.create(cid, bundle)
    assert done.returncode != 0
    assert "is not a regular file" in out.read_text()
    assert not (rt.root / cid).exists()


# ---------------------------------------------------------------------------- exec


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _wait_for_line(proc: subprocess.Popen[bytes], needle: bytes) -> None:
    assert proc.stdout is not None
    seen = b""
    while needle not in seen:
        chunk = proc.stdout.readline()
        assert chunk, f"guest ended before printing {needle!r}: {seen!r}"
        seen += chunk


@pytest.mark.parametrize("target", ["spt", "hvt"])
def test_exec_guest_holds_no_capabilities_and_not_the_callers_cwd(
    guests: Path, tmp_path: Path, target: str
) -> None:
    """`runnc-py exec` as root: the running guest (or hvt monitor) has every capability set
    empty, NO_NEW_PRIVS, and `/` as its working directory, not the caller's."""
    if target == "hvt" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("needs a usable /dev/kvm")
    image, arg, needle = {
        "spt": (guests / "time.spt", "sleep=30", b"sleeping"),
        "hvt": (guests / "hvt" / "time.hvt", "ms=30000", b"waiting"),
    }[target]
    proc = subprocess.Popen(
        [*runnc_binary(), "exec", "--mem", "8", str(image), arg],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        _wait_for_line(proc, needle)
        status = _status(proc.pid)
        caps = {key: status[key] for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
        assert caps == dict.fromkeys(caps, "0000000000000000")
        assert status["NoNewPrivs"] == "1"
        assert os.readlink(f"/proc/{proc.pid}/cwd") == "/"
    finally:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------- inherited fds

# A hook that records where every fd of the container's init points (pid from its state).
FD_HOOK = (
    "import json, os, sys\n"
    "def targets(d):\n"
    "    out = []\n"
    "    for n in os.listdir(d):\n"
    "        try:\n"
    "            out.append(os.readlink(f'{d}/{n}'))\n"
    "        except FileNotFoundError:\n"
    "            pass\n"
    "    return out\n"
    "pid = json.load(sys.stdin)['pid']\n"
    "seen = targets(f'/proc/{pid}/fd') + targets('/proc/self/fd')\n"
    "open(sys.argv[1], 'w').write('\\n'.join(seen))\n"
)


def _fd_targets(pid: int) -> list[str]:
    targets = []
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{name}"))
        except FileNotFoundError:
            continue
    return targets


def _create_with_fd(
    rt: Runtime, cid: str, bundle: Path, fd_number: int, target: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    """`create` with TARGET open (not close-on-exec) as FD_NUMBER, as a careless engine."""
    create = [*rt.base, "create", "--bundle", str(bundle), *extra, cid]
    with open(rt.tmp / f"{cid}.out", "w") as out:
        return subprocess.run(
            ["/bin/sh", "-c", f'exec {fd_number}<>"$0"; exec "$@"', str(target), *create],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=30,
            text=True,
        )


def test_inherited_fds_reach_neither_hooks_nor_the_guest(rt: Runtime) -> None:
    secret = rt.tmp / "engine-secret"
    secret.write_text("engine's\n")
    seen = rt.tmp / "seen-by-hook"
    cid = rt.new_id("fds")
    bundle = rt.bundle(
        "time.spt",
        ("sleep=30",),
        hooks={
            kind: [{"path": sys.executable, "args": ["python3", "-c", FD_HOOK, f"{seen}.{kind}"]}]
            for kind in ("createRuntime", "createContainer")
        },
    )
    pid_file = rt.tmp / f"{cid}.pid"
    done = _create_with_fd(rt, cid, bundle, 9, secret, "--pid-file", str(pid_file))
    assert done.returncode == 0, (rt.tmp / f"{cid}.out").read_text()
    pid = int(pid_file.read_text())
    for kind in ("createRuntime", "createContainer"):
        assert str(secret) not in Path(f"{seen}.{kind}").read_text().splitlines(), kind
    assert str(secret) not in _fd_targets(pid)  # the created init
    assert rt("start", cid).returncode == 0
    test_lifecycle.wait_for(
        lambda: "sleeping" in (rt.tmp / f"{cid}.out").read_text(), what="the guest to sleep"
    )
    assert str(secret) not in _fd_targets(pid)  # the guest
    assert rt("kill", cid, "KILL").returncode == 0
    assert wait_exit(pid) == 137
    assert rt("delete", cid).returncode == 0


def test_only_preserved_fds_may_be_handed_to_the_guest(rt: Runtime) -> None:
    handed = rt.tmp / "handed"
    os.mkfifo(handed)  # the guest's epoll set takes it, as it would a tap
    bundle = rt.bundle("net.spt", annotations={"org.runnc-py.net.service0": "@5"})

    refused = rt.new_id("nopreserve")
    done = _create_with_fd(rt, refused, bundle, 5, handed)
    assert done.returncode != 0
    message = test_lifecycle.last_error(rt)
    assert "annotation org.runnc-py.net.service0: '@5' is not an fd passed to the container" in (
        message
    )
    assert "no --preserve-fds was given" in message
    assert not (rt.root / refused).exists()

    too_few = rt.new_id("fewpreserved")
    done = _create_with_fd(rt, too_few, bundle, 5, handed, "--preserve-fds", "2")
    assert done.returncode != 0
    assert "--preserve-fds 2 gives fds 3..4" in test_lifecycle.last_error(rt)

    accepted = rt.new_id("preserved")
    pid_file = rt.tmp / "preserved.pid"
    done = _create_with_fd(
        rt, accepted, bundle, 5, handed, "--preserve-fds", "3", "--pid-file", str(pid_file)
    )
    assert done.returncode == 0, (rt.tmp / f"{accepted}.out").read_text()
    pid = int(pid_file.read_text())
    assert os.readlink(f"/proc/{pid}/fd/5") == str(handed)  # kept for the guest
    assert rt("delete", "--force", accepted).returncode == 0
    assert wait_exit(pid) == 137


# ---------------------------------------------------------------------------- waiting for start


def test_created_container_waits_in_the_launcher_with_no_interpreter(rt: Runtime) -> None:
    """Between create and start the init holds guest memory only: no host mappings, at most
    1 MB resident, not yet under its filter; `start` releases it."""
    cid = rt.new_id("small")
    pid, out = rt.created(cid, rt.bundle("hello.spt", ("a",)))
    status = _status(pid)
    assert int(status["VmRSS"].split()[0]) <= 1024, status["VmRSS"]
    assert status["Seccomp"] == "0"  # the filter comes after start's byte
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    assert [line for line in maps if len(line.split()) >= 6 and "[vsyscall]" not in line] == []
    assert rt.status(cid) == "created"
    assert rt("start", cid).returncode == 0
    assert wait_exit(pid) == 0, out.read_text()
    assert out.read_text() == "Hello, World\nCommand line is: 'a'\n"
    assert rt("delete", cid).returncode == 0


def test_a_writer_that_leaves_without_writing_does_not_start_the_guest(rt: Runtime) -> None:
    cid = rt.new_id("emptywriter")
    pid, out = rt.created(cid, rt.bundle("hello.spt"))
    fd = os.open(rt.root / cid / "exec.fifo", os.O_WRONLY | os.O_NONBLOCK)
    os.close(fd)
    assert rt.status(cid) == "created"
    assert "Hello" not in out.read_text()
    assert rt("start", cid).returncode == 0
    assert wait_exit(pid) == 0
    assert "Hello, World" in out.read_text()
    assert rt("delete", cid).returncode == 0


def test_start_of_a_container_whose_init_was_killed(rt: Runtime) -> None:
    cid = rt.new_id("killedinit")
    pid, _ = rt.created(cid, rt.bundle("hello.spt"))
    os.kill(pid, signal.SIGKILL)
    assert wait_exit(pid) == 137
    done = rt("start", cid)
    assert done.returncode != 0
    assert test_lifecycle.last_error(rt) == (
        f"{cid}: cannot start a container that has stopped: its init (pid {pid}) was killed or "
        "died before start"
    )
    assert rt("delete", cid).returncode == 0


def test_failures_before_the_wait_fail_create(rt: Runtime) -> None:
    """Privileges are dropped and the guest mapped in `create`: what fails there is create's
    one-line error, with nothing left behind (not a guest that dies at start)."""
    nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
    cid = rt.new_id("badlimit")
    bundle = rt.bundle("hello.spt")
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": nr_open + 1, "hard": nr_open + 1}
    ]
    (bundle / "config.json").write_text(json.dumps(config))
    done, _ = rt.create(cid, bundle)
    assert done.returncode != 0
    assert test_lifecycle.last_error(rt).startswith(
        f"process.rlimits: cannot set RLIMIT_NOFILE to {nr_open + 1}:{nr_open + 1}: "
    )
    test_lifecycle.assert_gone(rt, cid)
    assert not test_lifecycle.children()  # the init is gone, not waiting
