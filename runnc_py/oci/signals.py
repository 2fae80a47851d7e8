"""Signal names as `kill` takes them: `TERM`, `SIGTERM`, `sigterm`, `15`, `RTMIN+3`. Pure.

A static table (Linux numbering, x86_64/aarch64) instead of the `signal` module: `kill` is on
the engines' hot path and `signal` pulls in `enum`.
"""

from __future__ import annotations

from runnc_py.errors import RunncError

SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
    "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
    "TERM": 15, "STKFLT": 16, "CHLD": 17, "CLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20,
    "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27,
    "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}  # fmt: skip
SIGRTMIN, SIGRTMAX = 34, 64


def parse_signal(text: str) -> int:
    """The signal number for TEXT; RunncError naming the bad value otherwise."""
    name = text.strip().upper()
    if name.isdigit():
        number = int(name)
        if 1 <= number <= SIGRTMAX:
            return number
        raise RunncError(f"signal number {number} out of range 1..{SIGRTMAX}", where="kill")
    if name.startswith("SIG"):
        name = name[3:]
    if name in SIGNALS:
        return SIGNALS[name]
    for base, number, sign in (("RTMIN", SIGRTMIN, 1), ("RTMAX", SIGRTMAX, -1)):
        if name == base:
            return number
        if name.startswith(base + ("+" if sign > 0 else "-")):
            offset = name[len(base) + 1 :]
            if offset.isdigit():
                value = number + sign * int(offset)
                if SIGRTMIN <= value <= SIGRTMAX:
                    return value
    raise RunncError(f"unknown signal {text!r}", where="kill")
