"""--preserve-fds: which inherited fds may reach the guest (runnc_py/oci/fds.py). Pure."""

from __future__ import annotations

import pytest

from runnc_py.errors import RunncError
from runnc_py.oci.fds import check_handed_fds, preserved_fds


def test_preserved_fds_start_after_stdio() -> None:
    assert list(preserved_fds(0)) == []
    assert list(preserved_fds(3)) == [3, 4, 5]
    with pytest.raises(RunncError, match="must not be negative"):
        preserved_fds(-1)


@pytest.mark.parametrize(
    ("nets", "count"),
    [
        ({}, 0),
        ({"service0": "tap0"}, 0),  # an interface name is no fd
        ({"service0": "@3"}, 1),
        ({"a": "@3", "b": "@5"}, 3),
    ],
)
def test_preserved_fds_may_be_handed_over(nets: dict[str, str], count: int) -> None:
    check_handed_fds(nets, preserved_fds(count))


@pytest.mark.parametrize(
    ("spec", "count", "message"),
    [
        ("@7", 0, "'@7' is not an fd passed to the container (no --preserve-fds was given)"),
        ("@5", 2, "'@5' is not an fd passed to the container (--preserve-fds 2 gives fds 3..4)"),
        ("@2", 5, "is not an fd passed"),  # stdio is never the guest's
        ("@0", 5, "is not an fd passed"),
        ("@-3", 5, "is not an fd passed"),
        ("@+3", 5, "is not an fd passed"),
        ("@３", 5, "is not an fd passed"),  # a non-ASCII digit
        ("@99999999999999999999", 5, "is not an fd passed"),
        ("@", 5, "is not an fd passed"),
    ],
)
def test_other_fds_are_refused_naming_the_annotation(spec: str, count: int, message: str) -> None:
    with pytest.raises(RunncError) as info:
        check_handed_fds({"service0": spec}, preserved_fds(count))
    line = info.value.line()
    assert line.startswith("annotation org.runnc-py.net.service0: ")
    assert message in line
