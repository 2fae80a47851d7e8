"""Live rules against intended ones: same meaning (exit 0) or drift (exit 3). Pure."""

from __future__ import annotations

from dataclasses import dataclass

from runnc_py.audit.diff import Difference, differences
from runnc_py.audit.semantics import Semantics

MATCH, DRIFT, ERROR = 0, 3, 1


@dataclass
class Verdict:
    expected: str
    differences: list[Difference]
    complete: bool

    @property
    def match(self) -> bool:
        return self.complete and not self.differences

    @property
    def status(self) -> int:
        return MATCH if self.match else DRIFT


def judge(live: Semantics, expected: Semantics, label: str) -> Verdict:
    """Every input on which the live chain and the intended filter answer differently."""
    return Verdict(label, differences(live, expected), live.complete and expected.complete)
