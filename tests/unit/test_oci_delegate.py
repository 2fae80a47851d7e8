"""--delegate: the argv handed to the other runtime."""

from __future__ import annotations

import pytest

from runnc_py.errors import RunncError
from runnc_py.oci.delegate import delegate_argv, exec_delegate

R = "/usr/sbin/runc"
D = "/run/x/.delegate"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["create", "--bundle", "b", "id"], [R, "--root", D, "create", "--bundle", "b", "id"]),
        (
            ["--root", "/run/x", "--log", "l.json", "--log-format", "json", "--delegate", R,
             "--systemd-cgroup", "start", "id"],
            [R, "--root", D, "--log", "l.json", "--log-format", "json", "--systemd-cgroup",
             "start", "id"],
        ),
        (["--root=/run/x", "--delegate=/r", "--debug", "kill", "id", "9"],
         [R, "--root", D, "--debug", "kill", "id", "9"]),
        # Only flags before the command are global: the command's own are kept as they are.
        (["delete", "--root", "z", "id"], [R, "--root", D, "delete", "--root", "z", "id"]),
    ],
)  # fmt: skip
def test_delegate_argv(argv: list[str], expected: list[str]) -> None:
    assert delegate_argv(R, argv, D) == expected


def test_exec_delegate_refuses_bad_runtime(tmp_path: object) -> None:
    with pytest.raises(RunncError, match="absolute path"):
        exec_delegate("runc", ["state", "x"], "/tmp/never")
    with pytest.raises(RunncError, match="absolute path"):
        exec_delegate("/nonexistent/runc", ["state", "x"], "/tmp/never")
