"""`runnc-py audit`: what a process (or a policy, profile or BPF file) really lets through.

    audit ID|PID [--json|--markdown] [--disasm]   live process or container; exit 0/3
    audit --all                                   every container under --root
    audit policy spt|hvt|FILE [--net N] [--block N[:CAP[:BS]]]
    audit profile config.json|seccomp.json        an OCI seccomp profile
    audit bpf FILE                                raw classic BPF
    audit check FILTER 'write(1, *, *)' ...       the action each call gets
    audit diff A B                                what one allows that the other does not
    audit compare [DOCKER_PROFILE]                the reachable-kernel table

Exit status: 0 match (or no difference), 3 drift, 1 error (one line), 2 usage.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from runnc_py.commands.policy_cmd import example_facts
from runnc_py.errors import RunncError

DRIFT = 3
_FORMATS = ("text", "json", "markdown")


def _output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--json", "fmt", flag_value="json", help="Machine-readable output.")(func)
    func = click.option("--markdown", "fmt", flag_value="markdown", help="Markdown output.")(func)
    func = click.option("--text", "fmt", flag_value="text", default=True, hidden=True)(func)
    return func


def _device_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--net", "nets", multiple=True, metavar="NAME",
                        help="Policies: attach a net device.")(func)
    func = click.option("--block", "blocks", multiple=True, metavar="NAME[:CAPACITY[:BS]]",
                        help="Policies: attach a block device (defaults 64M, 512).")(func)
    return func


def _root(ctx: click.Context) -> str:
    from runnc_py.globals import Globals

    g = ctx.find_object(Globals)
    return g.root if g is not None else "/run/runnc-py"


class AuditGroup(click.Group):
    """`audit ID` and `audit --all` run the hidden `live` command; other words are verbs."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = next((a for a in args if not a.startswith("-")), None)
        asks_help = "-h" in args or "--help" in args
        if args and not (first is None and asks_help) and first not in self.commands:
            args = ["live", *args]
        return super().parse_args(ctx, args)


@click.group(cls=AuditGroup)
def audit() -> None:
    """Prove what a guest can really do to the host (docs/audit.md).

    \b
    runnc-py audit ID|PID [--json|--markdown] [--disasm]   a live container or process:
                                                           exit 0 match, 3 drift
    runnc-py audit --all                                   every container under --root
    """


def _emit(doc: dict[str, Any], fmt: str, disasm: str | None = None) -> None:
    from runnc_py.audit import report

    if fmt == "json":
        if disasm is not None:
            doc = doc | {"disasm": disasm.splitlines()}
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(report.markdown(doc) if fmt == "markdown" else report.text(doc))
    if disasm is not None:
        click.echo(("\n```\n" + disasm + "\n```") if fmt == "markdown" else "\n" + disasm)


def _disasm(source: Any) -> str:
    from runnc_py.audit.disasm import disassemble

    parts = []
    for i, insns in enumerate(source.parsed()):
        parts.append(f"; filter {i} ({len(insns)} instructions)\n{disassemble(insns)}")
    return "\n".join(parts) if parts else "; no filter"


def _offline(source: Any, fmt: str, disasm: bool) -> None:
    from runnc_py.audit import report
    from runnc_py.audit.rules import summarize

    doc = report.document(source, summarize(source.semantics()), None)
    _emit(doc, fmt, _disasm(source) if disasm else None)


def _live_doc(source: Any) -> dict[str, Any]:
    from runnc_py.audit import report
    from runnc_py.audit.rules import summarize
    from runnc_py.audit.verdict import judge

    sem = source.semantics()
    verdict = None
    if source.expected is not None:
        verdict = judge(sem, source.expected.semantics(), source.expected.label)
    return report.document(source, summarize(sem), verdict)


def _status(doc: dict[str, Any]) -> int:
    verdict = doc["verdict"]
    return 0 if verdict is None or verdict["match"] else DRIFT


@audit.command(hidden=True)
@click.argument("target", required=False)
@click.option("--all", "all_", is_flag=True, help="Every container under --root, one row each.")
@click.option("--disasm", is_flag=True, help="Also print the filters as classic BPF.")
@_output_options
@click.pass_context
def live(ctx: click.Context, target: str | None, all_: bool, disasm: bool, fmt: str) -> None:
    """Audit a running container (ID) or process (PID)."""
    from runnc_py.audit import sources
    from runnc_py.oci.state import Store

    root = _root(ctx)
    if all_:
        if target:
            raise click.UsageError("--all takes no ID or PID")
        ctx.exit(_all(root, fmt))
    if not target:
        raise click.UsageError("give a container ID or a PID (or --all)")
    if target.isdigit() and not Store(root).exists(target):
        source = sources.from_pid(int(target))
    else:
        source = sources.from_container(root, target)
    doc = _live_doc(source)
    _emit(doc, fmt, _disasm(source) if disasm else None)
    ctx.exit(_status(doc))


def _all(root: str, fmt: str) -> int:
    from runnc_py.audit import sources
    from runnc_py.oci.state import Store

    rows: list[dict[str, Any]] = []
    for cid in Store(root).ids():
        try:
            doc = _live_doc(sources.from_container(root, cid))
        except RunncError as exc:
            rows.append({"id": cid, "pid": None, "verdict": "error", "differences": None,
                         "detail": exc.line()})
            continue
        verdict = doc["verdict"]
        rows.append({
            "id": cid,
            "pid": doc["subject"]["pid"],
            "verdict": "none" if verdict is None else "match" if verdict["match"] else "drift",
            "differences": None if verdict is None else len(verdict["differences"]),
            "detail": "; ".join(doc["findings"][:2]),
        })
    if fmt == "json":
        click.echo(json.dumps({"schema": "runnc-py-audit-all/1", "containers": rows}, indent=2))
    else:
        head = ("id", "pid", "verdict", "differences", "detail")
        lines = [head, *((str(r["id"]), str(r["pid"] or "-"), r["verdict"],
                          "-" if r["differences"] is None else str(r["differences"]),
                          r["detail"]) for r in rows)]
        if fmt == "markdown":
            click.echo("| " + " | ".join(head) + " |\n" + "|---" * len(head) + "|")
            for line in lines[1:]:
                click.echo("| " + " | ".join(line) + " |")
        else:
            widths = [max(len(line[i]) for line in lines) for i in range(4)]
            for line in lines:
                click.echo("  ".join(c.ljust(w) for c, w in zip(line[:4], widths, strict=True))
                           + "  " + line[4])
    if any(r["verdict"] == "error" for r in rows):
        return 1
    return DRIFT if any(r["verdict"] == "drift" for r in rows) else 0


@audit.command("policy")
@click.argument("name")
@_device_options
@click.option("--disasm", is_flag=True, help="Also print the program as classic BPF.")
@_output_options
def policy_(name: str, nets: tuple[str, ...], blocks: tuple[str, ...], disasm: bool,
            fmt: str) -> None:
    """Audit what policy NAME (spt, hvt or a file) compiles to for a device set."""
    from runnc_py.audit import sources

    facts = example_facts(nets, blocks)
    _offline(sources.from_policy(name, facts, sources.describe_facts(facts)), fmt, disasm)


@audit.command()
@click.argument("path")
@click.option("--disasm", is_flag=True, help="Also print the program as classic BPF.")
@_output_options
def profile(path: str, disasm: bool, fmt: str) -> None:
    """Audit an OCI seccomp profile (config.json or a bare profile such as Docker's)."""
    from runnc_py.audit import sources

    _offline(sources.from_profile(path), fmt, disasm)


@audit.command("bpf")
@click.argument("path")
@click.option("--disasm", is_flag=True, help="Also print the program as classic BPF.")
@_output_options
def bpf_(path: str, disasm: bool, fmt: str) -> None:
    """Audit a raw classic BPF seccomp program (struct sock_filter[])."""
    from runnc_py.audit import sources

    _offline(sources.from_bpf(path), fmt, disasm)


@audit.command()
@click.argument("filter_spec", metavar="FILTER")
@click.argument("calls", nargs=-1, required=True, metavar="CALL...")
@_device_options
@_output_options
@click.pass_context
def check(ctx: click.Context, filter_spec: str, calls: tuple[str, ...], nets: tuple[str, ...],
          blocks: tuple[str, ...], fmt: str) -> None:
    """Print the action FILTER gives each CALL, e.g. 'write(2, *, *)' (* = any value)."""
    from runnc_py.audit import emulator, sources
    from runnc_py.audit import program as bpf
    from runnc_py.audit.callspec import answer, parse_call

    parsed = [parse_call(c) for c in calls]  # every call checked before any work
    source = sources.resolve_spec(filter_spec, _root(ctx), example_facts(nets, blocks))
    sem = source.semantics()
    programs = source.parsed()
    results = []
    for call in parsed:
        answers = answer(sem, call)
        concrete = call.concrete()
        emulated = (bpf.action_name(emulator.run_chain(programs, concrete))
                    if concrete is not None else None)
        results.append({"call": call.text, "nr": call.nr, "emulated": emulated,
                        "answers": [{"action": a, "conditions": list(c)} for a, c in answers]})
    if fmt == "json":
        click.echo(json.dumps({"filter": source.label, "calls": results}, indent=2))
        return
    for r in results:
        parts = [a["action"] + (f" if {' && '.join(a['conditions'])}" if a["conditions"] else "")
                 for a in r["answers"]]
        line = f"{r['call']} -> {'; '.join(parts)}"
        click.echo(f"- `{r['call']}` -> {'; '.join(parts)}" if fmt == "markdown" else line)


@audit.command("diff")
@click.argument("left", metavar="A")
@click.argument("right", metavar="B")
@_device_options
@_output_options
@click.pass_context
def diff_(ctx: click.Context, left: str, right: str, nets: tuple[str, ...],
          blocks: tuple[str, ...], fmt: str) -> None:
    """What A and B answer differently, by meaning (exit 3 when they differ)."""
    from runnc_py.audit import sources
    from runnc_py.audit.diff import differences

    facts = example_facts(nets, blocks)
    a = sources.resolve_spec(left, _root(ctx), facts)
    b = sources.resolve_spec(right, _root(ctx), facts)
    diffs = differences(a.semantics(), b.semantics())
    rows = [{"arch": d.arch, "syscall": d.syscall, "conditions": list(d.conditions),
             "a": d.left, "b": d.right} for d in diffs]
    if fmt == "json":
        click.echo(json.dumps({"a": a.label, "b": b.label, "same": not rows,
                               "differences": rows}, indent=2))
    elif not rows:
        click.echo(f"{a.label} and {b.label} mean the same")
    else:
        click.echo(f"A = {a.label}, B = {b.label}: {len(rows)} difference(s)")
        if fmt == "markdown":
            click.echo("\n| arch | syscall | conditions | A | B |\n|---|---|---|---|---|")
        for r in rows:
            conds = " && ".join(r["conditions"])
            if fmt == "markdown":
                click.echo(f"| {r['arch']} | `{r['syscall']}` | {conds or '-'} | {r['a']} |"
                           f" {r['b']} |")
            else:
                where = "" if r["arch"] == "x86_64" else f"[{r['arch']}] "
                click.echo(f"  {where}{r['syscall']}" + (f" if {conds}" if conds else "")
                           + f": A {r['a']}, B {r['b']}")
    ctx.exit(DRIFT if rows else 0)


@audit.command()
@click.argument("docker_profile", required=False, metavar="[DOCKER_PROFILE]")
@_output_options
def compare(docker_profile: str | None, fmt: str) -> None:
    """One table: syscalls reachable and how many are argument-constrained, for an spt guest,
    the hvt monitor, Docker's default profile (given as a file) and an unconfined process."""
    from runnc_py.audit import compare as table
    from runnc_py.audit import sources

    facts = example_facts(("service0",), ("storage",))
    rows = [
        table.row("spt guest (1 net, 1 block)",
                  sources.from_policy("spt", facts, sources.describe_facts(facts))),
        table.row("hvt monitor (1 net, 1 block)",
                  sources.from_policy("hvt", facts, sources.describe_facts(facts))),
    ]
    if docker_profile:
        rows.append(table.row("Docker default profile", sources.from_profile(docker_profile)))
    rows.append(table.row("unconfined process", sources.Source(label="unconfined",
                                                                 kind="unconfined")))
    if fmt == "json":
        click.echo(json.dumps({"rows": [r.json() for r in rows]}, indent=2))
    else:
        click.echo(table.markdown(rows) if fmt == "markdown" else table.text(rows))
    sys.stdout.flush()
