"""Classic BPF as readable text, with seccomp_data field, syscall and action names. Pure
(apart from name look-ups)."""

from __future__ import annotations

from collections.abc import Sequence

from runnc_py.audit import names
from runnc_py.audit import program as bpf
from runnc_py.audit.program import Insn


def _note(field: int | None, k: int, arch: int) -> str:
    if field == bpf.NR:
        return names.label(arch, k)
    if field == bpf.ARCH:
        return names.arch_label(k)
    return ""


def line(pc: int, insn: Insn, loaded: int | None, arch: int) -> str:
    code, cls, k = insn.code, insn.cls, insn.k
    comment = ""
    if cls in (bpf.LD, bpf.LDX):
        reg = "" if cls == bpf.LD else "x"
        mode = code & 0xE0
        if mode == bpf.ABS:
            text, comment = f"ld{reg} [{k}]", bpf.FIELD_NAMES[k // 4]
        elif mode == bpf.IMM:
            text = f"ld{reg} #{k:#x}"
        elif mode == bpf.LEN:
            text, comment = f"ld{reg} #len", "64"
        else:
            text = f"ld{reg} M[{k}]"
    elif cls in (bpf.ST, bpf.STX):
        text = f"{'st' if cls == bpf.ST else 'stx'} M[{k}]"
    elif cls == bpf.ALU:
        op = code & 0xF0
        names_ = {bpf.ADD: "add", bpf.SUB: "sub", bpf.MUL: "mul", bpf.DIV: "div", bpf.OR: "or",
                  bpf.AND: "and", bpf.LSH: "lsh", bpf.RSH: "rsh", bpf.XOR: "xor", bpf.NEG: "neg"}
        text = names_[op] if op == bpf.NEG else \
            f"{names_[op]} {'x' if code & bpf.X else f'#{k:#x}'}"
    elif cls == bpf.JMP:
        if code == bpf.JMP | bpf.JA:
            text = f"ja {pc + 1 + k:04d}"
        else:
            operand = "x" if code & bpf.X else f"#{k:#x}"
            text = (f"{bpf.JMP_OPS[code & 0xF0]} {operand}, {pc + 1 + insn.jt:04d}, "
                    f"{pc + 1 + insn.jf:04d}")
            if not code & bpf.X and code & 0xF0 == bpf.JEQ:
                comment = _note(loaded, k, arch)
    elif cls == bpf.RET:
        if code & 0x18 == bpf.RET_A:
            text = "ret a"
        else:
            text, comment = f"ret #{k:#x}", bpf.action_name(k)
    else:
        text = "txa" if code & 0xF8 == bpf.TXA else "tax"
    return f"{pc:04d}: {text:<32}" + (f" ; {comment}" if comment else "")


def _loaded_fields(insns: Sequence[Insn]) -> list[int | None]:
    """Per instruction, the seccomp_data word A holds on every path that reaches it."""
    unknown = -1
    at: list[int | None] = [None] * len(insns)  # None: not reached yet
    at[0] = unknown
    for pc, insn in enumerate(insns):
        here = at[pc]
        if here is None:
            continue
        after = here
        if insn.code == bpf.LD | bpf.W | bpf.ABS:
            after = insn.k // 4
        elif insn.cls in (bpf.LD, bpf.ALU) or insn.code == bpf.MISC | bpf.TXA:
            after = unknown
        if insn.cls == bpf.RET:
            continue
        if insn.cls == bpf.JMP:
            targets = ([pc + 1 + insn.k] if insn.code == bpf.JMP | bpf.JA
                       else [pc + 1 + insn.jt, pc + 1 + insn.jf])
        else:
            targets = [pc + 1]
        for t in targets:
            at[t] = after if at[t] is None or at[t] == after else unknown
    return [None if a is None or a < 0 else a for a in at]


def disassemble(insns: Sequence[Insn]) -> str:
    loaded = _loaded_fields(insns)
    return "\n".join(line(pc, insn, loaded[pc], names.NATIVE).rstrip()
                     for pc, insn in enumerate(insns))
