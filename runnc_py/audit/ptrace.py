"""Read the seccomp filters installed on a live process: PTRACE_SEIZE, PTRACE_INTERRUPT, one
PTRACE_SECCOMP_GET_FILTER per filter of the chain, PTRACE_DETACH.

The tracee is stopped only between the interrupt and the detach (a few hundred microseconds);
a signal that arrives meanwhile is handed back on detach, and an interrupted syscall restarts
transparently (or, like KVM_RUN, returns EINTR to a caller that retries).
"""

from __future__ import annotations

import ctypes
import errno
import os
import time
from dataclasses import dataclass

from runnc_py.errors import RunncError

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_SECCOMP_GET_FILTER = 0x420C
PTRACE_EVENT_STOP = 128
WALL = 0x40000000  # __WALL: wait for clone children too (a tracee is not our child)
MAX_FILTERS = 1024
STOP_TIMEOUT = 2.0  # seconds a tracee gets to reach its ptrace-stop

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = (ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


@dataclass(frozen=True)
class FilterRead:
    programs: tuple[bytes, ...]  # index 0 = the most recently installed filter
    pause_seconds: float  # from the interrupt to the detach


def _ptrace(request: int, pid: int, addr: int, data: ctypes.Array[ctypes.c_char] | int | None
            ) -> int:
    ctypes.set_errno(0)
    result = _libc.ptrace(request, pid, addr, data)
    if result == -1 and ctypes.get_errno():
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return int(result)


def read_filters(pid: int) -> FilterRead:
    """Every seccomp filter of PID; the process is stopped only for the reading."""
    where = f"pid {pid}"
    try:
        _ptrace(PTRACE_SEIZE, pid, 0, 0)
    except OSError as exc:
        raise _seize_error(exc, where) from exc
    started = time.perf_counter()
    pending_signal = 0
    try:
        _ptrace(PTRACE_INTERRUPT, pid, 0, 0)
        pending_signal = _wait_for_stop(pid, where)
        programs = _read_chain(pid, where)
    finally:
        try:
            _ptrace(PTRACE_DETACH, pid, 0, pending_signal)
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                raise RunncError(f"cannot detach: {exc.strerror}", where=where) from exc
    return FilterRead(programs=programs, pause_seconds=time.perf_counter() - started)


def _seize_error(exc: OSError, where: str) -> RunncError:
    if exc.errno == errno.ESRCH:
        return RunncError("no such process", where=where)
    if exc.errno == errno.EPERM:
        return RunncError(
            "may not trace this process (not root, already traced, or under a ptrace-blocking"
            " LSM)", where=where)
    return RunncError(f"cannot attach: {exc.strerror}", where=where)


def _wait_for_stop(pid: int, where: str) -> int:
    """Wait for the tracee's stop; returns a signal to hand back on detach (0 for none).

    Polled with a deadline: a frozen process (a paused container) never stops for a tracer.
    """
    deadline = time.monotonic() + STOP_TIMEOUT
    while True:
        try:
            done, status = os.waitpid(pid, WALL | os.WNOHANG)
        except ChildProcessError as exc:
            raise RunncError("the process went away while stopping it", where=where) from exc
        if not done:
            if time.monotonic() > deadline:
                raise RunncError(f"the process did not stop within {STOP_TIMEOUT:g} s "
                                 "(frozen or paused?)", where=where)
            time.sleep(0.0001)
            continue
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            raise RunncError("the process ended while being audited", where=where)
        if os.WIFSTOPPED(status):
            if status >> 16 == PTRACE_EVENT_STOP:
                return 0
            return os.WSTOPSIG(status)  # a signal-delivery-stop: deliver it on detach


def _read_chain(pid: int, where: str) -> tuple[bytes, ...]:
    programs = []
    for index in range(MAX_FILTERS):
        try:
            count = _ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, None)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                break
            if exc.errno == errno.EINVAL and index == 0:
                break  # not in filter mode: no filters to read
            if exc.errno == errno.EMEDIUMTYPE:
                raise RunncError("the kernel kept no copy of this filter (it needs "
                                 "CONFIG_CHECKPOINT_RESTORE)", where=where) from exc
            if exc.errno == errno.EACCES:
                raise RunncError(
                    "reading seccomp filters needs CAP_SYS_ADMIN and an unfiltered auditor",
                    where=where) from exc
            raise RunncError(f"cannot read filter {index}: {exc.strerror}", where=where) from exc
        buf = ctypes.create_string_buffer(count * 8)
        got = _ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, buf)
        programs.append(buf.raw[: got * 8])
    return tuple(programs)
