"""Mixed nodes: hand a bundle without a unikernel (and later calls on it) to another runtime.

With `--delegate RUNTIME` (or env RUNNC_PY_DELEGATE), `create`/`run` of a bundle whose program
is no unikernel exec RUNTIME with the very same arguments, except that its `--root` is
`<our root>/.delegate`. Every later verb on that container ID finds it there (our own
`<root>/<id>` does not exist) and is handed over the same way, so the engine keeps talking to
runnc-py only. Nothing else is recorded: the delegate's state directory is the record.
"""

from __future__ import annotations

import os

from runnc_py.errors import RunncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

_VALUE_OPTS = ("--root", "--log", "--log-format", "--delegate")


def delegate_argv(runtime: str, argv: Sequence[str], delegate_root: str) -> list[str]:
    """RUNTIME's argv for our ARGV: same global flags and command, `--root DELEGATE_ROOT`,
    without `--delegate`. Global flags are the ones before the command word. Pure."""
    kept: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        key = arg.split("=", 1)[0]
        if not arg.startswith("-"):
            break
        if key in _VALUE_OPTS:
            value_inline = "=" in arg
            value = (
                arg.split("=", 1)[1] if value_inline else (argv[i + 1] if i + 1 < len(argv) else "")
            )
            i += 1 if value_inline else 2
            if key in ("--root", "--delegate"):
                continue
            kept += [key, value]
            continue
        kept.append(arg)
        i += 1
    return [runtime, "--root", delegate_root, *kept, *argv[i:]]


def exec_delegate(runtime: str, argv: Sequence[str], delegate_root: str) -> None:
    """Replace this process with RUNTIME (never returns unless it cannot be run)."""
    if not os.path.isabs(runtime) or not os.access(runtime, os.X_OK):
        raise RunncError(
            "delegate runtime must be an absolute path to an executable", where=runtime
        )
    os.makedirs(delegate_root, mode=0o711, exist_ok=True)
    try:
        os.execv(runtime, delegate_argv(runtime, argv, delegate_root))
    except OSError as exc:
        raise RunncError(
            f"cannot run the delegate runtime: {exc.strerror}", where=runtime
        ) from None
