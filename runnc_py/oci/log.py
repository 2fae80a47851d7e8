"""runc-style logging: `--log FILE --log-format json` writes one JSON object per line.

containerd's shim and conmon read the last `error` entry of that file to explain a failure, so
every failing command must append `{"level":"error","msg":...,"time":...}` before exiting.

Imported by every command (the CLI's error path): builtins only, `json` and `time` on first
write, no dataclass.
"""

from __future__ import annotations

import os
import sys

LEVELS = ("debug", "info", "warning", "error")


def _timestamp() -> str:
    import time

    # RFC 3339 with nanoseconds, as runc (logrus) writes it.
    now = time.time_ns()
    secs, nanos = divmod(now, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"


class RuntimeLog:
    """Where log entries go: a file (json or text), else nowhere but stderr for errors."""

    __slots__ = ("debug", "fmt", "path")

    def __init__(self, path: str | None = None, fmt: str = "text", debug: bool = False) -> None:
        self.path = path
        self.fmt = fmt
        self.debug = debug

    def __repr__(self) -> str:
        return f"RuntimeLog(path={self.path!r}, fmt={self.fmt!r}, debug={self.debug!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RuntimeLog):
            return NotImplemented
        return (self.path, self.fmt, self.debug) == (other.path, other.fmt, other.debug)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaced

    def write(self, level: str, msg: str) -> None:
        if level == "debug" and not self.debug:
            return
        if not self.path:
            return
        if self.fmt == "json":
            import json

            line = json.dumps({"level": level, "msg": msg, "time": _timestamp()})
        else:
            line = f'time="{_timestamp()}" level={level} msg="{msg}"'
        # O_APPEND keeps concurrent writers (shim + several runtime calls) from tearing lines.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def error(self, msg: str) -> None:
        self.write("error", msg)
        print(f"runnc-py: {msg}", file=sys.stderr)

    def warning(self, msg: str) -> None:
        self.write("warning", msg)
        print(f"runnc-py: warning: {msg}", file=sys.stderr)

    def info(self, msg: str) -> None:
        self.write("info", msg)

    def debug_(self, msg: str) -> None:
        self.write("debug", msg)
