"""`write(2, *, *)` -> a query region, and what a filter chain answers for it. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from runnc_py.audit import intervals as iv
from runnc_py.audit import names
from runnc_py.audit import program as bpf
from runnc_py.audit.emulator import Call
from runnc_py.audit.rules import arg_name, merge_conditions
from runnc_py.audit.semantics import Semantics, action_of, overlap
from runnc_py.audit.symbolic import Path, render
from runnc_py.errors import RunncError

_CALL = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(?:\((.*)\))?\s*$")


@dataclass(frozen=True)
class CallSpec:
    text: str
    name: str
    nr: int
    args: tuple[int | None, ...]  # None: any value

    def concrete(self) -> Call | None:
        if any(a is None for a in self.args):
            return None
        return Call(nr=self.nr, args=tuple(a or 0 for a in self.args))

    def region(self) -> Path:
        ranges = [iv.FULL32] * 16
        ranges[bpf.NR] = ((self.nr, self.nr),)
        ranges[bpf.ARCH] = ((bpf.AUDIT_ARCH_X86_64,) * 2,)
        for i, value in enumerate(self.args):
            if value is not None:
                ranges[bpf.arg_field(i, False)] = ((value & iv.U32,) * 2,)
                ranges[bpf.arg_field(i, True)] = ((value >> 32,) * 2,)
        return Path(tuple(ranges), (), ("k", 0))


def parse_call(text: str) -> CallSpec:
    match = _CALL.match(text)
    if not match:
        raise RunncError("not a call like write(1, *, 5)", where=text)
    name, inner = match.group(1), match.group(2) or ""
    nr = int(name[1:]) if name.startswith("#") else names.number_of(name)
    if nr is None:
        raise RunncError(f"unknown syscall {name!r} on x86_64", where=text)
    parts = [p.strip() for p in inner.split(",")] if inner.strip() else []
    if len(parts) > 6:
        raise RunncError("a syscall has at most 6 arguments", where=text)
    args: list[int | None] = []
    for part in parts:
        if part in ("*", "_", "..."):
            args.append(None)
            continue
        try:
            value = int(part, 0)
        except ValueError:
            raise RunncError(f"argument {part!r} is not a number or *", where=text) from None
        if not -(1 << 63) <= value < 1 << 64:
            raise RunncError(f"argument {part} does not fit in 64 bits", where=text)
        args.append(value & iv.U64)
    args += [None] * (6 - len(args))  # unnamed trailing arguments: any value
    return CallSpec(text=text.strip(), name=name, nr=nr, args=tuple(args))


def answer(sem: Semantics, call: CallSpec) -> list[tuple[str, tuple[str, ...]]]:
    """(action, conditions on the open arguments) for every answer CALL can get."""
    query = call.region()
    found: dict[str, list[Path]] = {}
    for path in sem.paths:
        both = overlap(path, query)
        if both is None:
            continue
        value = action_of(path)
        action = bpf.action_name(value) if value is not None else f"return {render(path.ret)}"
        found.setdefault(action, []).append(Path(both[0], both[1], path.ret))
    out = []
    for action, regions in found.items():
        if len(found) == 1:
            out.append((action, ()))
            continue
        for conds in merge_conditions(regions, call.name):
            fixed = [c for c in conds if not _pinned(c, call)]
            out.append((action, tuple(fixed)))
    return out


def _pinned(condition: str, call: CallSpec) -> bool:
    """A condition that only restates a value the call already fixed."""
    for i, value in enumerate(call.args):
        if value is not None and condition == iv.describe(arg_name(call.name, i),
                                                          ((value, value),), iv.U64):
            return True
    return False
