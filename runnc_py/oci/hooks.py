"""OCI hooks: run each hook of one kind in order, with the container's state JSON on stdin.

A hook gets `path` as the program, `args` as its full argv (args[0] is argv[0]), `env` as its
whole environment (the runtime's own when the hook has none) and is killed after `timeout`
seconds. Whether a failure is fatal depends on the kind (see `FATAL`); the caller decides what
to tear down.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from typing import Any

from runnc_py.errors import RunncError
from runnc_py.oci import fastjson
from runnc_py.oci.spec import Hook

# The runtime spec: prestart/createRuntime/createContainer/startContainer failures stop the
# container; poststart/poststop failures are only logged.
FATAL = frozenset({"prestart", "createRuntime", "createContainer", "startContainer"})
_TAIL = 200  # characters of a failing hook's output kept in the one-line error


def _tail(data: bytes) -> str:
    text = " ".join(data.decode(errors="replace").split())
    return text[-_TAIL:]


def run_hook(kind: str, hook: Hook, state: Mapping[str, Any]) -> None:
    """Run one hook; RunncError if it cannot start, exits non-zero or times out."""
    import subprocess  # here: `create` without hooks should not pay for it

    where = f"{kind} hook {hook.path}"
    argv = list(hook.args) or [hook.path]
    env = dict(e.split("=", 1) for e in hook.env if "=" in e) if hook.env is not None else None
    try:
        proc = subprocess.Popen(
            argv,
            executable=hook.path,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd="/",
            close_fds=True,
            start_new_session=True,
        )
    except OSError as exc:
        raise RunncError(f"cannot run: {exc.strerror}", where=where) from None
    try:
        out, _ = proc.communicate(fastjson.dumps(dict(state)).encode(), timeout=hook.timeout)
    except subprocess.TimeoutExpired:
        # The hook runs in its own session: kill the whole group, helpers included.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait()
        raise RunncError(f"timed out after {hook.timeout} s", where=where) from None
    if proc.returncode != 0:
        status = (
            f"was killed by signal {-proc.returncode}"
            if proc.returncode < 0
            else f"exited with status {proc.returncode}"
        )
        output = _tail(out)
        raise RunncError(f"{status}{': ' + output if output else ''}", where=where)


def run_hooks(kind: str, hooks: Iterable[Hook], state: Mapping[str, Any], warn: Any = None) -> None:
    """Run HOOKS of KIND in order. Fatal kinds raise on the first failure; the others call
    WARN(message) (if given) and go on with the next hook."""
    for hook in hooks:
        try:
            run_hook(kind, hook, state)
        except RunncError as exc:
            if kind in FATAL:
                raise
            if warn is not None:
                warn(exc.line())


def hooks_from_json(items: Iterable[Mapping[str, Any]]) -> list[Hook]:
    """Hooks saved in state.json (for poststop at delete) back into Hook objects."""
    return [
        Hook(
            path=item["path"],
            args=tuple(item.get("args", ())),
            env=tuple(item["env"]) if "env" in item else None,
            timeout=item.get("timeout"),
        )
        for item in items
    ]
