"""The mountinfo field decoder both the cgroup layout and the overlay reader use."""

from __future__ import annotations

import pytest

from runnc_py.mountinfo import unescape


@pytest.mark.parametrize(
    ("field", "path"),
    [
        ("/plain", "/plain"),
        ("/a\\040b", "/a b"),
        ("/tab\\011", "/tab\t"),  # an escape at the very end of the field is decoded too
        ("/back\\134slash", "/back\\slash"),
        ("/not\\8xy", "/not\\8xy"),  # 8 is no octal digit: kept as it is
        ("/short\\04", "/short\\04"),
        ("\\", "\\"),
    ],
)
def test_unescape(field: str, path: str) -> None:
    assert unescape(field) == path
