"""Issue 9 item 8 through the real `create`: a hook that leaves a background child holding its
stdout does not hang `create`, and a failing hook's terminal escapes never reach the one-line
error or the JSON `--log`. (run_hook's bounds and head/tail are proven in tests/unit.)
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

from tests.integration import test_lifecycle as lifecycle
from tests.integration.test_lifecycle import Runtime, assert_gone, last_error

pytestmark = pytest.mark.root

# The lifecycle tests' fixtures: a --root of our own, and this process as child subreaper.
rt = lifecycle.rt
subreaper = lifecycle.subreaper


def _kill_recorded(pid_file: Path) -> None:
    """End the background children the hooks recorded: started by this test, ended by pid."""
    if not pid_file.exists():
        return
    for line in pid_file.read_text().split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(line), signal.SIGKILL)


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_background_child_holding_stdout_does_not_hang_create(rt: Runtime, kind: str) -> None:
    cid = rt.new_id()
    children = rt.tmp / "children"
    # Before: create waited for EOF on the hook's stdout, held by `sleep 300`, until the
    # timeout, then failed with "timed out after 20 s" although the hook had exited 0.
    script = f"sleep 300 & echo $! >> {children}; echo hook done"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", script], "timeout": 20}
    try:
        rt.created(cid, rt.bundle("hello.spt", hooks={kind: [hook]}))
        assert rt.status(cid) == "created"
        assert rt("delete", "--force", cid).returncode == 0
        assert_gone(rt, cid)
    finally:
        _kill_recorded(children)


def test_hook_output_is_cleaned_in_error_and_log(rt: Runtime) -> None:
    cid = rt.new_id()
    script = r"printf '\033]0;pwned\007\033[2Jline1\nline2\r\033[31mred'; exit 5"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", script]}
    done, out = rt.create(cid, rt.bundle("hello.spt", hooks={"createRuntime": [hook]}))
    assert done.returncode != 0
    message = last_error(rt)
    assert message.isprintable(), repr(message)
    assert "exited with status 5" in message and "line1 line2" in message
    printed = out.read_text()  # create's stderr: the same line, no escape either
    assert "\x1b" not in printed and "\x07" not in printed
    assert_gone(rt, cid)
