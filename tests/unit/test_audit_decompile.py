"""The decompiler on ours, libseccomp's and hand-written programs: the rules it reads back,
and agreement with the emulator on thousands of concrete calls (the kernel-side agreement is
tests/integration/test_audit_kernel.py)."""

from __future__ import annotations

import random

import pytest

from runnc_py.audit import program as bpf
from runnc_py.audit import semantics
from runnc_py.audit.callspec import answer, parse_call
from runnc_py.audit.diff import differences
from runnc_py.audit.emulator import Call, run
from runnc_py.audit.rules import summarize
from runnc_py.errors import RunncError
from tests.unit.audit_programs import (
    CAP,
    edge_cases,
    policy_program,
    profile_program,
    spt_facts,
)


def rules_of(program: bytes) -> dict[str, list[str]]:
    summary = summarize(semantics.of_programs([bpf.parse(program)]))
    out: dict[str, list[str]] = {"default": [summary.sections[0].default]}
    for r in summary.sections[0].rules:
        if r.syscall.startswith("x32:"):
            continue
        out.setdefault(r.action, []).append(r.text())
    return out


def test_spt_policy_reads_back_as_exactly_its_rules() -> None:
    got = rules_of(policy_program("spt", spt_facts()))
    assert got["default"] == ["kill_process"]
    assert sorted(got["allow"]) == sorted([
        "read if fd == 5",
        "write if fd in {1, 5}",
        f"pread64 if fd == 6 && count == 512 && offset <= {CAP - 512:#x}",
        f"pwrite64 if fd == 6 && count == 512 && offset <= {CAP - 512:#x}",
        "arch_prctl if code == 4098",
        "clock_gettime if clockid in {0, 1}",
        "exit_group",
        "epoll_pwait if epfd == 3",
        "timerfd_settime if fd == 4",
    ])
    assert set(got) == {"default", "allow"}


def test_spt_without_devices_and_hvt_monitor() -> None:
    bare = rules_of(policy_program("spt", spt_facts(net=False, block=False)))
    assert "write if fd == 1" in bare["allow"] and not any("read" in r for r in bare["allow"])
    hvt = rules_of(policy_program("hvt", spt_facts(net=False, block=False)))
    assert "ioctl if fd == 7 && request == 44672" in hvt["allow"]
    assert "write if fd in {1, 2}" in hvt["allow"]


def test_architecture_check_and_x32() -> None:
    summary = summarize(semantics.of_programs([bpf.parse(policy_program("spt", spt_facts()))]))
    assert summary.arch_checked and summary.other_arches == "kill_process"
    assert summary.sections[0].x32 == "kill_process"
    assert summary.reachable == sorted(["read", "write", "pread64", "pwrite64", "arch_prctl",
                                        "clock_gettime", "exit_group", "epoll_pwait",
                                        "timerfd_settime"])
    assert "exit_group" not in summary.constrained and len(summary.constrained) == 8


def test_libseccomp_profile_rules_with_64_bit_splits_and_or_rules() -> None:
    got = rules_of(profile_program())
    assert got["default"] == ["errno 1111"]
    assert "write if fd == 1 && count <= 4096" in got["allow"]
    assert f"pread64 if offset <= {CAP - 512:#x}" in got["allow"]
    assert "dup" in got["allow"]  # arg0 > 1 OR arg0 < 100: every value
    assert "personality if persona in {0, 4294967295}" in got["allow"]
    assert "socket if domain != 40" in got["allow"]
    assert got["errno 1222"] == ["sched_yield"]
    assert got["trap"] == ["read if fd >= 2"]
    assert got["kill_process"] == ["fstat"] and got["log"] == ["uname"]


def test_profile_from_an_unknown_action_or_bad_json_is_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from runnc_py.audit.profile import compile_profile, load_profile

    with pytest.raises(RunncError, match="unknown action 'SCMP_ACT_NOPE'"):
        compile_profile({"defaultAction": "SCMP_ACT_NOPE"}, "p.json")
    bad = tmp_path / "p.json"
    bad.write_text("{not json")
    with pytest.raises(RunncError, match="not JSON"):
        load_profile(str(bad))
    bad.write_text('{"ociVersion": "1.0.2", "linux": {}}')
    with pytest.raises(RunncError, match=r"no linux\.seccomp"):
        load_profile(str(bad))


def candidates(insns: tuple[bpf.Insn, ...]) -> list[int]:
    """32-bit words worth trying: every constant of the program, its neighbours, extremes."""
    out = {0, 1, 2, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000}
    for insn in insns:
        out |= {insn.k, (insn.k + 1) & 0xFFFFFFFF, (insn.k - 1) & 0xFFFFFFFF}
    return sorted(out)


def random_calls(insns: tuple[bpf.Insn, ...], count: int, seed: int) -> list[Call]:
    rng = random.Random(seed)
    words = candidates(insns)
    nrs = [w for w in words if w < 1024 or w & bpf.X32_SYSCALL_BIT] + [39, 110, 231]
    arches = [bpf.AUDIT_ARCH_X86_64, 0x40000003, 0x12345678]
    calls = []
    for _ in range(count):
        args = tuple(rng.choice(words) | (rng.choice([0, 0, 1, rng.choice(words)]) << 32)
                     for _ in range(6))
        arch = bpf.AUDIT_ARCH_X86_64 if rng.random() < 0.8 else rng.choice(arches)
        calls.append(Call(nr=rng.choice(nrs), args=args, arch=arch))
    return calls


def all_programs() -> dict[str, bytes]:
    return {
        "spt": policy_program("spt", spt_facts()),
        "spt-bare": policy_program("spt", spt_facts(net=False, block=False)),
        "hvt": policy_program("hvt", spt_facts()),
        "oci-profile": profile_program(),
        **edge_cases(),
    }


@pytest.mark.parametrize("name", sorted(all_programs()))
def test_decompiled_rules_agree_with_the_emulator(name: str) -> None:
    insns = bpf.parse(all_programs()[name])
    sem = semantics.of_programs([insns])
    assert sem.complete
    for call in random_calls(insns, 3000, seed=len(name)):
        words = call.words()
        assert sem.decide(words) == run(insns, call), (name, call)


def test_paths_partition_the_input_space() -> None:
    """Each concrete call follows exactly one path."""
    insns = bpf.parse(profile_program())
    sem = semantics.of_programs([insns])
    for call in random_calls(insns, 500, seed=7):
        words = call.words()
        assert sum(p.matches(words) for p in sem.paths) == 1, call


def test_diff_by_meaning() -> None:
    spt = semantics.of_programs([bpf.parse(policy_program("spt", spt_facts()))])
    same = semantics.of_programs([bpf.parse(policy_program("spt", spt_facts()))])
    assert differences(spt, same) == []
    fewer = semantics.of_programs([bpf.parse(policy_program("spt", spt_facts(block=False)))])
    diffs = differences(spt, fewer)
    assert {d.syscall for d in diffs} == {"pread64", "pwrite64"}
    assert all(d.left == "allow" and d.right == "kill_process" for d in diffs)
    assert any("offset <=" in " ".join(d.conditions) for d in diffs)


def test_diff_of_a_chain_is_the_most_restrictive() -> None:
    spt = bpf.parse(policy_program("spt", spt_facts()))
    bare = bpf.parse(policy_program("spt", spt_facts(net=False, block=False)))
    chain = semantics.of_programs([spt, bare])
    assert differences(chain, semantics.of_programs([bare])) == []


def test_check_answers_concrete_and_wildcard_calls() -> None:
    sem = semantics.of_programs([bpf.parse(policy_program("spt", spt_facts()))])
    assert answer(sem, parse_call("write(1, 0, 5)")) == [("allow", ())]
    assert answer(sem, parse_call("write(2, *, *)")) == [("kill_process", ())]
    mixed = dict(answer(sem, parse_call("pread64(6, *, 512, *)")))
    assert mixed == {"allow": (f"offset <= {CAP - 512:#x}",),
                     "kill_process": (f"offset >= {CAP - 511:#x}",)}


@pytest.mark.parametrize(
    ("text", "needle"),
    [("nosuch(1)", "unknown syscall 'nosuch'"), ("write(x)", "not a number"),
     ("write(1,2,3,4,5,6,7)", "at most 6"), ("write(1", "not a call"),
     ("write(0x10000000000000000)", "64 bits")],
)
def test_bad_calls_are_one_line(text: str, needle: str) -> None:
    with pytest.raises(RunncError, match=needle.replace("(", r"\(")):
        parse_call(text)
