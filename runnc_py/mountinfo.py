"""The one decoder for the kernel's escaping in /proc/PID/mountinfo fields. Pure, builtins only.

proc(5): space, tab, newline and backslash in a path are written as `\\ooo` (three octal digits).
Anything else after a backslash is kept as it is.
"""

from __future__ import annotations

_OCTAL_DIGITS = frozenset("01234567")


def unescape(field: str) -> str:
    """FIELD with its `\\ooo` escapes decoded."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and _OCTAL_DIGITS.issuperset(code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
