"""runc's global flags as one object, below every module that takes them.

The CLI builds it; the library (oci/lifecycle, monitor/exec_run, commands) only receives it, so
none of them imports the CLI.
"""

from __future__ import annotations

from runnc_py.oci.log import RuntimeLog

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

DEFAULT_ROOT = "/run/runnc-py"


class Globals:
    """runc's global flags, handed to every command as `ctx.obj`.

    `argv` is the whole command line after the program name: `--delegate` hands it on
    unchanged (but for --root) to another runtime.
    """

    __slots__ = ("argv", "delegate", "log", "root", "systemd_cgroup")

    def __init__(
        self,
        root: str = DEFAULT_ROOT,
        log: RuntimeLog | None = None,
        systemd_cgroup: bool = False,
        delegate: str | None = None,
        argv: Sequence[str] = (),
    ) -> None:
        self.root = root
        self.log = log if log is not None else RuntimeLog()
        self.systemd_cgroup = systemd_cgroup
        self.delegate = delegate
        self.argv = list(argv)

    def __repr__(self) -> str:
        return f"Globals(root={self.root!r}, delegate={self.delegate!r})"
