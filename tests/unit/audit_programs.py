"""Filters the audit tests share: ours (from the shipped policies), one libseccomp compiled
from an OCI profile, and hand-written classic BPF edge cases. Pure builders, no kernel."""

from __future__ import annotations

from runnc_py.audit import program as bpf
from runnc_py.audit.program import Insn
from runnc_py.sandbox.facts import BootFacts, DeviceFacts

ALLOW = 0x7FFF0000
KILL_PROCESS = 0x80000000
KILL_THREAD = 0x00000000
TRAP = 0x00030000
TRACE = 0x7FF00000
LOG = 0x7FFC0000
ERRNO = 0x00050000
NR_WRITE, NR_READ, NR_GETPID, NR_GETPPID, NR_CLOSE = 1, 0, 39, 110, 3
CAP = 8 << 30  # past 4 GiB: the offset bound needs the high word
BS = 512


def spt_facts(net: bool = True, block: bool = True) -> BootFacts:
    devices = []
    if net:
        devices.append(DeviceFacts(kind="net", name="service0", hostfd=5))
    if block:
        devices.append(DeviceFacts(kind="block", name="storage", hostfd=6, capacity=CAP,
                                   block_size=BS))
    return BootFacts(epollfd=3, timerfd=4, devices=tuple(devices), vcpufd=7)


def policy_program(name: str, facts: BootFacts) -> bytes:
    from runnc_py.sandbox.bpf import compile_bpf
    from runnc_py.sandbox.policy import load_policy, resolve

    pol = load_policy(name)
    return compile_bpf(resolve(pol, facts), pol.default_action, cache=False)


# An OCI profile in Docker's style, with distinctive errnos (a probe tells a filter's errno
# from a syscall's own): default errno 1111, 64-bit and masked argument conditions, two
# conditions on one argument (runc turns those into separate rules), extra architectures.
OCI_PROFILE = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1111,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": ["getpid", "getppid", "exit_group", "close"],
         "action": "SCMP_ACT_ALLOW"},
        {"names": ["write"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                  {"index": 2, "value": 4096, "op": "SCMP_CMP_LE"}]},
        {"names": ["pread64"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 3, "value": CAP - BS, "op": "SCMP_CMP_LE"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}]},
        {"names": ["sched_yield"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1222},
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]},
        {"names": ["lseek"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 2, "value": 0xFFFFFFF0, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["dup"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_GT"},
                  {"index": 0, "value": 100, "op": "SCMP_CMP_LT"}]},
        {"names": ["read"], "action": "SCMP_ACT_TRAP",
         "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_GE"}]},
        {"names": ["fstat"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["uname"], "action": "SCMP_ACT_LOG"},
        {"names": ["no_such_syscall_x"], "action": "SCMP_ACT_ALLOW"},
    ],
}


def profile_program() -> bytes:
    from runnc_py.audit.profile import compile_profile

    return compile_profile(OCI_PROFILE, "test profile").program


def _ld(field: int) -> Insn:
    return Insn(bpf.LD | bpf.W | bpf.ABS, 0, 0, field * 4)


def _jeq(k: int, jt: int, jf: int) -> Insn:
    return Insn(bpf.JMP | bpf.JEQ | bpf.K, jt, jf, k)


def _ret(k: int) -> Insn:
    return Insn(bpf.RET | bpf.RET_K, 0, 0, k)


ARG0_LO, ARG0_HI, ARG1_LO, ARG2_LO = bpf.arg_field(0, False), bpf.arg_field(0, True), \
    bpf.arg_field(1, False), bpf.arg_field(2, False)


def edge_cases() -> dict[str, bytes]:
    """Hand-written programs: JSET, ALU on loaded words, X comparisons, RET A, scratch
    memory, division by a loaded word, no architecture check."""
    e = ERRNO
    cases: dict[str, list[Insn]] = {
        # getpid: errno 1301 when arg0 has bit 2 set; anything else allowed; no arch check.
        "jset": [_ld(bpf.NR), _jeq(NR_GETPID, 0, 3), _ld(ARG0_LO),
                 Insn(bpf.JMP | bpf.JSET | bpf.K, 0, 1, 4), _ret(e | 1301), _ret(ALLOW)],
        # arg0 + 5 == 8 (i.e. arg0.lo == 3 or wraps) -> errno 1302; write only.
        "alu": [_ld(bpf.NR), _jeq(NR_WRITE, 0, 5), _ld(ARG0_LO),
                Insn(bpf.ALU | bpf.ADD | bpf.K, 0, 0, 5), _jeq(8, 0, 1), _ret(e | 1302),
                _ret(ALLOW), _ret(ALLOW)],
        # getppid: arg0 > arg1 (X comparison) -> errno 1303.
        "x-compare": [_ld(bpf.NR), _jeq(NR_GETPPID, 0, 5), _ld(ARG1_LO),
                      Insn(bpf.MISC | bpf.TAX, 0, 0, 0), _ld(ARG0_LO),
                      Insn(bpf.JMP | bpf.JGT | bpf.X, 0, 1, 0), _ret(e | 1303), _ret(ALLOW)],
        # close: return ERRNO | (arg0 & 0xff) + 1000 computed at run time (RET A).
        "ret-a": [_ld(bpf.NR), _jeq(NR_CLOSE, 0, 4), _ld(ARG0_LO),
                  Insn(bpf.ALU | bpf.AND | bpf.K, 0, 0, 0xFF),
                  Insn(bpf.ALU | bpf.ADD | bpf.K, 0, 0, e | 1000),
                  Insn(bpf.RET | bpf.RET_A, 0, 0, 0), _ret(ALLOW)],
        # scratch memory: keep nr in M[3], reload it after loading args; getpid w/ arg0 < 10
        # allowed, otherwise errno 1304; plus arg2 / arg0 (division by a loaded word).
        "memory-div": [_ld(bpf.NR), Insn(bpf.ST, 0, 0, 3), _ld(ARG0_LO),
                       Insn(bpf.MISC | bpf.TAX, 0, 0, 0), Insn(bpf.LD | bpf.MEM, 0, 0, 3),
                       _jeq(NR_GETPID, 0, 4), _ld(ARG2_LO),
                       Insn(bpf.ALU | bpf.DIV | bpf.X, 0, 0, 0),
                       Insn(bpf.JMP | bpf.JGE | bpf.K, 0, 1, 2), _ret(e | 1304), _ret(ALLOW)],
        # arch checked, high word of arg0 checked (a 64-bit fd), trace and log actions,
        # kill_thread default for everything else outside a small allowlist.
        "actions": [_ld(bpf.ARCH), _jeq(bpf.AUDIT_ARCH_X86_64, 1, 0), _ret(KILL_PROCESS),
                    _ld(bpf.NR), Insn(bpf.JMP | bpf.JGE | bpf.K, 0, 1, bpf.X32_SYSCALL_BIT),
                    _ret(KILL_PROCESS), _jeq(NR_GETPID, 0, 1), _ret(TRACE),
                    _jeq(NR_GETPPID, 0, 1), _ret(LOG), _jeq(NR_WRITE, 0, 4), _ld(ARG0_HI),
                    _jeq(0, 0, 1), _ret(ALLOW), _ret(e | 1305),
                    _jeq(231, 0, 1), _ret(ALLOW), _jeq(NR_CLOSE, 0, 1), _ret(TRAP),
                    _ret(KILL_THREAD)],
    }
    return {name: bpf.serialize(insns) for name, insns in cases.items()}
