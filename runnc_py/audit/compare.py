"""`audit compare`: how much of the kernel each kind of confinement leaves reachable. Pure
apart from compiling the sources it is handed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runnc_py.audit.rules import summarize
from runnc_py.audit.sources import Source


@dataclass(frozen=True)
class Row:
    subject: str
    reachable: int
    constrained: int
    default: str
    instructions: int

    def json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def row(subject: str, source: Source) -> Row:
    summary = summarize(source.semantics())
    native = summary.sections[0]
    return Row(
        subject=subject,
        reachable=len(summary.reachable),
        constrained=len(summary.constrained),
        default=native.default if source.programs else "allow (no filter)",
        instructions=sum(len(p) // 8 for p in source.programs),
    )


HEADERS = ("subject", "syscalls reachable", "argument-constrained", "default action",
           "BPF instructions")


def _cells(r: Row) -> tuple[str, ...]:
    return (r.subject, str(r.reachable), str(r.constrained), r.default, str(r.instructions))


def text(rows: list[Row]) -> str:
    table = [HEADERS, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in table)


def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines)
