"""Run a classic BPF seccomp program on one concrete `struct seccomp_data`, as the kernel does.

32-bit arithmetic, division by a zero X returns 0 (the kernel's cBPF->eBPF conversion inserts
that check), shifts by X use its low 5 bits (what the interpreter and the x86 JIT do). A chain
of filters yields the most restrictive result (linux/seccomp.c: seccomp_run_filters).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from runnc_py.audit import program as bpf
from runnc_py.audit.program import Insn

M32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Call:
    """One syscall as the filter sees it: number, architecture token and six 64-bit args."""

    nr: int
    args: tuple[int, ...] = (0, 0, 0, 0, 0, 0)
    arch: int = bpf.AUDIT_ARCH_X86_64
    ip: int = 0

    def words(self) -> tuple[int, ...]:
        """The sixteen 32-bit words of seccomp_data (little endian: low word first)."""
        args = (*self.args, *(0,) * (6 - len(self.args)))
        out = [self.nr & M32, self.arch & M32, self.ip & M32, self.ip >> 32 & M32]
        for a in args:
            out += [a & M32, a >> 32 & M32]
        return tuple(out)

    def pack(self) -> bytes:
        return struct.pack("=16I", *self.words())


def alu(op: int, a: int, b: int) -> int | None:
    """A op B in 32 bits; None: division by zero (the program returns 0)."""
    if op == bpf.ADD:
        return (a + b) & M32
    if op == bpf.SUB:
        return (a - b) & M32
    if op == bpf.MUL:
        return (a * b) & M32
    if op == bpf.DIV:
        return None if b == 0 else a // b
    if op == bpf.OR:
        return a | b
    if op == bpf.AND:
        return a & b
    if op == bpf.XOR:
        return a ^ b
    if op == bpf.LSH:
        return (a << (b & 31)) & M32
    if op == bpf.RSH:
        return a >> (b & 31)
    if op == bpf.NEG:
        return -a & M32
    raise AssertionError(f"alu op {op:#x}")


def jump(op: int, a: int, b: int) -> bool:
    """Whether a conditional jump OP (JEQ/JGT/JGE/JSET) of A against B is taken."""
    if op == bpf.JEQ:
        return a == b
    if op == bpf.JGT:
        return a > b
    if op == bpf.JGE:
        return a >= b
    return a & b != 0  # JSET


def run(insns: Sequence[Insn], call: Call) -> int:
    """The 32-bit value the program returns for CALL (programs are validated by parse)."""
    words = call.words()
    a = x = 0
    mem = [0] * bpf.MEM_WORDS
    pc = 0
    while True:
        insn = insns[pc]
        code, cls = insn.code, insn.cls
        pc += 1
        if cls == bpf.LD:
            mode = code & 0xE0
            a = words[insn.k // 4] if mode == bpf.ABS else (
                insn.k if mode == bpf.IMM else 64 if mode == bpf.LEN else mem[insn.k]
            )
        elif cls == bpf.LDX:
            mode = code & 0xE0
            x = insn.k if mode == bpf.IMM else 64 if mode == bpf.LEN else mem[insn.k]
        elif cls == bpf.ST:
            mem[insn.k] = a
        elif cls == bpf.STX:
            mem[insn.k] = x
        elif cls == bpf.ALU:
            result = alu(code & 0xF0, a, x if code & bpf.X else insn.k)
            if result is None:
                return 0
            a = result
        elif cls == bpf.JMP:
            if code == bpf.JMP | bpf.JA:
                pc += insn.k
            else:
                taken = jump(code & 0xF0, a, x if code & bpf.X else insn.k)
                pc += insn.jt if taken else insn.jf
        elif cls == bpf.RET:
            return a if code & 0x18 == bpf.RET_A else insn.k
        else:  # MISC
            if code & 0xF8 == bpf.TXA:
                a = x
            else:
                x = a


def run_chain(programs: Sequence[Sequence[Insn]], call: Call) -> int:
    """The kernel's answer under several filters: the most restrictive; ALLOW with none."""
    result = bpf.ACTION_VALUES["allow"]
    for insns in programs:
        value = run(insns, call)
        if bpf.precedence(value) < bpf.precedence(result):
            result = value
    return result
