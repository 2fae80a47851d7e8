"""`runnc-py audit` on live guests: the filters read from the kernel mean exactly the policy
for the guest's fds, a widened policy is drift (exit 3), and the guest carries on unharmed.

To audit a guest at a known point (the blk and many guests finish in milliseconds), its
stdout is a pipe we filled beforehand: the guest's first console write blocks, with its
filter long installed. After the audit we drain the pipe and the guest must finish with its
normal output and exit status.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunCli, runnc_binary

pytestmark = pytest.mark.root

F_SETPIPE_SZ = 1031
NR_WRITE = "1"


def ns_prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


class HeldGuest:
    """A guest started with a full pipe as stdout: it stops in its first console write."""

    def __init__(self, argv: list[str], netns: str | None = None) -> None:
        self.read_end, write_end = os.pipe2(os.O_CLOEXEC)
        fcntl.fcntl(write_end, F_SETPIPE_SZ, 4096)
        os.set_blocking(write_end, False)
        self.filler = 0
        try:
            while True:
                self.filler += os.write(write_end, b"\0" * 4096)
        except BlockingIOError:
            pass
        os.set_blocking(write_end, True)
        self.proc = subprocess.Popen([*ns_prefix(netns), *argv], stdout=write_end,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        os.close(write_end)
        self.pid = self.proc.pid  # `ip netns exec` execs its command: the same pid
        self.wait_in_write()

    def wait_in_write(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                call = Path(f"/proc/{self.pid}/syscall").read_text().split()
                status = Path(f"/proc/{self.pid}/status").read_text()
            except OSError:
                call, status = [], ""
            if call[:2] == [NR_WRITE, "0x1"] and "Seccomp:\t2" in status:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        err = self.proc.stderr.read().decode() if self.proc.poll() is not None else ""  # type: ignore[union-attr]
        raise AssertionError(f"guest never blocked in its console write: {err}")

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        """Drain stdout; the guest's exit status and its own output."""
        chunks = []
        while True:
            data = os.read(self.read_end, 65536)
            if not data:
                break
            chunks.append(data)
        os.close(self.read_end)
        status = self.proc.wait(timeout)
        return status, b"".join(chunks)[self.filler:].decode(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def held() -> Iterator[list[HeldGuest]]:
    started: list[HeldGuest] = []
    yield started
    for guest in started:
        guest.kill()
        with contextlib.suppress(OSError):
            os.close(guest.read_end)


def audit_json(runnc: RunCli, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    done = runnc("audit", "--json", *args)
    assert done.returncode in (0, 3), done.stderr
    return done.returncode, json.loads(done.stdout)


def allowed(doc: dict) -> list[str]:  # type: ignore[type-arg]
    return sorted(
        r["syscall"] + (" if " + " && ".join(r["conditions"]) if r["conditions"] else "")
        for r in doc["sections"][0]["rules"] if r["action"] == "allow"
    )


def fds_of(doc: dict, kind: str) -> list[int]:  # type: ignore[type-arg]
    return [f["fd"] for f in doc["process"]["fds"] if f["kind"] == kind]


def disk(tmp: Path, name: str = "disk.img", size: int = 1 << 20) -> Path:
    path = tmp / name
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


ABIS = ["", "abi1/"]


@pytest.mark.parametrize("abi", ABIS)
def test_guest_without_devices(guests: Path, runnc: RunCli, held: list[HeldGuest],
                               abi: str) -> None:
    guest = HeldGuest([*runnc_binary(), "exec", "--mem", "8", str(guests / f"{abi}time.spt")])
    held.append(guest)
    status, doc = audit_json(runnc, str(guest.pid))
    epoll, timer = fds_of(doc, "epoll")[0], fds_of(doc, "timerfd")[0]
    assert allowed(doc) == sorted([
        "write if fd == 1", "arch_prctl if code == 4098", "clock_gettime if clockid in {0, 1}",
        "exit_group", f"epoll_pwait if epfd == {epoll}", f"timerfd_settime if fd == {timer}",
    ])
    assert doc["sections"][0]["default"] == "kill_process"
    assert doc["other_arches"] == "kill_process" and doc["sections"][0]["x32"] == "kill_process"
    assert status == 0 and doc["verdict"]["match"] and doc["verdict"]["differences"] == []
    assert doc["process"]["status"]["NoNewPrivs"] == "1" and doc["process"]["file_backed"] == []
    assert doc["pause_ms"] is not None
    code, out = guest.finish()
    assert code == 0 and "time: ok" in out, out


@pytest.mark.parametrize("abi", ABIS)
def test_guest_with_a_block_device(guests: Path, runnc: RunCli, held: list[HeldGuest],
                                   tmp_path: Path, abi: str) -> None:
    image = disk(tmp_path)
    guest = HeldGuest([*runnc_binary(), "exec", "--mem", "8", "--block", f"storage={image}",
                       str(guests / f"{abi}blk.spt")])
    held.append(guest)
    status, doc = audit_json(runnc, str(guest.pid))
    blk = fds_of(doc, "file")
    blk = [fd for fd in blk if fd > 2]
    assert len(blk) == 1
    rules = allowed(doc)
    last = (1 << 20) - 512
    assert f"pread64 if fd == {blk[0]} && count == 512 && offset <= {last}" in rules
    assert f"pwrite64 if fd == {blk[0]} && count == 512 && offset <= {last}" in rules
    assert len(rules) == 8, rules
    assert status == 0 and doc["verdict"]["match"]
    code, out = guest.finish()
    assert code == 0 and "blk: ok" in out, out


@pytest.mark.parametrize("abi", ABIS)
def test_net_guest_keeps_answering_pings(guests: Path, runnc: RunCli, netns: str,
                                         abi: str) -> None:
    def ns(*cmd: str) -> None:
        subprocess.run(["ip", "netns", "exec", netns, *cmd], check=True)

    ns("ip", "tuntap", "add", "tap0", "mode", "tap")
    ns("ip", "addr", "add", "10.78.0.1/24", "dev", "tap0")
    ns("ip", "link", "set", "tap0", "up")
    proc = subprocess.Popen(
        [*ns_prefix(netns), *runnc_binary(), "exec", "--mem", "8", "--net", "service0=tap0",
         str(guests / f"{abi}net.spt"), "--ipv4=10.78.0.2/24", "pings=3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        seen = b""
        while b"net: ready" not in seen:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            seen += line
        status, doc = audit_json(runnc, str(proc.pid))
        tap = fds_of(doc, "tap")
        assert len(tap) == 1 and doc["process"]["fds"][-1].get("iface") in ("tap0", None)
        rules = allowed(doc)
        assert f"read if fd == {tap[0]}" in rules and f"write if fd in {{1, {tap[0]}}}" in rules
        assert status == 0 and doc["verdict"]["match"], doc["verdict"]
        for _ in range(3):  # audited several times while it runs: still fine
            assert audit_json(runnc, str(proc.pid))[0] == 0
        ping = subprocess.run(
            [*ns_prefix(netns), "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.78.0.2"],
            capture_output=True, text=True, timeout=20)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_guest_with_net_and_block_devices(guests: Path, runnc: RunCli, netns: str,
                                          tmp_path: Path, held: list[HeldGuest]) -> None:
    """The `many` guest: 31 taps and 32 block images, every one pinned by its own rules."""
    from runnc_py.unikernel.elf import load_unikernel
    from runnc_py.unikernel.manifest import DeviceType

    args: list[str] = []
    for i, d in enumerate(load_unikernel(guests / "many.spt").manifest.devices()):
        if d.type == DeviceType.BLOCK_BASIC:
            args.append(f"--block:{d.name}={disk(tmp_path, f'{d.name}.img', 4096)}")
        else:
            subprocess.run(["ip", "netns", "exec", netns, "ip", "tuntap", "add", f"tapa{i}",
                            "mode", "tap"], check=True)
            args.append(f"--net:{d.name}=tapa{i}")
    guest = HeldGuest([*runnc_binary(), "exec", "--mem=8", *args, str(guests / "many.spt")],
                      netns=netns)
    held.append(guest)
    status, doc = audit_json(runnc, str(guest.pid))
    taps, blocks = fds_of(doc, "tap"), [f for f in fds_of(doc, "file") if f > 2]
    assert len(taps) == 31 and len(blocks) == 32
    rules = allowed(doc)
    # 32 rules of the same shape read back as one, over the fd range the images got.
    assert blocks == list(range(blocks[0], blocks[0] + 32)), blocks
    span = f"[{blocks[0]}, {blocks[-1]}]"
    assert f"pread64 if fd in {span} && count == 512 && offset <= 3584" in rules
    assert f"pwrite64 if fd in {span} && count == 512 && offset <= 3584" in rules
    assert f"read if fd in [{min(taps)}, {max(taps)}]" in rules
    assert status == 0 and doc["verdict"]["match"], doc["verdict"]["differences"][:3]
    code, out = guest.finish()
    assert code == 0 and "63" in out, out


def test_widened_policy_is_drift(guests: Path, runnc: RunCli, held: list[HeldGuest],
                                 tmp_path: Path) -> None:
    from runnc_py.sandbox.locate import find_policy

    widened = tmp_path / "widened.toml"
    text = Path(find_policy("spt")).read_text()
    widened.write_text(text.replace(
        '[[rules]]\nsyscall = "exit_group"',
        '[[rules]]\nsyscall = "getpid"\nwhy = "an extra rule the audit must notice"\n\n'
        '[[rules]]\nsyscall = "exit_group"', 1))
    assert "getpid" in widened.read_text()
    guest = HeldGuest([*runnc_binary(), "exec", "--mem", "8", "--policy", str(widened),
                       str(guests / "time.spt")])
    held.append(guest)
    done = runnc("audit", str(guest.pid))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "verdict: DRIFT" in done.stdout
    assert "getpid: live allow, expected kill_process" in done.stdout
    status, doc = audit_json(runnc, str(guest.pid))
    assert status == 3
    assert [(d["syscall"], d["live"], d["expected"]) for d in doc["verdict"]["differences"]] \
        == [("getpid", "allow", "kill_process")]
    code, out = guest.finish()
    assert code == 0 and "time: ok" in out


def test_sleeping_guest_is_not_disturbed(guests: Path, runnc: RunCli) -> None:
    """Interrupted in epoll_pwait, the guest resumes its sleep and exits 0 on time."""
    proc = subprocess.Popen(
        [*runnc_binary(), "exec", "--mem", "8", str(guests / "time.spt"), "sleep=1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and b"sleeping" in proc.stdout.readline()
        for _ in range(5):
            assert runnc("audit", str(proc.pid)).returncode == 0
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.kvm
def test_hvt_monitor_filter(guests: Path, runnc: RunCli, held: list[HeldGuest]) -> None:
    """The hvt monitor's own filter, read while it relays the guest's first console line."""
    guest = HeldGuest([*runnc_binary(), "exec", "--monitor=hvt", "--mem", "8",
                       str(guests / "hvt" / "time.hvt")])
    held.append(guest)
    status, doc = audit_json(runnc, str(guest.pid))
    vcpu = fds_of(doc, "kvm-vcpu")
    assert len(vcpu) == 1
    assert f"ioctl if fd == {vcpu[0]} && request == 44672" in allowed(doc)
    assert doc["verdict"]["expected"].startswith("policy hvt")
    assert status == 0 and doc["verdict"]["match"], doc["verdict"]
    code, out = guest.finish()
    assert code == 0 and "time: ok" in out, out


def test_container_by_id_and_all(guests: Path, tmp_path: Path) -> None:
    from tests.integration.test_lifecycle import Runtime, wait_for

    rt = Runtime(tmp_path, guests)
    try:
        cid = rt.new_id("audit")
        pid, out = rt.created(cid, rt.bundle("time.spt", ("sleep=30",)))
        assert rt("start", cid).returncode == 0
        deadline = time.monotonic() + 10
        while "sleeping" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        done = rt("audit", "--json", cid)
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        assert doc["subject"]["container"] == cid and doc["subject"]["pid"] == pid
        assert doc["verdict"]["match"]
        every = rt("audit", "--all")
        assert every.returncode == 0, every.stdout + every.stderr
        assert cid in every.stdout and "match" in every.stdout
        waiting = rt.new_id("audit-created")
        rt.created(waiting, rt.bundle("time.spt", ("sleep=30",)))
        early = rt("audit", waiting)
        assert early.returncode == 1 and "is created" in early.stderr, early.stderr
        every = rt("audit", "--all")  # one row each; the created one is an error row
        assert every.returncode == 1 and waiting in every.stdout and "error" in every.stdout
        assert rt("delete", "--force", waiting).returncode == 0
        assert rt("kill", cid, "KILL").returncode == 0
        wait_for(lambda: rt.status(cid) == "stopped", what="the container to stop")
        gone = rt("audit", cid)
        assert gone.returncode == 1 and "no running process" in gone.stderr
        assert len(gone.stderr.strip().splitlines()) == 1
    finally:
        rt.cleanup()
        shutil.rmtree(tmp_path / "root", ignore_errors=True)
