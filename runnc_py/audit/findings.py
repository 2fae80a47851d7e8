"""Facts worth a security reviewer's attention, as one line each. Pure."""

from __future__ import annotations

from runnc_py.audit.procfacts import ProcessFacts
from runnc_py.audit.rules import X32_MIRRORS, Summary
from runnc_py.audit.semantics import REACHING


def about_filters(summary: Summary) -> list[str]:
    out = []
    if not summary.complete:
        out.append("analysis incomplete: the program has too many paths; rules are partial")
    if summary.filters and not summary.arch_checked:
        out.append("no architecture check: syscalls of another ABI are judged by number alone")
    for section in summary.sections:
        if not section.x32 or section.x32 == X32_MIRRORS:
            continue
        if section.x32.split()[0] in ("allow", "log"):
            out.append(f"every x32 syscall (nr | 0x40000000) gets {section.x32}: the filter "
                       "is bypassed through the x32 ABI")
        elif section.x32 == "mixed":
            native = {r.syscall for r in section.rules
                      if r.action in REACHING and not r.syscall.startswith("x32:")}
            extra = sorted({r.syscall for r in section.rules if r.action in REACHING
                            and r.syscall.startswith("x32:")
                            and r.syscall.removeprefix("x32:") not in native})
            if extra:
                out.append("x32 syscalls reach the kernel where their x86_64 twins do not: "
                           + ", ".join(extra[:8]))
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
