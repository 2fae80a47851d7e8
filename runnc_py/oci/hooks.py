"""OCI hooks: run each hook of one kind in order, with the container's state JSON on stdin.

A hook gets `path` as the program, `args` as its full argv (args[0] is argv[0]), `env` as its
whole environment (the runtime's own when the hook has none) and is killed after `timeout`
seconds. Whether a failure is fatal depends on the kind (see `FATAL`); the caller decides what
to tear down.
"""

from __future__ import annotations

import os

from runnc_py.errors import RunncError
from runnc_py.oci import fastjson
from runnc_py.oci.spec import Hook

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

# The runtime spec: prestart/createRuntime/createContainer/startContainer failures stop the
# container; poststart/poststop failures are only logged.
FATAL = frozenset({"prestart", "createRuntime", "createContainer", "startContainer"})
_SHOWN = 200  # characters of a failing hook's output kept in the one-line error
# What is kept of a hook's output (stdout and stderr together): its first and last bytes. The
# rest is read and dropped as it comes, so a hook printing gigabytes costs no memory.
HEAD_BYTES = 4096
TAIL_BYTES = 4096
_CHUNK = 65536
# After the hook has exited, what is still in the pipe is read; a background child it left
# holding the pipe may go on writing, so the drain stops after this much.
_DRAIN_BYTES = 1 << 20
_IDLE_MS = 1000  # poll period without a pidfd (kernels < 5.3): how often exit is checked


class HookOutput:
    """The head and tail of a stream, and how much was dropped between them."""

    def __init__(self, head: int = HEAD_BYTES, tail: int = TAIL_BYTES) -> None:
        self._head_max, self._tail_max = head, tail
        self.head = b""
        self.tail = b""
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self._head_max - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail = (self.tail + data)[-self._tail_max :]

    @property
    def dropped(self) -> int:
        return self.total - len(self.head) - len(self.tail)

    def text(self, limit: int = _SHOWN) -> str:
        """One printable line: control characters (terminal escapes, newlines) become spaces,
        runs of spaces one; the middle is elided to keep LIMIT characters at most."""
        head, tail = clean(self.head), clean(self.tail)
        if self.dropped == 0:
            whole = clean(self.head + self.tail)
            if len(whole) <= limit:
                return whole
            head, tail = whole[: limit // 3], whole[-(limit - limit // 3) :]
        else:
            head, tail = head[: limit // 3], tail[-(limit - limit // 3) :]
        return f"{head} [...] {tail}"


def clean(data: bytes) -> str:
    """DATA as text safe for a terminal and a one-line log entry."""
    text = data.decode(errors="replace")
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def run_hook(kind: str, hook: Hook, state: Mapping[str, Any]) -> None:
    """Run one hook; RunncError if it cannot start, exits non-zero or times out."""
    import subprocess  # here: `create` without hooks should not pay for it

    # The path is config.json's: shown escaped if it holds control characters.
    where = f"{kind} hook {hook.path if hook.path.isprintable() else ascii(hook.path)}"
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
    output = HookOutput()
    try:
        returncode = _supervise(proc, fastjson.dumps(dict(state)).encode(), output, hook.timeout)
    finally:
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                try:  # noqa: SIM105 (contextlib costs create ~1 ms)
                    pipe.close()
                except OSError:
                    pass
    if returncode is None:
        raise RunncError(f"timed out after {hook.timeout} s", where=where)
    if returncode != 0:
        status = (
            f"was killed by signal {-returncode}"
            if returncode < 0
            else f"exited with status {returncode}"
        )
        shown = output.text()
        raise RunncError(f"{status}{': ' + shown if shown else ''}", where=where)


def _supervise(proc: Any, payload: bytes, output: HookOutput, timeout: int | None) -> int | None:
    """Feed PAYLOAD to the hook's stdin and keep OUTPUT of what it prints until the hook
    process itself exits (not until its stdout closes: a background child it left may hold
    that open forever). Its exit status, or None after killing its group on TIMEOUT.

    One thread, poll(2) on the pipes and a pidfd: the init calls this and must stay
    single-threaded for the launcher.
    """
    import select
    import signal
    import time

    assert proc.stdin is not None and proc.stdout is not None
    out_fd, in_fd = proc.stdout.fileno(), proc.stdin.fileno()
    os.set_blocking(out_fd, False)
    os.set_blocking(in_fd, False)
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = -1
    deadline = None if timeout is None else time.monotonic() + timeout
    poller = select.poll()
    poller.register(out_fd, select.POLLIN)
    if pidfd >= 0:
        poller.register(pidfd, select.POLLIN)
    if payload:
        poller.register(in_fd, select.POLLOUT)
    else:
        proc.stdin.close()
    sent = 0
    try:
        while proc.poll() is None:
            wait_ms = _IDLE_MS if pidfd < 0 else -1
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    # The hook runs in its own session: kill the whole group, helpers included.
                    try:  # noqa: SIM105 (contextlib costs create ~1 ms)
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait()
                    return None
                wait_ms = min(int(left * 1000) + 1, wait_ms if wait_ms >= 0 else 1 << 30)
            for fd, events in poller.poll(wait_ms):
                if fd == out_fd:
                    if not _read_some(out_fd, output):
                        poller.unregister(out_fd)  # EOF: everyone closed it
                elif fd == in_fd:
                    sent = _write_some(in_fd, payload, sent, events)
                    if sent >= len(payload):
                        poller.unregister(in_fd)
                        proc.stdin.close()
        _drain(out_fd, output)
        return int(proc.returncode)
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _read_some(fd: int, output: HookOutput) -> bool:
    """Read what is there; False at end of file."""
    try:
        data = os.read(fd, _CHUNK)
    except BlockingIOError:
        return True
    if not data:
        return False
    output.add(data)
    return True


def _write_some(fd: int, payload: bytes, sent: int, events: int) -> int:
    """Write more of PAYLOAD from offset SENT; everything counts as sent once the hook stops
    reading (closed its stdin, or exited): the state is offered, not forced on it."""
    import select

    if events & (select.POLLERR | select.POLLHUP):
        return len(payload)
    try:
        return sent + os.write(fd, payload[sent : sent + _CHUNK])
    except BlockingIOError:
        return sent
    except OSError:  # EPIPE: the hook closed its stdin without reading it all
        return len(payload)


def _drain(fd: int, output: HookOutput) -> None:
    """After the hook exited: what it wrote before exiting is still in the pipe."""
    budget = _DRAIN_BYTES
    while budget > 0:
        try:
            data = os.read(fd, _CHUNK)
        except (BlockingIOError, OSError):
            return
        if not data:
            return
        output.add(data)
        budget -= len(data)


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


def hooks_from_json(items: Iterable[Any], where: str = "state.json: hooks") -> list[Hook]:
    """Hooks saved in state.json (for poststop at delete) back into Hook objects.

    Checked again as config.json's were: state.json is read back from disk, and a field of
    the wrong type must be one line, not a TypeError half-way through running the hook."""
    from runnc_py.oci.spec import MAX_HOOK_TIMEOUT
    from runnc_py.strictnum import json_int

    hooks = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):  # a JSON object
            raise RunncError("corrupt state: a hook must be an object", where=at)
        path = item.get("path")
        if not isinstance(path, str) or not os.path.isabs(path):
            raise RunncError("corrupt state: path must be an absolute path", where=at)
        args, env = item.get("args", []), item.get("env")
        for name, value in (("args", args), ("env", [] if env is None else env)):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise RunncError(f"corrupt state: {name} must be a list of strings", where=at)
        timeout = item.get("timeout")
        if timeout is not None:
            json_int(timeout, where=f"{at}.timeout", low=1, high=MAX_HOOK_TIMEOUT)
        hooks.append(
            Hook(
                path=path,
                args=tuple(args),
                env=tuple(env) if env is not None else None,
                timeout=timeout,
            )
        )
    return hooks
