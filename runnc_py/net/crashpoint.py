"""A test hook for deterministic crashes in the middle of wiring and unwiring.

`RUNNC_PY_TEST_NET_CRASH_AT` names a point: `N` is the N-th checkpoint of `wire` (1 = right
after the first intent was journaled, before its step; one more after the last step),
`unwire:N` the N-th step of `unwire` (before it runs). The process SIGKILLs itself there, or
SIGSTOPs itself with a `:stop` suffix so that a test can kill -9 it and its parent (`create`)
together. Unset, a checkpoint costs one environment lookup.
"""

from __future__ import annotations

import os

CRASH_AT_ENV = "RUNNC_PY_TEST_NET_CRASH_AT"
SIGKILL, SIGSTOP = 9, 19


def crash_point(phase: str, count: int) -> None:
    """Die (or stop) here if the hook names checkpoint `count` of `phase` ("wire"/"unwire")."""
    hook = os.environ.get(CRASH_AT_ENV)
    if not hook:
        return
    parts = hook.split(":")
    wanted = "unwire" if parts[0] == "unwire" else "wire"
    if wanted == "unwire":
        parts = parts[1:]
    if phase == wanted and parts and parts[0] == str(count):
        os.kill(os.getpid(), SIGSTOP if parts[-1] == "stop" else SIGKILL)
