"""OCI hooks: argv, env, stdin state, exit status, timeout, fatal vs. warning kinds."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
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


@pytest.mark.parametrize(
    "item",
    [
        "x",
        {"path": 5},
        {"path": "rel/hook"},
        {"path": "/a", "args": "sh"},
        {"path": "/a", "env": [1]},
        {"path": "/a", "timeout": "5"},
        {"path": "/a", "timeout": 2**70},
        {"path": "/a", "timeout": True},
    ],
)
def test_saved_hooks_are_checked_again(item: object) -> None:
    with pytest.raises(RunncError, match=r"state\.json: hooks\[0\]"):
        hooks_from_json([item])  # type: ignore[list-item]


# ---------------------------------------------------------------------------- issue 9 item 8


def test_background_child_holding_stdout_does_not_hang_or_time_out(tmp_path: Path) -> None:
    pid_file = tmp_path / "child"
    # Before: communicate() waited for EOF on stdout, which the child holds for 300 s, so the
    # hook "timed out after 5 s" although it had exited 0 at once.
    hook = sh(f"sleep 300 & echo $! > {pid_file}; echo started", timeout=5)
    try:
        run_hook("createRuntime", hook, STATE)
        with pytest.raises(RunncError, match="exited with status 3: started"):
            run_hook(
                "createRuntime",
                sh(f"sleep 300 & echo $! >> {pid_file}; echo started; exit 3", timeout=5),
                STATE,
            )
    finally:  # the background children are ours to end, by their recorded pids
        for line in pid_file.read_text().split() if pid_file.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line), signal.SIGKILL)


def test_control_characters_in_the_hook_path_are_escaped() -> None:
    with pytest.raises(RunncError) as info:
        run_hook("prestart", Hook(path="/nonexistent/\x1b[2Jhook"), STATE)
    assert info.value.line().isprintable() and "\\x1b[2Jhook" in info.value.line()


def test_control_characters_never_reach_the_message() -> None:
    script = (
        r"printf '\033[2J\033]0;owned\007 bad\rline\nnext\033[31m red\0 \342\200\256x\n'; exit 1"
    )
    with pytest.raises(RunncError) as info:
        run_hook("prestart", sh(script), STATE)
    line = info.value.line()
    assert line.isprintable(), repr(line)
    assert "owned" in line and "bad line next" in line and "red" in line


def test_huge_output_is_streamed_away_not_buffered(tmp_path: Path) -> None:
    """A hook printing 300 MB: the runner's peak RSS stays far below it (before: all of it
    was kept, and more). Measured in a child process running run_hook, by its VmHWM (the
    high-water mark of its own memory since exec; rusage would also count the pytest
    process it was forked from)."""
    size = 300 << 20
    script = f"head -c {size} /dev/zero | tr '\\0' a; echo END; exit 2"
    program = (
        "import sys\n"
        "from runnc_py.errors import RunncError\n"
        "from runnc_py.oci.hooks import run_hook\n"
        "from runnc_py.oci.spec import Hook\n"
        "try:\n"
        "    run_hook('prestart', Hook('/bin/sh', ('sh', '-c', sys.argv[1])), {'id': 'c'})\n"
        "except RunncError as exc:\n"
        "    print(exc.line())\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print(int(hwm.split()[1]) >> 10)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, script], capture_output=True, text=True, check=True
    )
    line, peak = done.stdout.strip().splitlines()
    assert line.startswith("prestart hook /bin/sh: exited with status 2: aaa")
    assert line.endswith("aEND") and "[...]" in line and len(line) < 300
    peak_mib = int(peak)
    assert peak_mib < 150, f"hook runner peaked at {peak_mib} MiB for {size >> 20} MiB of output"
