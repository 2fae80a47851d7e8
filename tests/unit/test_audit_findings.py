"""Findings about filters (architecture check, the x32 bypass) and about processes (/proc)."""

from __future__ import annotations

import os

from runnc_py.audit import findings, procfacts, semantics
from runnc_py.audit import program as bpf
from runnc_py.audit.program import Insn
from runnc_py.audit.rules import summarize
from tests.unit.audit_programs import ALLOW, KILL_PROCESS, policy_program, spt_facts


def summary_of(*insns: Insn):  # type: ignore[no-untyped-def]
    return summarize(semantics.of_programs([bpf.parse(bpf.serialize(list(insns)))]))


LD_ARCH = Insn(bpf.LD | bpf.W | bpf.ABS, 0, 0, 4)
LD_NR = Insn(bpf.LD | bpf.W | bpf.ABS, 0, 0, 0)
RET_ALLOW = Insn(bpf.RET | bpf.RET_K, 0, 0, ALLOW)
RET_KILL = Insn(bpf.RET | bpf.RET_K, 0, 0, KILL_PROCESS)


def test_our_policy_has_no_filter_findings() -> None:
    summary = summarize(semantics.of_programs([bpf.parse(policy_program("spt", spt_facts()))]))
    assert findings.about_filters(summary) == []


def test_missing_architecture_check() -> None:
    summary = summary_of(LD_NR, Insn(bpf.JMP | bpf.JEQ, 0, 1, 1), RET_ALLOW, RET_KILL)
    assert not summary.arch_checked
    assert any("no architecture check" in f for f in findings.about_filters(summary))


def test_x32_bypass() -> None:
    """Arch checked, write allowed by number, and nothing stops nr | 0x40000000."""
    summary = summary_of(
        LD_ARCH, Insn(bpf.JMP | bpf.JEQ, 1, 0, bpf.AUDIT_ARCH_X86_64), RET_KILL,
        LD_NR, Insn(bpf.JMP | bpf.JEQ, 1, 0, 1),
        Insn(bpf.JMP | bpf.JEQ, 0, 1, bpf.X32_SYSCALL_BIT | 59),  # an x32 number
        RET_ALLOW, RET_KILL,
    )
    found = findings.about_filters(summary)
    assert summary.sections[0].x32 == "mixed"
    assert any("x32 syscalls reach the kernel" in f and "x32:" in f for f in found), found


def test_process_facts_of_this_process() -> None:
    facts = procfacts.read(os.getpid())
    assert facts.status["Name"] and "Seccomp" in facts.status
    assert facts.maps and facts.namespaces
    with open(__file__, "rb") as fh:
        mine = [f for f in procfacts.read(os.getpid()).fds if f.fd == fh.fileno()]
        assert mine and mine[0].kind == "file" and mine[0].size == os.path.getsize(__file__)
    assert procfacts.classify("anon_inode:[eventpoll]") == "epoll"
    assert procfacts.classify("anon_inode:kvm-vcpu:0") == "kvm-vcpu"
    assert procfacts.classify("/dev/net/tun") == "tap"
