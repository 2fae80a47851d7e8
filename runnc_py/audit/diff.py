"""Two filter chains compared by meaning: the inputs on which they answer differently. Pure.

The paths of each side partition the input space, so intersecting every path of one side with
every path of the other (syscall numbers first, as a cheap filter) gives exactly the regions
where the answers differ. Regions with a predicate the intervals cannot express are reported
as well, marked `possible` when the predicate was not decided."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from runnc_py.audit import intervals as iv
from runnc_py.audit import names
from runnc_py.audit import program as bpf
from runnc_py.audit.rules import merge_conditions, nr_keys, syscall_label
from runnc_py.audit.semantics import Semantics, action_of, overlap, pairs_for
from runnc_py.audit.symbolic import Path, render
from runnc_py.errors import RunncError


@dataclass(frozen=True)
class Difference:
    arch: str
    syscall: str
    conditions: tuple[str, ...]
    left: str
    right: str
    nr: int = 0  # the (first) syscall number, for ordering


def _answer(path: Path) -> str:
    value = action_of(path)
    return bpf.action_name(value) if value is not None else f"return {render(path.ret)}"


MAX_PAIRS = 3_000_000  # path pairs compared before giving up (fuzzed or huge programs)


def differences(left: Semantics, right: Semantics) -> list[Difference]:
    grouped: dict[tuple[str, int | tuple[int, int], str, str], list[Path]] = defaultdict(list)
    pairs = 0
    for pa in left.paths:
        candidates = pairs_for(pa, right.paths)
        pairs += len(candidates)
        if pairs > MAX_PAIRS:
            raise RunncError(
                f"the filters are too branchy to compare ({len(left.paths)} x "
                f"{len(right.paths)} paths)")
        for pb in candidates:
            if pa.ret == pb.ret:
                continue
            a, b = _answer(pa), _answer(pb)
            if a == b:
                continue
            both = overlap(pa, pb)
            if both is None:
                continue
            region = Path(both[0], both[1], pa.ret)
            arch_token = iv.single(region.ranges[bpf.ARCH])
            arch = names.arch_label(arch_token) if arch_token is not None else _arches(region)
            for key in nr_keys(region.ranges[bpf.NR]):
                grouped[(arch, key, a, b)].append(region)
    out = []
    for (arch, key, a, b), regions in grouped.items():
        syscall = syscall_label(_token(arch) or names.NATIVE, key)
        nr = key if isinstance(key, int) else key[0]
        for conds in merge_conditions(regions, syscall):
            out.append(Difference(arch, syscall, conds, a, b, nr))
    out.sort(key=lambda d: (d.arch != "x86_64", d.arch, d.nr, d.conditions))
    return out


def _token(arch: str) -> int | None:
    for token, name in bpf.ARCHES.items():
        if name == arch:
            return token
    return None


def _arches(region: Path) -> str:
    return iv.describe("arch", region.ranges[bpf.ARCH])
