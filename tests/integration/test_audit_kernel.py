"""Kernel, emulator and decompiled rules agree, call by call.

For our policies, a filter libseccomp compiled from an OCI profile and hand-written edge cases,
a few hundred syscalls with argument values taken from each program's own constants run in a
probe process under the very same filter (audit_probe.py). What the kernel did (SIGSYS, a
filter errno, or let the call through) must be what the emulator predicts, and the
decompiled rules must give the emulator's exact return value.

Calls are harmless when let through: in the probe every fd but 0-2 is closed and 0-2 are
/dev/null, pointer arguments are NULL or non-canonical addresses (EFAULT), ioctl requests
come from a short safe list, arch_prctl(ARCH_SET_FS) only passes the current FS base, and
sockets are made non-blocking (a later read of the same fd number must not wait).
"""

from __future__ import annotations

import ctypes
import errno
import os
import random

import pytest

from runnc_py.audit import program as bpf
from runnc_py.audit import semantics
from runnc_py.audit.emulator import Call, run
from tests.integration.audit_probe import Outcome, run_probe
from tests.unit.audit_programs import edge_cases, policy_program, profile_program, spt_facts

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64", reason="probes x86_64 calls")

S, P, Z = "scalar", "pointer", "zero"
BAD_POINTER = 1 << 63  # non-canonical: any access is EFAULT
ARCH_GET_FS, ARCH_SET_FS, ARCH_GET_GS = 0x1003, 0x1002, 0x1004
SAFE_IOCTLS = (0xAE80, 0x5401, 0x1234)
PROBES: dict[int, tuple[str, ...]] = {
    0: (S, P, S),  # read
    1: (S, P, S),  # write
    3: (S,),  # close
    5: (S, P),  # fstat
    8: (S, S, S),  # lseek
    17: (S, P, S, S),  # pread64
    18: (S, P, S, S),  # pwrite64
    16: (S, "ioctl", P),  # ioctl
    228: (S, P),  # clock_gettime
    281: (S, P, S, Z, P, S),  # epoll_pwait (timeout 0: never blocks)
    286: (S, S, P, P),  # timerfd_settime
    39: (), 110: (), 24: (),  # getpid, getppid, sched_yield
    63: (P,),  # uname
    135: ("persona",),  # personality
    41: (S, "socktype", Z),  # socket
    32: (S,),  # dup
    158: ("arch_prctl", P),  # arch_prctl
    1000: (S,),  # no such syscall: ENOSYS when let through
}
X32 = bpf.X32_SYSCALL_BIT


def fs_base() -> int:
    value = ctypes.c_ulong()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    assert libc.syscall(158, ARCH_GET_FS, ctypes.byref(value)) == 0
    return value.value


def probe_calls(program: bytes, count: int, seed: int) -> list[Call]:
    insns = bpf.parse(program)
    consts = sorted({i.k for i in insns} | {(i.k + 1) & 0xFFFFFFFF for i in insns})
    rng = random.Random(seed)
    fs = fs_base()

    def scalar() -> int:
        low = rng.choice([*consts, 0, 1, 2, 3, 4, 5, 6, 7, 100, 512])
        return low | (rng.choice([0, 0, 0, 1, 0xFFFFFFFF]) << 32)

    def value(kind: str) -> int:
        if kind == S:
            return scalar()
        if kind == P:
            return rng.choice([0, BAD_POINTER])
        if kind == "ioctl":
            return rng.choice(SAFE_IOCTLS)
        if kind == "persona":
            return rng.choice([0xFFFFFFFF, 0xFFFFFFFF, 0])
        if kind == "socktype":  # SOCK_NONBLOCK: a later read on it never waits
            return rng.choice([1, 2]) | 0o4000
        return 0

    calls = []
    for _ in range(count):
        nr = rng.choice(list(PROBES))
        kinds = PROBES[nr]
        args = [value(k) for k in kinds]
        if nr == 158:
            code = rng.choice([ARCH_GET_FS, ARCH_SET_FS, ARCH_GET_GS])
            args = [code, fs if code == ARCH_SET_FS else rng.choice([0, BAD_POINTER])]
        if nr in (39, 1) and rng.random() < 0.15:
            nr |= X32  # the x32 ABI: a filter must say what it does with it
        calls.append(Call(nr=nr, args=tuple(args + [0] * (6 - len(args)))))
    return calls


def filter_errnos(program: bytes) -> set[int]:
    insns = bpf.parse(program)
    return {i.k & 0xFFFF for i in insns if i.cls == bpf.RET and i.k & bpf.RET_ACTION_FULL ==
            bpf.ACTION_VALUES["errno"]} | ({*range(1000, 1256)} if any(
                i.code == bpf.RET | bpf.RET_A for i in insns) else set())


def agrees(predicted: int, seen: Outcome, errnos: set[int]) -> bool:
    name = bpf.action_name(predicted).split()[0]
    failed = seen.ret == -1
    if name in ("kill_process", "kill_thread", "trap"):
        return seen.sigsys
    if seen.sigsys or seen.other_death:
        return False
    if name == "errno":
        return failed and seen.errno == min(predicted & 0xFFFF, bpf.MAX_ERRNO)
    if name in ("trace", "user_notif"):
        return failed and seen.errno == errno.ENOSYS  # no tracer / listener attached
    return not (failed and seen.errno in errnos)  # allow, log: the call ran


def programs() -> dict[str, bytes]:
    return {
        "spt net+block": policy_program("spt", spt_facts()),
        "spt bare": policy_program("spt", spt_facts(net=False, block=False)),
        "hvt": policy_program("hvt", spt_facts()),
        "oci profile (libseccomp)": profile_program(),
        **{f"edge {k}": v for k, v in edge_cases().items()},
    }


@pytest.mark.parametrize("name", sorted(programs()))
def test_kernel_emulator_and_decompiled_rules_agree(name: str) -> None:
    program = programs()[name]
    insns = bpf.parse(program)
    sem = semantics.of_programs([insns])
    assert sem.complete
    calls = probe_calls(program, 200, seed=sum(map(ord, name)))
    seen = run_probe(program, calls)
    errnos = filter_errnos(program)
    kinds: set[str] = set()
    for call, outcome in zip(calls, seen, strict=True):
        emulated = run(insns, call)
        assert sem.decide(call.words()) == emulated, (name, call)
        assert agrees(emulated, outcome, errnos), (name, call, bpf.action_name(emulated),
                                                   outcome)
        kinds.add("sigsys" if outcome.sigsys else "returned")
    assert kinds == {"sigsys", "returned"} or name.startswith("edge"), kinds
