"""Facts worth a security reviewer's attention, as one line each. Pure."""

from __future__ import annotations

from runnc_py.audit.procfacts import ProcessFacts
from runnc_py.audit.rules import Summary


def about_filters(summary: Summary) -> list[str]:
    out = []
    if not summary.complete:
        out.append("analysis incomplete: the program has too many paths; rules are partial")
    if summary.filters and not summary.arch_checked:
        out.append("no architecture check: syscalls of another ABI are judged by number alone")
    for section in summary.sections:
        if section.x32 and section.x32.split()[0] in ("allow", "log", "mixed"):
            out.append(f"x32 syscalls (nr | 0x40000000) get {section.x32}: the filter can be"
                       " bypassed through the x32 ABI")
    return out


def about_process(facts: ProcessFacts) -> list[str]:
    out = []
    status = facts.status
    if facts.seccomp_mode == 0:
        out.append("Seccomp: 0 - the process runs without any seccomp filter")
    if status.get("NoNewPrivs", "1") != "1":
        out.append("NoNewPrivs: 0 - an execve could gain privileges")
    if int(status.get("CapEff", "0") or "0", 16):
        out.append(f"effective capabilities: {status['CapEff']}")
    uid = status.get("Uid", "").split()
    if uid and uid[0] == "0":
        out.append("runs as uid 0 (root)")
    wx = facts.writable_executable()
    if wx:
        out.append(f"{len(wx)} writable+executable mapping(s): " + ", ".join(
            f"{m.start:#x}-{m.end:#x}" for m in wx[:4]))
    backed = facts.file_backed()
    if backed:
        out.append(f"{len(backed)} file-backed mapping(s), e.g. {backed[0].path}")
    if facts.shared_namespaces:
        out.append("shares namespaces with pid 1: " + ", ".join(facts.shared_namespaces))
    return out
