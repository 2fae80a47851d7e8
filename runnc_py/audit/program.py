"""Classic BPF as the kernel's seccomp loader sees it: parse, validate, name the actions.

Validation follows the kernel's own checks (bpf_check_classic + seccomp_check_filter): only
the instructions seccomp accepts, jumps inside the program, 4-byte aligned loads inside
`struct seccomp_data`, scratch memory written before it is read, a return at the end. A
program that passes here is one the kernel would load; anything else is one clear line.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from runnc_py.errors import RunncError

INSN_SIZE = 8
BPF_MAXINSNS = 4096
SECCOMP_DATA_SIZE = 64
MEM_WORDS = 16

# struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }
_INSN = struct.Struct("=HBBI")

# Classes, sizes, modes, ops (linux/filter.h, linux/bpf_common.h).
LD, LDX, ST, STX, ALU, JMP, RET, MISC = range(8)
W, H, B = 0x00, 0x08, 0x10
IMM, ABS, IND, MEM, LEN, MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0,
)
JA, JEQ, JGT, JGE, JSET = 0x00, 0x10, 0x20, 0x30, 0x40
K, X = 0x00, 0x08
RET_K, RET_A = 0x00, 0x10
TAX, TXA = 0x00, 0x80

ALU_OPS = {ADD: "+", SUB: "-", MUL: "*", DIV: "/", OR: "|", AND: "&", LSH: "<<", RSH: ">>",
           XOR: "^", NEG: "neg"}
JMP_OPS = {JEQ: "jeq", JGT: "jgt", JGE: "jge", JSET: "jset"}

# seccomp_data words (offset / 4).
FIELD_NAMES = (
    "nr",
    "arch",
    "ip.lo",
    "ip.hi",
    *(f"arg{i}.{half}" for i in range(6) for half in ("lo", "hi")),
)
NR, ARCH = 0, 1


def arg_field(index: int, high: bool) -> int:
    return 4 + 2 * index + int(high)


# Seccomp return values: action in the high 16 bits, data in the low 16.
RET_ACTION_FULL = 0xFFFF0000
RET_DATA = 0x0000FFFF
ACTIONS: dict[int, str] = {
    0x80000000: "kill_process",
    0x00000000: "kill_thread",
    0x00030000: "trap",
    0x00050000: "errno",
    0x7FC00000: "user_notif",
    0x7FF00000: "trace",
    0x7FFC0000: "log",
    0x7FFF0000: "allow",
}
ACTION_VALUES = {name: value for value, name in ACTIONS.items()}
MAX_ERRNO = 4095

# Audit architecture tokens (linux/audit.h); libseccomp uses the same numbers.
ARCHES: dict[int, str] = {
    0xC000003E: "x86_64",
    0x40000003: "x86",
    0x4000003E: "x32",  # never seen in seccomp_data (x32 calls report x86_64 + bit 30 in nr)
    0xC00000B7: "aarch64",
    0x40000028: "arm",
    0xC00000F3: "riscv64",
    0x80000016: "s390x",
    0xC0000015: "ppc64le",
}
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000


def action_name(value: int) -> str:
    """`allow`, `errno 1`, `kill_process` ... for a filter's 32-bit return value."""
    action = value & RET_ACTION_FULL
    name = ACTIONS.get(action)
    if name is None:
        return f"kill_process (unknown action {value:#x})"  # the kernel kills for unknown ones
    data = value & RET_DATA
    if name == "errno":
        return f"errno {min(data, MAX_ERRNO)}"
    if name in ("trap", "trace") and data:
        return f"{name} {data}"
    return name


def precedence(value: int) -> int:
    """Lower is more restrictive: the kernel keeps the smallest signed action of all filters."""
    action = value & RET_ACTION_FULL
    if action not in ACTIONS:
        action = 0x80000000
    return action - (1 << 32) if action & 0x80000000 else action


@dataclass(frozen=True)
class Insn:
    code: int
    jt: int
    jf: int
    k: int

    @property
    def cls(self) -> int:
        return self.code & 0x07


_ALLOWED_CODES = {
    LD | W | ABS, LD | W | LEN, LDX | W | LEN, LD | IMM, LDX | IMM, LD | MEM, LDX | MEM,
    ST, STX, MISC | TAX, MISC | TXA, RET | RET_K, RET | RET_A, JMP | JA,
    *(ALU | op | src for op in (ADD, SUB, MUL, DIV, AND, OR, XOR, LSH, RSH) for src in (K, X)),
    ALU | NEG,
    *(JMP | op | src for op in (JEQ, JGT, JGE, JSET) for src in (K, X)),
}


def parse(data: bytes, where: str = "program") -> tuple[Insn, ...]:
    """Instructions of a raw `struct sock_filter[]`, validated like the kernel does."""
    if not data:
        raise RunncError("empty BPF program", where=where)
    if len(data) % INSN_SIZE:
        raise RunncError(
            f"{len(data)} bytes is not a whole number of 8-byte instructions (truncated?)",
            where=where,
        )
    count = len(data) // INSN_SIZE
    if count > BPF_MAXINSNS:
        raise RunncError(f"{count} instructions, the kernel takes at most {BPF_MAXINSNS}",
                         where=where)
    insns = tuple(Insn(*_INSN.unpack_from(data, i * INSN_SIZE)) for i in range(count))
    for pc, insn in enumerate(insns):
        _check(insns, pc, insn, where)
    _check_memory(insns, where)
    return insns


def serialize(insns: tuple[Insn, ...] | list[Insn]) -> bytes:
    return b"".join(_INSN.pack(i.code, i.jt, i.jf, i.k) for i in insns)


def _check(insns: tuple[Insn, ...], pc: int, insn: Insn, where: str) -> None:
    def fail(message: str) -> RunncError:
        return RunncError(f"instruction {pc} ({insn.code:#06x}): {message}", where=where)

    if insn.code not in _ALLOWED_CODES:
        raise fail("not an instruction seccomp accepts")
    remaining = len(insns) - pc - 1
    cls = insn.cls
    if insn.code == LD | W | ABS and (insn.k % 4 or insn.k >= SECCOMP_DATA_SIZE):
        raise fail(f"load at offset {insn.k} is not an aligned word of seccomp_data")
    if insn.code in (LD | MEM, LDX | MEM, ST, STX) and insn.k >= MEM_WORDS:
        raise fail(f"scratch memory slot {insn.k} does not exist (0..15)")
    if cls == ALU and insn.code & X == K:
        op = insn.code & 0xF0
        if op == DIV and insn.k == 0:
            raise fail("division by the constant 0")
        if op in (LSH, RSH) and insn.k >= 32:
            raise fail(f"shift by {insn.k}")
    if cls == JMP:
        if insn.code == JMP | JA:
            if insn.k >= remaining:
                raise fail(f"jump by {insn.k} leaves the program")
        elif max(insn.jt, insn.jf) >= remaining:
            raise fail(f"jump by {max(insn.jt, insn.jf)} leaves the program")
    if pc == len(insns) - 1 and cls != RET:
        raise fail("the program does not end with a return")


def _check_memory(insns: tuple[Insn, ...], where: str) -> None:
    """Every scratch slot read must be written on every path before (the kernel's rule)."""
    n = len(insns)
    written: list[int | None] = [None] * n  # bitmask of slots surely written on entry
    written[0] = 0
    for pc, insn in enumerate(insns):
        state = written[pc]
        if state is None:
            continue  # unreachable
        if insn.code in (LD | MEM, LDX | MEM) and not state >> insn.k & 1:
            raise RunncError(
                f"instruction {pc}: reads scratch slot {insn.k} before writing it", where=where
            )
        if insn.code in (ST, STX):
            state |= 1 << insn.k
        if insn.cls == RET:
            continue
        if insn.cls == JMP:
            targets = (
                [pc + 1 + insn.k] if insn.code == JMP | JA
                else [pc + 1 + insn.jt, pc + 1 + insn.jf]
            )
        else:
            targets = [pc + 1]
        for t in targets:
            written[t] = state if written[t] is None else written[t] & state
