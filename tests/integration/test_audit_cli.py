"""`runnc-py audit` on bad input (one clear line, the right exit status) and its offline
verbs: policy, profile, bpf, check, diff, compare."""

from __future__ import annotations

import ctypes
import json
import subprocess
from pathlib import Path

import pytest

from runnc_py.audit import program as bpf
from tests.conftest import RunCli, runnc_binary
from tests.unit.audit_programs import OCI_PROFILE, policy_program, spt_facts

PTRACE_SEIZE = 0x4206


def one_line_error(done: subprocess.CompletedProcess[str], status: int, *needles: str) -> str:
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_pid_that_does_not_exist(runnc: RunCli) -> None:
    one_line_error(runnc("audit", str((1 << 22) + 7)), 1, "no such process")


@pytest.mark.root
def test_process_without_a_filter_is_a_finding(runnc: RunCli) -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        done = runnc("audit", str(proc.pid))
        assert done.returncode == 0, done.stderr
        assert "Seccomp: 0" in done.stdout and "rules: none" in done.stdout
        doc = json.loads(runnc("audit", "--json", str(proc.pid)).stdout)
        assert doc["filters"] == [] and len(doc["reachable"]) > 300
        assert any("without any seccomp filter" in f for f in doc["findings"])
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.root
def test_process_we_may_not_trace(runnc: RunCli, guests: Path) -> None:
    """A guest someone else (here: this test) already traces."""
    proc = subprocess.Popen([*runnc_binary(), "exec", "--mem", "8", str(guests / "time.spt"),
                             "sleep=30"], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and b"sleeping" in proc.stdout.readline()
        libc = ctypes.CDLL(None, use_errno=True)
        libc.ptrace.argtypes = (ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
        assert libc.ptrace(PTRACE_SEIZE, proc.pid, None, None) == 0
        one_line_error(runnc("audit", str(proc.pid)), 1, f"pid {proc.pid}", "may not trace")
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"\x06\x00\x00\x00\x00\x00\xff", "not a whole number"),  # truncated
     (b"", "empty"),
     (bpf.serialize([bpf.Insn(0x15, 9, 0, 1), bpf.Insn(6, 0, 0, 0)]), "leaves the program"),
     (b"\x20\x00\x00\x00\x03\x00\x00\x00" + b"\x06\x00\x00\x00\x00\x00\xff\x7f", "aligned")],
)
def test_corrupt_bpf_file(runnc: RunCli, tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "f.bpf"
    path.write_bytes(content)
    one_line_error(runnc("audit", "bpf", str(path)), 1, str(path), needle)


def test_unknown_syscall_name(runnc: RunCli) -> None:
    one_line_error(runnc("audit", "check", "spt", "write(1)", "frobnicate(1)"), 1,
                   "unknown syscall 'frobnicate'")


def test_policy_that_does_not_parse(runnc: RunCli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[default\naction = 'kill_process'\n")
    one_line_error(runnc("audit", "policy", str(bad)), 1, "invalid TOML")
    bad.write_text('[default]\naction = "explode"\nwhy = "x"\n[[rules]]\nsyscall = "read"\n'
                   'why = "y"\n')
    one_line_error(runnc("audit", "policy", str(bad)), 1, "unknown action 'explode'")


def test_profile_that_does_not_parse(runnc: RunCli, tmp_path: Path) -> None:
    bad = tmp_path / "seccomp.json"
    bad.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], '
                   '"action": "SCMP_ACT_ALLOW", "args": [{"index": 9, "value": 1, '
                   '"op": "SCMP_CMP_EQ"}]}]}')
    one_line_error(runnc("audit", "profile", str(bad)), 1, "syscalls[0].args[0]", "index")
    bad.write_text("[1, 2")
    one_line_error(runnc("audit", "profile", str(bad)), 1, "not JSON")


def test_usage_errors_exit_2(runnc: RunCli) -> None:
    assert runnc("audit").returncode == 2
    assert runnc("audit", "--all", "123").returncode == 2


def test_error_goes_to_the_json_log(runnc: RunCli, tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    done = runnc("--log", str(log), "--log-format", "json", "audit", "bpf", str(tmp_path / "x"))
    assert done.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "cannot read BPF file" in entry["msg"]


def test_policy_report_text_json_markdown_and_disasm(runnc: RunCli) -> None:
    text = runnc("audit", "policy", "spt", "--net", "service0", "--disasm")
    assert text.returncode == 0, text.stderr
    assert "read if fd == 5" in text.stdout and "0000: ld [4]" in text.stdout
    doc = json.loads(runnc("audit", "policy", "hvt", "--json").stdout)
    assert doc["schema"] == "runnc-py-audit/1" and doc["verdict"] is None
    assert doc["sections"][0]["default"] == "kill_process"
    md = runnc("audit", "policy", "spt", "--markdown").stdout
    assert "| allow | `write` | fd == 1 |" in md


def test_bpf_file_and_profile_reports(runnc: RunCli, tmp_path: Path) -> None:
    raw = tmp_path / "spt.bpf"
    raw.write_bytes(policy_program("spt", spt_facts()))
    done = runnc("audit", "bpf", str(raw))
    assert done.returncode == 0 and "pread64 if fd == 6 && count == 512" in done.stdout
    profile = tmp_path / "config.json"
    profile.write_text(json.dumps({"ociVersion": "1.0.2", "linux": {"seccomp": OCI_PROFILE}}))
    done = runnc("audit", "profile", str(profile))
    assert done.returncode == 0, done.stderr
    assert "default: errno 1111" in done.stdout and "no_such_syscall_x" in done.stdout


def test_check_and_diff(runnc: RunCli, tmp_path: Path) -> None:
    done = runnc("audit", "check", "spt", "write(1, *, *)", "write(2, *, *)", "getpid")
    assert done.stdout.splitlines() == ["write(1, *, *) -> allow",
                                        "write(2, *, *) -> kill_process", "getpid -> kill_process"]
    raw = tmp_path / "spt.bpf"
    raw.write_bytes(policy_program("spt", spt_facts(net=False, block=False)))
    same = runnc("audit", "diff", "spt", str(raw))
    assert same.returncode == 0 and "mean the same" in same.stdout, same.stdout + same.stderr
    differ = runnc("audit", "diff", "--net", "n0", "spt", f"bpf:{raw}")
    assert differ.returncode == 3
    assert "read if fd == 5: A allow, B kill_process" in differ.stdout
    assert "write if fd == 5: A allow, B kill_process" in differ.stdout


def test_compare_table(runnc: RunCli, tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(OCI_PROFILE))
    done = runnc("audit", "compare", str(profile), "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["subject"]: r for r in json.loads(done.stdout)["rows"]}
    assert rows["spt guest (1 net, 1 block)"]["reachable"] == 9
    assert rows["unconfined process"]["constrained"] == 0
    assert rows["Docker default profile"]["reachable"] > 9
