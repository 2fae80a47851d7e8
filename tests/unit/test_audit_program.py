"""Classic BPF parsing (the kernel's checks), the disassembler and the emulator's corners."""

from __future__ import annotations

import pytest

from runnc_py.audit import program as bpf
from runnc_py.audit.disasm import disassemble
from runnc_py.audit.emulator import Call, run, run_chain
from runnc_py.audit.program import Insn
from runnc_py.errors import RunncError
from tests.unit.audit_programs import ALLOW, ERRNO, KILL_PROCESS, policy_program, spt_facts

RET_ALLOW = Insn(bpf.RET | bpf.RET_K, 0, 0, ALLOW)


def raw(*insns: Insn) -> bytes:
    return bpf.serialize(list(insns))


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "empty"),
        (raw(RET_ALLOW)[:-3], "not a whole number"),
        (raw(RET_ALLOW) * 4097, "at most 4096"),
        (raw(Insn(0xFFFF, 0, 0, 0), RET_ALLOW), "not an instruction seccomp accepts"),
        (raw(Insn(bpf.LD | bpf.W | bpf.ABS, 0, 0, 2), RET_ALLOW), "aligned word"),
        (raw(Insn(bpf.LD | bpf.W | bpf.ABS, 0, 0, 64), RET_ALLOW), "aligned word"),
        (raw(Insn(bpf.LD | bpf.B | bpf.ABS, 0, 0, 0), RET_ALLOW), "not an instruction"),
        (raw(Insn(bpf.JMP | bpf.JEQ, 3, 0, 1), RET_ALLOW), "leaves the program"),
        (raw(Insn(bpf.JMP | bpf.JA, 0, 0, 1), RET_ALLOW), "leaves the program"),
        (raw(Insn(bpf.LD | bpf.IMM, 0, 0, 1)), "does not end with a return"),
        (raw(Insn(bpf.LD | bpf.MEM, 0, 0, 2), RET_ALLOW), "before writing it"),
        (raw(Insn(bpf.ST, 0, 0, 16), RET_ALLOW), "slot 16"),
        (raw(Insn(bpf.ALU | bpf.DIV | bpf.K, 0, 0, 0), RET_ALLOW), "division"),
        (raw(Insn(bpf.ALU | bpf.LSH | bpf.K, 0, 0, 32), RET_ALLOW), "shift"),
        (raw(Insn(bpf.RET | 0x08, 0, 0, 0)), "not an instruction"),  # RET X: not for seccomp
    ],
)
def test_corrupt_programs_are_refused_in_one_line(data: bytes, needle: str) -> None:
    with pytest.raises(RunncError) as caught:
        bpf.parse(data, where="f.bpf")
    line = caught.value.line()
    assert needle in line and line.startswith("f.bpf") and "\n" not in line


def test_memory_written_on_one_branch_only_is_refused() -> None:
    prog = raw(
        Insn(bpf.LD | bpf.W | bpf.ABS, 0, 0, 0),
        Insn(bpf.JMP | bpf.JEQ, 0, 1, 1),
        Insn(bpf.ST, 0, 0, 0),
        Insn(bpf.LD | bpf.MEM, 0, 0, 0),
        RET_ALLOW,
    )
    with pytest.raises(RunncError, match="before writing"):
        bpf.parse(prog)


def test_memory_written_on_every_branch_is_accepted() -> None:
    prog = raw(
        Insn(bpf.ST, 0, 0, 5),
        Insn(bpf.LD | bpf.W | bpf.ABS, 0, 0, 0),
        Insn(bpf.JMP | bpf.JEQ, 0, 1, 1),
        Insn(bpf.ST, 0, 0, 0),
        Insn(bpf.LD | bpf.MEM, 0, 0, 5),
        RET_ALLOW,
    )
    assert len(bpf.parse(prog)) == 6


def test_action_names_and_precedence() -> None:
    assert bpf.action_name(ERRNO | 1) == "errno 1"
    assert bpf.action_name(ERRNO | 0xFFFF) == "errno 4095"  # the kernel clamps to MAX_ERRNO
    assert bpf.action_name(0x00010000).startswith("kill_process")
    order = ["kill_process", "kill_thread", "trap", "errno", "user_notif", "trace", "log",
             "allow"]
    values = [bpf.ACTION_VALUES[n] for n in order]
    assert sorted(values, key=bpf.precedence) == values


def test_emulator_division_by_zero_returns_zero_and_chain_takes_most_restrictive() -> None:
    div = bpf.parse(raw(
        Insn(bpf.LD | bpf.W | bpf.ABS, 0, 0, 16),
        Insn(bpf.MISC | bpf.TAX, 0, 0, 0),
        Insn(bpf.LD | bpf.IMM, 0, 0, 10),
        Insn(bpf.ALU | bpf.DIV | bpf.X, 0, 0, 0),
        RET_ALLOW,
    ))
    assert run(div, Call(nr=0, args=(0,))) == 0
    assert run(div, Call(nr=0, args=(2,))) == ALLOW
    errno = bpf.parse(raw(Insn(bpf.RET | bpf.RET_K, 0, 0, ERRNO | 5)))
    kill = bpf.parse(raw(Insn(bpf.RET | bpf.RET_K, 0, 0, KILL_PROCESS)))
    allow = bpf.parse(raw(RET_ALLOW))
    assert run_chain([allow, errno], Call(nr=1)) == ERRNO | 5
    assert run_chain([errno, kill, allow], Call(nr=1)) == KILL_PROCESS
    assert run_chain([], Call(nr=1)) == ALLOW


def test_disassembly_names_fields_syscalls_and_actions() -> None:
    text = disassemble(bpf.parse(policy_program("spt", spt_facts())))
    assert "; arch" in text and "; x86_64" in text
    assert "; nr" in text and "; write" in text and "; pread64" in text
    assert "; kill_process" in text and "; allow" in text
    assert text.splitlines()[0].startswith("0000: ld [4]")
