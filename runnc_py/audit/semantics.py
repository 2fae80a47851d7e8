"""What a chain of filters means: one list of paths (a partition of all inputs) and the
operations on it that the report, the diff and the verdict share. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runnc_py.audit import intervals as iv
from runnc_py.audit import program as bpf
from runnc_py.audit.program import Insn
from runnc_py.audit.symbolic import Path, Pred, _predicates_possible, decompile

ALLOW = bpf.ACTION_VALUES["allow"]
REACHING = ("allow", "log", "trace", "user_notif")  # the call can reach the kernel's code


@dataclass
class Semantics:
    """A filter chain as paths; `filters` is the number of programs (0: unconfined)."""

    paths: list[Path]
    filters: int
    complete: bool = True

    def decide(self, words: Sequence[int]) -> int | None:
        for path in self.paths:
            if path.matches(words):
                return path.result(words)
        return None


def action_of(path: Path) -> int | None:
    """The path's constant return value (None: RET A of a loaded word)."""
    return path.ret[1] if path.ret[0] == "k" else None


def reaches(value: int | None) -> bool:
    return value is not None and bpf.action_name(value).split()[0] in REACHING


def unconfined() -> Semantics:
    return Semantics([Path((iv.FULL32,) * 16, (), ("k", ALLOW))], filters=0)


def of_programs(programs: Sequence[Sequence[Insn]]) -> Semantics:
    """The chain's meaning: per input, the most restrictive of the filters' answers."""
    if not programs:
        return unconfined()
    first = decompile(programs[0])
    paths, complete = first.paths, first.complete
    for insns in programs[1:]:
        more = decompile(insns)
        complete = complete and more.complete
        paths = _combine(paths, more.paths)
    return Semantics(paths, filters=len(programs), complete=complete)


def overlap(a: Path, b: Path) -> tuple[tuple[iv.Intervals, ...], tuple[Pred, ...]] | None:
    """The inputs both paths cover (their ranges intersected), or None when there are none."""
    ranges = []
    for ra, rb in zip(a.ranges, b.ranges, strict=True):
        if ra is rb or ra == rb:
            ranges.append(ra)
            continue
        both = iv.intersect(ra, rb)
        if not both:
            return None
        ranges.append(both)
    preds = (*a.preds, *b.preds)
    if preds and not _predicates_possible(tuple(ranges), preds, set(range(16))):
        return None
    return tuple(ranges), preds


def _combine(first: list[Path], second: list[Path]) -> list[Path]:
    out = []
    for pa in first:
        for pb in pairs_for(pa, second):
            both = overlap(pa, pb)
            if both is None:
                continue
            va, vb = action_of(pa), action_of(pb)
            if va is None or vb is None:
                ret = pa.ret if va is None else pb.ret  # data-dependent: keep the unknown one
            else:
                ret = pa.ret if bpf.precedence(va) <= bpf.precedence(vb) else pb.ret
            out.append(Path(both[0], both[1], ret))
    return out


def pairs_for(path: Path, others: list[Path]) -> list[Path]:
    """OTHERS whose syscall numbers meet PATH's (a cheap first filter before `overlap`)."""
    nr = path.ranges[bpf.NR]
    lo, hi = nr[0][0], nr[-1][1]
    return [o for o in others if o.ranges[bpf.NR][0][0] <= hi and o.ranges[bpf.NR][-1][1] >= lo]


# ---------------------------------------------------------------------- 64-bit argument view


def arg64(path: Path, index: int) -> iv.Intervals | None:
    """Argument INDEX as a set of 64-bit values, or None when its halves do not combine
    into one (a range on the high word with a partial low word)."""
    lo = path.ranges[bpf.arg_field(index, False)]
    hi = path.ranges[bpf.arg_field(index, True)]
    if lo == iv.FULL32:
        return tuple((a << 32, (b << 32) | iv.U32) for a, b in hi)
    h = iv.single(hi)
    if h is not None:
        return tuple(((h << 32) | a, (h << 32) | b) for a, b in lo)
    return None
