"""The compiled spt filter, loaded into a real kernel: allowed calls work, the rest die by SIGSYS.

Real fds stand in for a guest's (a socketpair as the "tap", a sparse 8 GiB file as the block
device, an epoll set and a timerfd) and the spt policy is compiled for exactly those fds. Each
case forks a child that inherits them, installs the program with prctl(PR_SET_NO_NEW_PRIVS) +
seccomp(SECCOMP_SET_MODE_FILTER), performs one syscall through ctypes and leaves with os._exit
(= exit_group, which the policy allows). Everything the call needs is built before the filter
goes on: after it, one stray syscall from the interpreter (an mmap, a write to stderr) is fatal.
"""

from __future__ import annotations

import ctypes
import gc
import os
import select
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runnc_py.sandbox.bpf import compile_bpf
from runnc_py.sandbox.libseccomp import syscall_number
from runnc_py.sandbox.policy import CONSTANTS, BootFacts, DeviceFacts, load_policy, resolve

PR_SET_NO_NEW_PRIVS = 38
PR_SET_DUMPABLE = 4
SECCOMP_SET_MODE_FILTER = 1
ARCH_GET_FS = CONSTANTS["ARCH_GET_FS"]
ARCH_SET_FS = CONSTANTS["ARCH_SET_FS"]
CLOCK_BOOTTIME = CONSTANTS["CLOCK_BOOTTIME"]
CAP = 8 << 30  # past 4 GiB, so the offset bound needs the high word of the comparison
BS = 512
LAST = CAP - BS

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.prctl.restype = ctypes.c_int


def _seccomp_supported() -> bool:
    status = Path("/proc/self/status").read_text()
    return "Seccomp_filters:" in status or "Seccomp:" in status


pytestmark = [
    pytest.mark.skipif(os.uname().machine != "x86_64", reason="spt policy targets x86_64"),
    pytest.mark.skipif(not _seccomp_supported(), reason="kernel without seccomp filters"),
]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def nr(name: str) -> ctypes.c_long:
    number = syscall_number(name)
    assert number is not None
    return ctypes.c_long(number)


def L(value: int) -> ctypes.c_long:
    """A 64-bit argument: ctypes would pass a bare Python int as a 32-bit int, leaving the upper
    half of the register undefined."""
    return ctypes.c_long(value - (1 << 64) if value >= 1 << 63 else value)


class Guest:
    """Real fds standing in for an spt guest's: a socketpair "tap", block file, epoll, timer."""

    def __init__(self, tmp: Path) -> None:
        self.tap, self.peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.tap.setblocking(False)  # as solo5-spt opens taps: a read never hangs the test
        disk = tmp / "disk.img"
        with disk.open("wb") as fh:
            fh.truncate(CAP)  # sparse: nothing near 8 GiB is written
        self.blk = os.open(disk, os.O_RDWR | os.O_CLOEXEC)
        self.epoll = select.epoll()
        self.timerfd = libc.timerfd_create(1, 0)  # CLOCK_MONOTONIC
        assert self.timerfd >= 0
        self.net_dev = DeviceFacts(kind="net", name="service0", hostfd=self.tap.fileno())
        self.blk_dev = DeviceFacts(
            kind="block", name="storage", hostfd=self.blk, capacity=CAP, block_size=BS
        )

    def program(self, cache: Path) -> bytes:
        policy = load_policy("spt")
        facts = BootFacts(
            epollfd=self.epoll.fileno(),
            timerfd=self.timerfd,
            devices=(self.net_dev, self.blk_dev),
        )
        return compile_bpf(resolve(policy, facts), policy.default_action, directory=cache)

    def close(self) -> None:
        self.tap.close()
        self.peer.close()
        os.close(self.blk)
        self.epoll.close()
        os.close(self.timerfd)


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    g = Guest(tmp_path_factory.mktemp("guest"))
    yield g
    g.close()


@pytest.fixture(scope="module")
def program(guest: Guest, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return guest.program(tmp_path_factory.mktemp("bpf-cache"))


def run_filtered(
    program: bytes,
    call: Callable[[], int],
    setup: Callable[[], None] | None = None,
    timeout: float = 10.0,
) -> int:
    """Fork; the child runs SETUP, installs PROGRAM, then CALL(); exit 0 if it returned >= 0."""
    filt = ctypes.create_string_buffer(program, len(program))
    prog = SockFprog(len(program) // 8, ctypes.addressof(filt))
    seccomp = nr("seccomp")
    args = [L(v) for v in (PR_SET_DUMPABLE, 0, PR_SET_NO_NEW_PRIVS, 1, SECCOMP_SET_MODE_FILTER)]
    dumpable, zero, nnp, one, set_filter = args
    devnull = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        status = 3
        try:
            os.dup2(devnull, 1)  # write(1) is allowed; keep it out of pytest's output
            libc.prctl(dumpable, zero, zero, zero, zero)  # no core file from the SIGSYS kill
            gc.disable()  # no collection (and finalizers) while the filter is on
            if setup is not None:
                setup()
            if libc.prctl(nnp, one, zero, zero, zero) != 0:
                os._exit(4)
            if libc.syscall(seccomp, set_filter, zero, ctypes.byref(prog)) != 0:
                os._exit(5)
            status = 0 if call() >= 0 else 1
        finally:
            os._exit(status)
    os.close(devnull)
    deadline = time.monotonic() + timeout
    while True:
        done, wstatus = os.waitpid(pid, os.WNOHANG)
        if done:
            return wstatus
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the filtered child hung")
        time.sleep(0.001)


def killed_by_sigsys(wstatus: int) -> bool:
    return os.WIFSIGNALED(wstatus) and os.WTERMSIG(wstatus) == signal.SIGSYS


def calls(g: Guest) -> dict[str, Callable[[], int]]:
    """Case name -> the syscall. Buffers, numbers and 64-bit arguments are all made up front."""
    sc = libc.syscall
    buf = ctypes.create_string_buffer(2 * BS)
    ts = ctypes.create_string_buffer(16)
    its = ctypes.create_string_buffer(32)  # zeroed itimerspec: disarm
    events = ctypes.create_string_buffer(12 * 4)
    fs_base = ctypes.c_ulong()
    assert sc(nr("arch_prctl"), L(ARCH_GET_FS), ctypes.byref(fs_base)) == 0
    names = (
        "write",
        "read",
        "pread64",
        "pwrite64",
        "clock_gettime",
        "epoll_pwait",
        "timerfd_settime",
        "arch_prctl",
        "getpid",
    )
    n = {k: nr(k) for k in names}
    a = {
        k: L(v)
        for k, v in {
            "0": 0,
            "1": 1,
            "2": 2,
            "5": 5,
            "8": 8,
            "BS": BS,
            "2BS": 2 * BS,
            "LAST": LAST,
            "LAST+1": LAST + 1,
            "CAP": CAP,
            "tap": g.tap.fileno(),
            "blk": g.blk,
            "ep": g.epoll.fileno(),
            "tfd": g.timerfd,
            "MONO": 1,
            "REAL": 0,
            "BOOT": CLOCK_BOOTTIME,
            "SETFS": ARCH_SET_FS,
            "GETFS": ARCH_GET_FS,
            "FS": fs_base.value,
        }.items()
    }
    return {
        "write stdout": lambda: sc(n["write"], a["1"], buf, a["1"]),
        "write stderr": lambda: sc(n["write"], a["2"], buf, a["1"]),
        "write tap": lambda: sc(n["write"], a["tap"], buf, a["5"]),
        "read tap": lambda: sc(n["read"], a["tap"], buf, a["BS"]),
        "read stdin": lambda: sc(n["read"], a["0"], buf, a["1"]),
        "read block fd": lambda: sc(n["read"], a["blk"], buf, a["BS"]),
        "clock monotonic": lambda: sc(n["clock_gettime"], a["MONO"], ts),
        "clock realtime": lambda: sc(n["clock_gettime"], a["REAL"], ts),
        "clock boottime": lambda: sc(n["clock_gettime"], a["BOOT"], ts),
        "epoll_pwait epollfd": lambda: sc(
            n["epoll_pwait"], a["ep"], events, a["1"], a["0"], None, a["8"]
        ),
        "epoll_pwait timerfd": lambda: sc(
            n["epoll_pwait"], a["tfd"], events, a["1"], a["0"], None, a["8"]
        ),
        "timerfd_settime timerfd": lambda: sc(n["timerfd_settime"], a["tfd"], a["0"], its, None),
        "timerfd_settime epollfd": lambda: sc(n["timerfd_settime"], a["ep"], a["0"], its, None),
        "arch_prctl set fs": lambda: sc(n["arch_prctl"], a["SETFS"], a["FS"]),
        "arch_prctl get fs": lambda: sc(n["arch_prctl"], a["GETFS"], ctypes.byref(fs_base)),
        "pread first block": lambda: sc(n["pread64"], a["blk"], buf, a["BS"], a["0"]),
        "pread last block": lambda: sc(n["pread64"], a["blk"], buf, a["BS"], a["LAST"]),
        "pwrite last block": lambda: sc(n["pwrite64"], a["blk"], buf, a["BS"], a["LAST"]),
        "pread count != block_size": lambda: sc(n["pread64"], a["blk"], buf, a["2BS"], a["0"]),
        "pread offset > capacity - block_size": lambda: sc(
            n["pread64"], a["blk"], buf, a["BS"], a["LAST+1"]
        ),
        "pwrite at capacity": lambda: sc(n["pwrite64"], a["blk"], buf, a["BS"], a["CAP"]),
        "pwrite on the tap": lambda: sc(n["pwrite64"], a["tap"], buf, a["BS"], a["0"]),
        "getpid": lambda: sc(n["getpid"]),
    }


ALLOWED = [
    "write stdout",
    "write tap",
    "read tap",
    "clock monotonic",
    "clock realtime",
    "epoll_pwait epollfd",
    "timerfd_settime timerfd",
    "arch_prctl set fs",
    "pread first block",
    "pread last block",
    "pwrite last block",
]
KILLED = [
    "write stderr",
    "read stdin",
    "read block fd",
    "clock boottime",
    "epoll_pwait timerfd",
    "timerfd_settime epollfd",
    "arch_prctl get fs",
    "pread count != block_size",
    "pread offset > capacity - block_size",
    "pwrite at capacity",
    "pwrite on the tap",
    "getpid",
]


@pytest.mark.parametrize("name", ALLOWED)
def test_allowed_call_succeeds(guest: Guest, program: bytes, name: str) -> None:
    guest.peer.send(b"frame")  # something for "read tap" to receive
    wstatus = run_filtered(program, calls(guest)[name])
    assert os.WIFEXITED(wstatus), f"{name}: wait status {wstatus:#x} (SIGSYS = 31)"
    assert os.WEXITSTATUS(wstatus) == 0, f"{name}: the syscall failed"


@pytest.mark.parametrize("name", KILLED)
def test_forbidden_call_dies_with_sigsys(guest: Guest, program: bytes, name: str) -> None:
    wstatus = run_filtered(program, calls(guest)[name])
    assert killed_by_sigsys(wstatus), f"{name}: wait status {wstatus:#x}"


def test_every_case_is_classified(guest: Guest) -> None:
    assert sorted(ALLOWED + KILLED) == sorted(calls(guest))


def test_whole_process_dies_despite_another_thread(guest: Guest, program: bytes) -> None:
    """kill_process, not kill_thread: a second thread must not keep a dead guest's process up."""
    import threading

    r, w = os.pipe()
    getpid = nr("getpid")

    def start_blocked_thread() -> None:  # before the filter: the thread stays unfiltered
        threading.Thread(target=os.read, args=(r, 1), daemon=True).start()

    try:
        wstatus = run_filtered(program, lambda: libc.syscall(getpid), start_blocked_thread, 5)
    finally:
        os.close(r)
        os.close(w)
    assert killed_by_sigsys(wstatus)
