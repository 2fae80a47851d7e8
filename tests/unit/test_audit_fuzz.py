"""The decompiler on random and adversarial programs: never a crash, never a hang, and where
it finishes, the same answers as the emulator."""

from __future__ import annotations

import random

from runnc_py.audit import program as bpf
from runnc_py.audit import semantics, symbolic
from runnc_py.audit.emulator import Call, run
from runnc_py.audit.program import Insn
from runnc_py.audit.rules import summarize
from runnc_py.errors import RunncError

RETURNS = [0x7FFF0000, 0x80000000, 0, 0x00050000 | 7, 0x00030000, 0x7FFC0000, 0x7FF00000]
ALU_OPS = [bpf.ADD, bpf.SUB, bpf.MUL, bpf.DIV, bpf.OR, bpf.AND, bpf.XOR, bpf.LSH, bpf.RSH]


def random_insn(rng: random.Random, pc: int, length: int) -> Insn:
    left = length - pc - 1
    kind = rng.random()
    k = rng.choice([0, 1, 2, 39, 0xFFFFFFFF, 0xC000003E, rng.getrandbits(32), rng.randrange(64)])
    if left == 0 or kind < 0.08:
        if rng.random() < 0.1:
            return Insn(bpf.RET | bpf.RET_A, 0, 0, 0)
        return Insn(bpf.RET | bpf.RET_K, 0, 0, rng.choice(RETURNS))
    if kind < 0.35:
        return Insn(bpf.LD | bpf.W | bpf.ABS, 0, 0, 4 * rng.randrange(16))
    if kind < 0.7:
        op = rng.choice([bpf.JEQ, bpf.JGT, bpf.JGE, bpf.JSET])
        src = bpf.X if rng.random() < 0.15 else bpf.K
        jt, jf = rng.randrange(min(left, 8)), rng.randrange(min(left, 8))
        return Insn(bpf.JMP | op | src, jt, jf, k)
    if kind < 0.8:
        op = rng.choice(ALU_OPS)
        src = bpf.X if rng.random() < 0.3 else bpf.K
        if src == bpf.K and op == bpf.DIV:
            k = k or 3
        if src == bpf.K and op in (bpf.LSH, bpf.RSH):
            k %= 32
        return Insn(bpf.ALU | op | src, 0, 0, k)
    if kind < 0.85:
        return Insn(rng.choice([bpf.MISC | bpf.TAX, bpf.MISC | bpf.TXA]), 0, 0, 0)
    if kind < 0.9:
        return Insn(rng.choice([bpf.ST, bpf.STX]), 0, 0, rng.randrange(16))
    if kind < 0.93:
        return Insn(rng.choice([bpf.LD | bpf.MEM, bpf.LDX | bpf.MEM]), 0, 0, rng.randrange(16))
    if kind < 0.96:
        return Insn(bpf.JMP | bpf.JA, 0, 0, rng.randrange(min(left, 4)))
    return Insn(rng.choice([bpf.LD | bpf.IMM, bpf.LDX | bpf.IMM]), 0, 0, k)


def random_call(rng: random.Random, insns: tuple[Insn, ...]) -> Call:
    consts = [i.k for i in insns] + [0, 1, 0xFFFFFFFF]

    def word() -> int:
        return rng.choice(consts) if rng.random() < 0.7 else rng.getrandbits(32)

    args = tuple(word() | word() << 32 for _ in range(6))
    return Call(nr=word(), args=args, arch=word(), ip=word() | word() << 32)


def test_random_programs_decompile_and_agree_with_the_emulator() -> None:
    rng = random.Random(20261201)
    valid = complete = 0
    for _ in range(1500):
        length = rng.randrange(1, 48)
        raw = bpf.serialize([random_insn(rng, pc, length) for pc in range(length)])
        try:
            insns = bpf.parse(raw)
        except RunncError:
            continue
        valid += 1
        sem = semantics.of_programs([insns])
        summarize(sem)  # rendering never crashes either
        if not sem.complete:
            continue
        complete += 1
        for _ in range(40):
            call = random_call(rng, insns)
            assert sem.decide(call.words()) == run(insns, call), (raw.hex(), call)
    assert valid >= 300 and complete >= 0.9 * valid, (valid, complete)


def test_path_explosion_is_bounded() -> None:
    """4096 instructions that fork on a fresh bit of a fresh word each time: 2^n paths."""
    insns: list[Insn] = []
    while len(insns) < bpf.BPF_MAXINSNS - 1:
        word = 4 + len(insns) % 12
        insns.append(Insn(bpf.LD | bpf.W | bpf.ABS, 0, 0, word * 4))
        insns.append(Insn(bpf.JMP | bpf.JSET | bpf.K, 0, 0 + 1, 1 << (len(insns) % 32)))
        insns.append(Insn(bpf.ALU | bpf.ADD | bpf.K, 0, 0, 1))
    insns = [*insns[: bpf.BPF_MAXINSNS - 1], Insn(bpf.RET | bpf.RET_K, 0, 0, 0x7FFF0000)]
    parsed = bpf.parse(bpf.serialize(insns))
    result = symbolic.decompile(parsed)
    assert not result.complete
    assert len(result.paths) <= symbolic.MAX_PATHS
    assert result.steps <= symbolic.MAX_STEPS + bpf.BPF_MAXINSNS
    summary = summarize(semantics.of_programs([parsed]))
    assert not summary.complete
