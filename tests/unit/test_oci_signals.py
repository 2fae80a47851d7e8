"""`kill` signal spellings."""

from __future__ import annotations

import signal

import pytest

from runnc_py.errors import RunncError
from runnc_py.oci.signals import SIGNALS, parse_signal


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("TERM", 15), ("SIGTERM", 15), ("sigterm", 15), ("term", 15), ("15", 15), ("9", 9),
        ("KILL", 9), ("SIGKILL", 9), ("HUP", 1), ("SIGUSR1", 10), ("WINCH", 28),
        ("RTMIN", 34), ("SIGRTMIN+3", 37), ("RTMAX-1", 63), ("64", 64), (" INT ", 2),
    ],
)  # fmt: skip
def test_parse(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["", "0", "65", "SIGFOO", "RTMIN+31", "RTMAX-31", "-9", "9x"])
def test_refused(text: str) -> None:
    with pytest.raises(RunncError):
        parse_signal(text)


def test_table_matches_the_host() -> None:
    for name, number in SIGNALS.items():
        if hasattr(signal, f"SIG{name}"):
            assert getattr(signal, f"SIG{name}") == number, name
    assert parse_signal("RTMIN") == signal.SIGRTMIN
