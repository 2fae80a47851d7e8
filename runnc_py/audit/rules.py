"""Paths -> rules a person reads: per architecture, the default action and, per syscall, the
argument conditions that lead to every other action (64-bit arguments recombined from their
32-bit halves). Also the counts the compare table uses. Pure, apart from name look-ups."""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field

from runnc_py.audit import intervals as iv
from runnc_py.audit import names
from runnc_py.audit import program as bpf
from runnc_py.audit.semantics import Semantics, action_of, arg64, reaches
from runnc_py.audit.symbolic import Path, render

NATIVE_NR: iv.Intervals = ((0, bpf.X32_SYSCALL_BIT - 1),)
X32_NR: iv.Intervals = ((bpf.X32_SYSCALL_BIT, iv.U32),)
ENUMERATE_LIMIT = 2048  # syscall numbers listed one by one in a rule, at most...
RUN_LIMIT = 64  # ...and beyond that, runs this long or longer are shown as a range
X32_MIRRORS = "the x86_64 rules' syscalls and actions, no others (arguments on 32 bits)"

ARG_NAMES: dict[str, tuple[str, ...]] = {
    "read": ("fd", "buf", "count"),
    "write": ("fd", "buf", "count"),
    "pread64": ("fd", "buf", "count", "offset"),
    "pwrite64": ("fd", "buf", "count", "offset"),
    "ioctl": ("fd", "request", "arg"),
    "clock_gettime": ("clockid", "tp"),
    "epoll_pwait": ("epfd", "events", "maxevents", "timeout", "sigmask", "sigsetsize"),
    "timerfd_settime": ("fd", "flags", "new_value", "old_value"),
    "arch_prctl": ("code", "addr"),
    "socket": ("domain", "type", "protocol"),
    "personality": ("persona",),
    "clone": ("flags", "stack", "parent_tid", "child_tid", "tls"),
    "clone3": ("uargs", "size"),
    "mmap": ("addr", "length", "prot", "flags", "fd", "offset"),
    "mprotect": ("addr", "len", "prot"),
    "close": ("fd",),
    "prctl": ("option", "arg2", "arg3", "arg4", "arg5"),
}


@dataclass(frozen=True)
class Rule:
    action: str
    syscall: str
    nr: int | None  # None: a range of numbers (see `syscall`)
    conditions: tuple[str, ...]

    def text(self) -> str:
        return self.syscall + (f" if {' && '.join(self.conditions)}" if self.conditions else "")


@dataclass
class Section:
    """What calls of one architecture get."""

    arch: str
    token: int | None
    default: str
    rules: list[Rule] = field(default_factory=list)
    x32: str | None = None  # x86_64 only: what syscalls with bit 30 set get


@dataclass
class Summary:
    filters: int
    complete: bool
    sections: list[Section]
    other_arches: str | None  # the action for architectures no section names
    arch_checked: bool
    reachable: list[str]
    constrained: list[str]


def arg_name(syscall: str, index: int) -> str:
    known = ARG_NAMES.get(syscall, ())
    return known[index] if index < len(known) else f"arg{index}"


def summarize(sem: Semantics) -> Summary:
    tokens = sorted({t for p in sem.paths if (t := iv.single(p.ranges[bpf.ARCH])) is not None},
                    key=lambda t: (t != names.NATIVE, t))
    arch_checked = bool(tokens)
    sections = [_section(sem, t) for t in tokens] if tokens else [_section(sem, None)]
    other = None
    if tokens:
        rest = iv.complement(tuple((t, t) for t in sorted(tokens)))
        acts = {_act(p) for p in sem.paths if iv.intersect(p.ranges[bpf.ARCH], rest)}
        other = " | ".join(sorted(acts)) if acts else None
    native = next((s for s in sections if s.token in (names.NATIVE, None)), None)
    reachable, constrained = _counts(sem, names.NATIVE if native else None)
    return Summary(sem.filters, sem.complete, sections, other, arch_checked, reachable,
                   constrained)


def _act(path: Path) -> str:
    value = action_of(path)
    return bpf.action_name(value) if value is not None else f"return {render(path.ret)}"


def _in_arch(sem: Semantics, token: int | None) -> list[Path]:
    if token is None:
        return sem.paths
    return [p for p in sem.paths if iv.contains(p.ranges[bpf.ARCH], token)]


def _plain(path: Path) -> bool:
    """No condition beyond arch and nr."""
    return not path.preds and all(r == iv.FULL32 for r in path.ranges[2:])


def _section(sem: Semantics, token: int | None) -> Section:
    paths = _in_arch(sem, token)
    coverage: dict[str, int] = defaultdict(int)
    for p in paths:
        if _plain(p):
            coverage[_act(p)] += iv.size(iv.intersect(p.ranges[bpf.NR], NATIVE_NR))
    default = max(coverage, key=lambda a: coverage[a]) if coverage else "(none)"
    arch = names.arch_label(token) if token is not None else "any architecture"
    section = Section(arch=arch, token=token, default=default)
    name_arch = token if token is not None else names.NATIVE
    section.rules = _rules(paths, default, NATIVE_NR, name_arch)
    if token == names.NATIVE:
        x32_acts = sorted({_act(p) for p in paths if iv.intersect(p.ranges[bpf.NR], X32_NR)})
        section.x32 = x32_acts[0] if len(x32_acts) == 1 else "mixed"
        if len(x32_acts) > 1:
            x32_default = max(x32_acts, key=lambda a: sum(
                iv.size(iv.intersect(p.ranges[bpf.NR], X32_NR)) for p in paths if _act(p) == a))
            x32_rules = _rules(paths, x32_default, X32_NR, name_arch)
            native = {(r.action, r.syscall) for r in section.rules}
            mirrored = {(r.action, r.syscall.removeprefix("x32:")) for r in x32_rules}
            if x32_default == default and mirrored <= native:
                section.x32 = X32_MIRRORS
            section.rules += x32_rules
    return section


def _rules(paths: list[Path], default: str, window: iv.Intervals, arch: int) -> list[Rule]:
    grouped: dict[tuple[int | tuple[int, int], str], list[Path]] = defaultdict(list)
    for p in paths:
        action = _act(p)
        nrs = iv.intersect(p.ranges[bpf.NR], window)
        if action == default and (_plain(p) or not nrs):
            continue
        for key in nr_keys(nrs):
            grouped[(key, action)].append(p)
    out = []
    for (key, action), group in grouped.items():
        if action == default:
            continue
        syscall, nr = syscall_label(arch, key), key if isinstance(key, int) else None
        for conds in merge_conditions(group, syscall):
            out.append(Rule(action=action, syscall=syscall, nr=nr, conditions=conds))
    out.sort(key=lambda r: (r.action, r.nr if r.nr is not None else 1 << 40, r.conditions))
    return out


MERGE_LIMIT = 96  # regions per syscall and action merged pairwise (quadratic); more: listed
SHOW_LIMIT = 64  # regions listed per syscall and action; the rest counted


def nr_keys(nrs: iv.Intervals) -> list[int | tuple[int, int]]:
    """Syscall numbers one by one, except long runs (shown as `#lo..#hi`)."""
    if iv.size(nrs) <= ENUMERATE_LIMIT:
        return [v for lo, hi in nrs for v in range(lo, hi + 1)]
    out: list[int | tuple[int, int]] = []
    for lo, hi in nrs:
        out += range(lo, hi + 1) if hi - lo < RUN_LIMIT else [(lo, hi)]
    return out


def syscall_label(arch: int, key: int | tuple[int, int]) -> str:
    if isinstance(key, int):
        return names.label(arch, key)
    return f"#{key[0]}..#{key[1]}"


def merge_conditions(paths: list[Path], syscall: str) -> list[tuple[str, ...]]:
    """The argument conditions of PATHS (one syscall, one action), unions merged."""
    regions: list[list] = []  # type: ignore[type-arg]
    hidden = max(0, len(paths) - SHOW_LIMIT) if len(paths) > MERGE_LIMIT else 0
    for p in paths[: len(paths) - hidden]:
        args = [arg64(p, i) for i in range(6)]
        halves = [None if a is not None else (p.ranges[bpf.arg_field(i, False)],
                                               p.ranges[bpf.arg_field(i, True)])
                  for i, a in enumerate(args)]
        regions.append([args, halves, p.preds])
    changed = len(regions) <= MERGE_LIMIT
    while changed:
        changed = False
        for i in range(len(regions)):
            for j in range(i + 1, len(regions)):
                merged = _merge_pair(regions[i], regions[j])
                if merged is not None:
                    regions[i] = merged
                    del regions[j]
                    changed = True
                    break
            if changed:
                break
    out = []
    for args, halves, preds in regions:
        conds = []
        for i in range(6):
            name = arg_name(syscall.removeprefix("x32:"), i)
            if args[i] is not None:
                if args[i] != iv.FULL64:
                    conds.append(iv.describe(name, args[i], iv.U64))
            else:
                lo, hi = halves[i]
                conds += [iv.describe(f"{name}.{half}", word) for half, word in
                          (("hi", hi), ("lo", lo)) if word != iv.FULL32]
        conds += [p.text() for p in preds]
        out.append(tuple(conds))
    if hidden:
        out.append((f"... and {hidden} more condition sets (program too branchy to list)",))
    return sorted(out)


def _merge_pair(a: list, b: list) -> list | None:  # type: ignore[type-arg]
    """A and B as one region when they differ in one argument only (a union on it)."""
    if a[2] != b[2]:
        return None
    diff = [i for i in range(6) if a[0][i] != b[0][i] or a[1][i] != b[1][i]]
    if len(diff) != 1:
        return None
    i = diff[0]
    args, halves = list(a[0]), list(a[1])
    if a[0][i] is not None and b[0][i] is not None:
        args[i] = iv.union(a[0][i], b[0][i])
    elif a[1][i] is not None and b[1][i] is not None:
        (lo_a, hi_a), (lo_b, hi_b) = a[1][i], b[1][i]
        if hi_a == hi_b:
            halves[i] = (iv.union(lo_a, lo_b), hi_a)
        elif lo_a == lo_b:
            halves[i] = (lo_a, iv.union(hi_a, hi_b))
        else:
            return None
        if halves[i][0] == iv.FULL32 and halves[i][1] == iv.FULL32:
            args[i], halves[i] = iv.FULL64, None
    else:
        return None
    return [args, halves, a[2]]


def _counts(sem: Semantics, token: int | None) -> tuple[list[str], list[str]]:
    """Native syscalls some input reaches the kernel with; those also refused for others."""
    known = names.known_numbers()
    reach: set[int] = set()
    refuse: set[int] = set()
    for p in _in_arch(sem, token if token is not None else names.NATIVE):
        target = reach if reaches(action_of(p)) else refuse
        for lo, hi in p.ranges[bpf.NR]:
            target.update(known[bisect.bisect_left(known, lo): bisect.bisect_right(known, hi)])
    label = names.label
    reachable = sorted(label(names.NATIVE, n) for n in reach)
    constrained = sorted(label(names.NATIVE, n) for n in reach & refuse)
    return reachable, constrained
