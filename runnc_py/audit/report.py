"""One audit as a JSON-able document (schema in docs/audit.md), and its text and Markdown
renderings. Pure."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from runnc_py.audit import findings
from runnc_py.audit.procfacts import ProcessFacts
from runnc_py.audit.rules import X32_MIRRORS, Summary
from runnc_py.audit.sources import Source
from runnc_py.audit.verdict import Verdict

SCHEMA = "runnc-py-audit/1"


def document(source: Source, summary: Summary, verdict: Verdict | None) -> dict[str, Any]:
    facts = source.process
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "subject": {
            "label": source.label,
            "kind": source.kind,
            "container": source.container,
            "pid": facts.pid if facts else None,
        },
        "notes": list(source.notes),
        "pause_ms": None if source.pause_seconds is None else round(
            source.pause_seconds * 1000, 3),
        "filters": source.filters_json(),
        "complete": summary.complete,
        "arch_checked": summary.arch_checked,
        "other_arches": summary.other_arches,
        "sections": [
            {
                "arch": s.arch,
                "default": s.default,
                "x32": s.x32,
                "rules": [asdict(r) | {"conditions": list(r.conditions)} for r in s.rules],
            }
            for s in summary.sections
        ],
        "reachable": summary.reachable,
        "constrained": summary.constrained,
        "process": _process(facts) if facts else None,
        "findings": findings.about_filters(summary) + (
            findings.about_process(facts) if facts else []),
        "verdict": None,
    }
    if verdict is not None:
        doc["verdict"] = {
            "expected": verdict.expected,
            "match": verdict.match,
            "complete": verdict.complete,
            "differences": [
                {"arch": d.arch, "syscall": d.syscall, "conditions": list(d.conditions),
                 "live": d.left, "expected": d.right}
                for d in verdict.differences
            ],
        }
    return doc


def _process(facts: ProcessFacts) -> dict[str, Any]:
    return {
        "status": facts.status,
        "fds": [{k: v for k, v in asdict(f).items() if v is not None} for f in facts.fds],
        "writable_executable": [f"{m.start:#x}-{m.end:#x} {m.perms} {m.path}".strip()
                                for m in facts.writable_executable()],
        "file_backed": sorted({m.path for m in facts.file_backed()}),
        "mappings": len(facts.maps),
        "namespaces": facts.namespaces,
        "shared_with_pid1": facts.shared_namespaces,
        "cgroup": facts.cgroup,
    }


def text(doc: dict[str, Any]) -> str:
    out = [f"audit of {doc['subject']['label']}"]
    out += [f"  {n}" for n in doc["notes"]]
    proc = doc["process"]
    if proc:
        st = proc["status"]
        out.append("process: " + ", ".join(
            f"{k} {st[k]}" for k in ("Name", "Seccomp", "Seccomp_filters", "NoNewPrivs", "CapEff",
                                     "CapBnd", "Uid", "Threads") if k in st))
        out.append("  fds: " + ", ".join(
            f"{f['fd']}={f['kind']}" + (f"({f['iface']})" if "iface" in f else "")
            for f in proc["fds"]))
        out.append(f"  mappings: {proc['mappings']}, writable+executable: "
                   f"{len(proc['writable_executable'])}, file-backed: {len(proc['file_backed'])}")
        out.append("  namespaces shared with pid 1: " + (
            ", ".join(proc["shared_with_pid1"]) or "none"))
        if proc["cgroup"]:
            out.append(f"  cgroup: {proc['cgroup'][0]}" + (
                f" (+{len(proc['cgroup']) - 1})" if len(proc["cgroup"]) > 1 else ""))
    if doc["pause_ms"] is not None:
        out.append(f"paused for {doc['pause_ms']:.3f} ms to read {len(doc['filters'])} filter(s)")
    out.append(f"filters: {len(doc['filters'])}" + "".join(
        f"\n  #{f['index']}: {f['instructions']} instructions, sha256 {f['sha256'][:16]}"
        for f in doc["filters"]))
    out += _sections_text(doc)
    out.append(f"reachable syscalls: {len(doc['reachable'])}, argument-constrained: "
               f"{len(doc['constrained'])}")
    for finding in doc["findings"]:
        out.append(f"finding: {finding}")
    verdict = doc["verdict"]
    if verdict is not None:
        if verdict["match"]:
            out.append(f"verdict: MATCH - the live filters mean exactly {verdict['expected']}")
        else:
            out.append(f"verdict: DRIFT from {verdict['expected']} "
                       f"({len(verdict['differences'])} difference(s))")
            out += [f"  {d['syscall']}{_if(d['conditions'])}: live {d['live']}, expected "
                    f"{d['expected']}" + ("" if d["arch"] == "x86_64" else f" [{d['arch']}]")
                    for d in verdict["differences"]]
    return "\n".join(out)


def _if(conds: list[str]) -> str:
    return f" if {' && '.join(conds)}" if conds else ""


def _shown(section: dict[str, Any]) -> list[dict[str, Any]]:
    """The rules to print: x32 copies of the x86_64 rules only when they differ (JSON keeps
    them all)."""
    if section["x32"] != X32_MIRRORS:
        return list(section["rules"])
    return [r for r in section["rules"] if not r["syscall"].startswith("x32:")]


def _sections_text(doc: dict[str, Any]) -> list[str]:
    out = []
    if not doc["filters"]:
        return ["rules: none (unconfined: every syscall is allowed)"]
    if doc["arch_checked"]:
        arches = ", ".join(s["arch"] for s in doc["sections"])
        out.append(f"architecture check: {arches}; any other architecture -> "
                   f"{doc['other_arches']}")
    for s in doc["sections"]:
        out.append(f"[{s['arch']}] default: {s['default']}" + (
            f"; x32 syscalls: {s['x32']}" if s["x32"] else ""))
        by_action: dict[str, list[dict[str, Any]]] = {}
        for r in _shown(s):
            by_action.setdefault(r["action"], []).append(r)
        for action, rules in by_action.items():
            out.append(f"  {action}:")
            out += [f"    {r['syscall']}{_if(r['conditions'])}" for r in rules]
    return out


def markdown(doc: dict[str, Any]) -> str:
    out = [f"## Audit of {doc['subject']['label']}", ""]
    out += [f"- {n}" for n in doc["notes"]]
    if doc["pause_ms"] is not None:
        out.append(f"- paused {doc['pause_ms']:.3f} ms to read {len(doc['filters'])} filter(s)")
    out.append(f"- reachable syscalls: {len(doc['reachable'])}, argument-constrained: "
               f"{len(doc['constrained'])}")
    out += [f"- **finding**: {f}" for f in doc["findings"]]
    for s in doc["sections"]:
        out += ["", f"### {s['arch']} (default: {s['default']}"
                + (f"; x32: {s['x32']}" if s["x32"] else "") + ")", "",
                "| action | syscall | conditions |", "|---|---|---|"]
        out += [f"| {r['action']} | `{r['syscall']}` | {' && '.join(r['conditions']) or '-'} |"
                for r in _shown(s)]
    verdict = doc["verdict"]
    if verdict is not None:
        out += ["", f"**Verdict**: {'MATCH' if verdict['match'] else 'DRIFT'} "
                f"against {verdict['expected']}"]
        if verdict["differences"]:
            out += ["", "| syscall | conditions | live | expected |", "|---|---|---|---|"]
            out += [f"| `{d['syscall']}` | {' && '.join(d['conditions']) or '-'} | {d['live']} |"
                    f" {d['expected']} |" for d in verdict["differences"]]
    return "\n".join(out)
