"""The one way runnc-py reads a number from untrusted text or JSON. Pure, builtins only.

Python's `int()` is far more lenient than a config format should be: it takes `" 64"`,
`"+64"`, `"6_4"`, and any Unicode decimal digit (`"６４"`, `"٦٤"`), and converts numbers of
thousands of digits that only fail much later (`OverflowError` when they reach C). Every
annotation, size and limit goes through here instead:

- `decimal(text, ...)`: ASCII digits `0`-`9` only, no sign, no space, no separator, at most
  `MAX_DIGITS` digits, then a range check;
- `json_int(value, ...)`: a JSON integer (never `true`/`false`, which Python calls ints)
  within a range, e.g. the int64 the runtime spec gives its limits.

This module sits on the engines' hot path (`create`), so it imports nothing.
"""

from __future__ import annotations

from runnc_py.errors import RunncError

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1
MAX_DIGITS = 20  # enough for any uint64; longer text is refused before int() converts it
_DIGITS = frozenset("0123456789")


def is_decimal(text: object) -> bool:
    """True for 1..MAX_DIGITS ASCII digits and nothing else."""
    return isinstance(text, str) and 0 < len(text) <= MAX_DIGITS and _DIGITS.issuperset(text)


def decimal(
    text: object, *, where: str, low: int = 0, high: int = UINT64_MAX, unit: str = ""
) -> int:
    """TEXT as a whole number in [LOW, HIGH]; one-line RunncError naming WHERE otherwise."""
    if not is_decimal(text):
        raise RunncError(
            f"must be a whole number of ASCII digits 0-9 (no sign, space or other digits), "
            f"got {_show(text)}",
            where=where,
        )
    return in_range(int(text, 10), where=where, low=low, high=high, unit=unit)  # type: ignore[arg-type]


def json_int(
    value: object, *, where: str, low: int = INT64_MIN, high: int = INT64_MAX, unit: str = ""
) -> int:
    """VALUE as a JSON integer in [LOW, HIGH] (default: int64, the runtime spec's type)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RunncError(f"must be an integer, got {_show(value)}", where=where)
    return in_range(value, where=where, low=low, high=high, unit=unit)


def in_range(value: int, *, where: str, low: int, high: int, unit: str = "") -> int:
    """VALUE itself if LOW <= VALUE <= HIGH, else a RunncError saying which bound it broke."""
    suffix = f" {unit}" if unit else ""
    if value < low:
        raise RunncError(f"must be at least {low}{suffix}, got {_show(value)}", where=where)
    if value > high:
        raise RunncError(f"must be at most {high}{suffix}, got {_show(value)}", where=where)
    return value


def _show(value: object) -> str:
    """A value for a one-line message: repr, cut short (a config may hold megabytes)."""
    text = "null" if value is None else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
