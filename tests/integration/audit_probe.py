"""A probe process that asks the kernel itself what a seccomp filter does to syscalls.

The child closes every fd but 0-2 (pointed at /dev/null), installs the raw program with
prctl(PR_SET_NO_NEW_PRIVS) + prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &sock_fprog) and makes
the calls through libc's syscall(). Results go to shared memory (a pipe write would itself be
filtered): before each call the child records its index, after it the return value and errno.
A SIGSYS death names the call that was running; the parent starts a new child after it. The
loop is run once unfiltered first (getpid in place of each call) so that the interpreter's
allocator holds the memory the filtered run needs and asks the kernel for nothing.
"""

from __future__ import annotations

import ctypes
import gc
import mmap
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass

from runnc_py.audit.emulator import Call

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
PR_SET_DUMPABLE = 4
SECCOMP_MODE_FILTER = 2
NR_GETPID = 39
_SLOT = 8
_HEADER = 2  # [current index, finished marker]

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.prctl.restype = ctypes.c_int


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


@dataclass(frozen=True)
class Outcome:
    sigsys: bool
    ret: int = 0
    errno: int = 0
    other_death: int = 0  # a wait status that is neither SIGSYS nor a normal exit


def _signed(value: int) -> ctypes.c_long:
    return ctypes.c_long(value - (1 << 64) if value >= 1 << 63 else value)


def run_probe(program: bytes, calls: Sequence[Call], timeout: float = 60.0) -> list[Outcome]:
    """What the kernel does to each of CALLS under PROGRAM."""
    count = len(calls)
    shm = mmap.mmap(-1, (_HEADER + 3 * count) * _SLOT)
    words = (ctypes.c_int64 * (_HEADER + 3 * count)).from_buffer(shm)
    outcomes: list[Outcome | None] = [None] * count
    start = 0
    deadline = time.monotonic() + timeout
    try:
        while start < count:
            words[0] = -1
            pid = os.fork()
            if pid == 0:
                _child(program, calls, start, words)  # never returns
            status = _wait(pid, deadline)
            current = words[0]
            for i in range(start, count):
                if words[_HEADER + 3 * i + 2] == 1 and outcomes[i] is None:
                    outcomes[i] = Outcome(False, words[_HEADER + 3 * i],
                                          words[_HEADER + 3 * i + 1])
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
                break
            if current < start:
                raise AssertionError(f"probe child died before its first call: {status:#x}")
            if outcomes[current] is None:
                sigsys = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS
                outcomes[current] = Outcome(sigsys, other_death=0 if sigsys else status)
            start = current + 1
    finally:
        del words
        shm.close()
    missing = [i for i, o in enumerate(outcomes) if o is None]
    assert not missing, f"no outcome for calls {missing[:5]}"
    return [o for o in outcomes if o is not None]


def _wait(pid: int, deadline: float) -> int:
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the probe child hung")
        time.sleep(0.0005)


def _child(program: bytes, calls: Sequence[Call], start: int, words: ctypes.Array) -> None:  # type: ignore[type-arg]
    status = 70
    try:
        os.closerange(3, 1 << 16)
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        if null > 2:
            os.close(null)
        filt = ctypes.create_string_buffer(program, len(program))
        prog = SockFprog(len(program) // 8, ctypes.addressof(filt))
        argv = [(_signed(c.nr), *(_signed(a) for a in c.args)) for c in calls[start:]]
        getpid = [(_signed(NR_GETPID), *a[1:]) for a in argv]
        indexes = list(range(start, len(calls)))
        ballast = [i * 7919 + 10**9 for i in range(50000)]
        del ballast[::2]  # free slots in live pools: the run allocates without new arenas
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        gc.disable()
        syscall, get_errno, header = libc.syscall, ctypes.get_errno, _HEADER
        for pass_args, filtered in ((getpid, False), (argv, True)):
            if filtered:
                if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                    os._exit(71)
                if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0):
                    os._exit(72)
            for i, args in zip(indexes, pass_args, strict=True):
                if filtered:
                    words[0] = i
                ret = syscall(*args)
                err = get_errno()
                if filtered:
                    slot = header + 3 * i
                    words[slot] = ret
                    words[slot + 1] = err
                    words[slot + 2] = 1
        status = 0
    finally:
        os._exit(status)
