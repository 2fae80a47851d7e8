"""OCI hooks: argv, env, stdin state, exit status, timeout, fatal vs. warning kinds."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from runnc_py.errors import RunncError
from runnc_py.oci.hooks import hooks_from_json, run_hook, run_hooks
from runnc_py.oci.spec import Hook

STATE = {"ociVersion": "1.0.2", "id": "c", "pid": 1, "status": "creating", "bundle": "/b"}


def sh(script: str, **kw: object) -> Hook:
    return Hook(path="/bin/sh", args=("sh", "-c", script), **kw)  # type: ignore[arg-type]


def test_state_on_stdin_and_env(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_hook("prestart", sh(f'cat > {out}; echo "$A" >> {out}', env=("A=1",)), STATE)
    state_text, env_a = out.read_text().rsplit("}", 1)
    assert json.loads(state_text + "}") == STATE
    assert env_a.strip() == "1"


def test_failure_is_one_line_with_output() -> None:
    with pytest.raises(RunncError) as info:
        run_hook("createRuntime", sh("echo first; echo second >&2; exit 4"), STATE)
    assert info.value.where == "createRuntime hook /bin/sh"
    assert info.value.line() == "createRuntime hook /bin/sh: exited with status 4: first second"


def test_signal_and_missing_program() -> None:
    with pytest.raises(RunncError, match="killed by signal 9"):
        run_hook("prestart", sh("kill -9 $$"), STATE)
    with pytest.raises(RunncError, match="cannot run"):
        run_hook("prestart", Hook(path="/nonexistent/hook"), STATE)


def test_timeout_kills_the_hook_group(tmp_path: Path) -> None:
    marker = f"30.{os.getpid()}"  # a sleep argument no other process on the machine has
    with pytest.raises(RunncError, match="timed out after 1 s"):
        run_hook("prestart", sh(f"sleep {marker} & sleep {marker}", timeout=1), STATE)
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
    assert left.stdout == "", "the hook's background child must die with its group"


def test_fatal_kinds_stop_others_warn(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    hooks = [sh("exit 1"), sh(f"touch {ran}")]
    with pytest.raises(RunncError):
        run_hooks("prestart", hooks, STATE)
    assert not ran.exists()
    warnings: list[str] = []
    run_hooks("poststop", hooks, STATE, warn=warnings.append)
    assert ran.exists() and len(warnings) == 1 and "exited with status 1" in warnings[0]


def test_hooks_json_roundtrip() -> None:
    hooks = [Hook("/a"), Hook("/b", ("b", "x"), ("K=V",), 5), Hook("/c", env=())]
    assert hooks_from_json([h.to_json() for h in hooks]) == hooks
