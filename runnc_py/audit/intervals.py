"""Sets of unsigned integers as sorted, disjoint, inclusive (lo, hi) intervals. Pure."""

from __future__ import annotations

Intervals = tuple[tuple[int, int], ...]

U32 = 0xFFFFFFFF
U64 = 0xFFFFFFFFFFFFFFFF
FULL32: Intervals = ((0, U32),)
FULL64: Intervals = ((0, U64),)
EMPTY: Intervals = ()


def normalize(items: list[tuple[int, int]]) -> Intervals:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(i for i in items if i[0] <= i[1]):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def intersect(a: Intervals, b: Intervals) -> Intervals:
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def union(a: Intervals, b: Intervals) -> Intervals:
    return normalize([*a, *b])


def complement(a: Intervals, full: int = U32) -> Intervals:
    out = []
    start = 0
    for lo, hi in a:
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= full:
        out.append((start, full))
    return tuple(out)


def subtract(a: Intervals, b: Intervals, full: int = U32) -> Intervals:
    return intersect(a, complement(b, full))


def size(a: Intervals) -> int:
    return sum(hi - lo + 1 for lo, hi in a)


def contains(a: Intervals, value: int) -> bool:
    return any(lo <= value <= hi for lo, hi in a)


def single(a: Intervals) -> int | None:
    return a[0][0] if len(a) == 1 and a[0][0] == a[0][1] else None


def values(a: Intervals, limit: int) -> list[int] | None:
    """The members, or None when there are more than LIMIT."""
    if size(a) > limit:
        return None
    return [v for lo, hi in a for v in range(lo, hi + 1)]


def describe(name: str, a: Intervals, full: int = U32) -> str:
    """`fd == 1`, `count <= 511`, `x in {1, 5}`, `x not in {3}`, `x in [a, b]`..."""
    if a == ((0, full),):
        return f"{name} any"
    if not a:
        return f"{name} none"
    one = single(a)
    if one is not None:
        return f"{name} == {_num(one)}"
    few = values(a, 4)
    if few is not None:
        return f"{name} in {{{', '.join(_num(v) for v in few)}}}"
    if len(a) == 1:
        lo, hi = a[0]
        if lo == 0:
            return f"{name} <= {_num(hi)}"
        if hi == full:
            return f"{name} >= {_num(lo)}"
        return f"{name} in [{_num(lo)}, {_num(hi)}]"
    missing = complement(a, full)
    if size(missing) == 1:
        return f"{name} != {_num(missing[0][0])}"
    if size(missing) <= 8:
        listed = values(missing, 8) or []
        return f"{name} not in {{{', '.join(_num(v) for v in listed)}}}"
    listed = values(a, 8)
    if listed is not None:
        return f"{name} in {{{', '.join(_num(v) for v in listed)}}}"
    parts = [_num(lo) if lo == hi else f"[{_num(lo)}, {_num(hi)}]" for lo, hi in a]
    return f"{name} in {' u '.join(parts)}"


def _num(v: int) -> str:
    """Decimal for counts, fds and offsets; hex above 32 bits (masks, pointers, -1)."""
    return str(v) if v <= U32 else hex(v)
