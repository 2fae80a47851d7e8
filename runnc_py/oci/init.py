"""The container's init process: the child `create` forks, which later becomes the guest.

Its pid is the container's pid from `create` on (the engine waits on it), so the guest's exit
status is the container's. Steps, with the parent (`lifecycle.create`) in lock-step over a
pair of pipes (`Channel`):

  1. only our own fds kept (oci/fds.py); new session; the console slave as controlling tty
     and stdio (process.terminal); join/create namespaces (see namespaces.py)  -> "ok"
  2. (parent: cgroup, prestart + createRuntime hooks)                        <- "go"
  3. the namespace's interfaces handed to the guest's free network devices (the engine set
     the namespace up during 1-2; taps, tc filters, net.json: see oci/autodev.py);
     createContainer hooks in the container's namespaces (they see the taps);
     launch.prepare() opens the devices and compiles the filter;
     exec.fifo opened for reading without blocking
  then, for an spt guest without startContainer hooks (the common case):
  4. drop privileges (user, rlimits, capabilities, NNP); the launcher maps and loads the
     guest                                                                   -> "ok"
     (parent: pid file, state "created", exits)                              <- "go"
  5. the launcher unmaps the interpreter; its trampoline waits until `start` writes a byte
     into exec.fifo, closes it (`start` waits for this, then runs poststart hooks),
     installs the filter and jumps. A created container holds only guest memory.
  otherwise (startContainer hooks, or an hvt guest):
  4.                                                                         -> "ok"
     (parent: pid file, state "created", exits)                              <- "go"
  5. wait (in Python) until `start` writes a byte into exec.fifo
  6. startContainer hooks; close exec.fifo; drop privileges; boot.

Before the parent's last "go" every failure goes back to the parent, which reports it and
tears the container down; a parent that dies (EOF on the channel) makes the init exit at
once. After it the engine's stdio and --log are the only witnesses, so failures are written
there, exit status 1.
"""

from __future__ import annotations

# The C half of `signal`: the same calls without the enum import (create's import budget).
import _signal
import os
import select

from runnc_py.errors import RunncError
from runnc_py.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, NoReturn

    from runnc_py.oci.log import RuntimeLog
    from runnc_py.oci.namespaces import NsAction
    from runnc_py.oci.spec import Hook

OK, GO = b"ok", b"go"
ERROR_PREFIX = b"error "
MAX_MESSAGE = 4096


# ---------------------------------------------------------------------------- sync protocol


class Channel:
    """One end of the parent/init lock-step: a pipe to read, a pipe to write.

    Each message is one write of at most PIPE_BUF bytes (atomic), and each side waits for the
    other's answer before writing again, so one read is always one message. A closed peer
    reads as b"" (EOF). Plain pipes: `socket` would cost an import on `create`'s path.
    """

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd

    def send(self, message: bytes) -> None:
        try:
            os.write(self.wfd, message[:MAX_MESSAGE])
        except OSError as exc:  # EPIPE: the other side died
            raise RunncError(f"lost contact with the container's init: {exc.strerror}") from None

    def recv(self) -> bytes:
        return os.read(self.rfd, MAX_MESSAGE)

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            if fd >= 0:
                os.close(fd)
        self.rfd = self.wfd = -1


def channel_pair() -> tuple[Channel, Channel]:
    """(parent end, init end); every fd close-on-exec."""
    down_r, down_w = os.pipe2(os.O_CLOEXEC)
    up_r, up_w = os.pipe2(os.O_CLOEXEC)
    return Channel(up_r, down_w), Channel(down_r, up_w)


def send(chan: Channel, message: bytes) -> None:
    chan.send(message)


def expect_ok(chan: Channel, where: str) -> None:
    """Parent side: wait for "ok"; raise the init's own error or report its death."""
    try:
        message = chan.recv()
    except OSError as exc:
        raise RunncError(
            f"lost contact with the container's init: {exc.strerror}", where=where
        ) from None
    if message == OK:
        return
    if message.startswith(ERROR_PREFIX):
        raise RunncError(message[len(ERROR_PREFIX) :].decode(errors="replace"))
    raise RunncError("the container's init exited unexpectedly", where=where)


def send_go(chan: Channel, where: str) -> None:
    """Parent side: tell the init to go on. If it died meanwhile, what it said before dying
    (its own error, already in the pipe) or that it died wins over the broken pipe."""
    try:
        chan.send(GO)
    except RunncError:
        expect_ok(chan, where)
        raise


def _wait_go(chan: Channel) -> None:
    """Init side: block until the parent says go; exit quietly if the parent is gone."""
    try:
        message = chan.recv()
    except OSError:
        message = b""
    if message != GO:
        os._exit(1)


# ---------------------------------------------------------------------------- exec.fifo


def open_fifo_reader(path: str) -> int:
    """Open exec.fifo for reading without blocking: from now on `start` can open it."""
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)


def wait_fifo(path: str, fd: int) -> int:
    """Block until a writer (`start`) puts a byte into the fifo; returns the fd, still open.

    A reader that never saw a writer does not get POLLHUP; one whose writer left without
    writing does, for good, so it reopens the fifo to block again. The caller closes the fd
    when the guest is about to boot: `start` waits for that close (see lifecycle.start).
    """
    poller = select.poll()
    while True:
        poller.register(fd, select.POLLIN)
        poller.poll()
        try:
            data = os.read(fd, 1)
        except BlockingIOError:
            continue
        if data:
            return fd
        poller.unregister(fd)
        os.close(fd)
        fd = open_fifo_reader(path)


# ---------------------------------------------------------------------------- the init


class InitConfig(Record):
    """What the init needs, decided by `create` before the fork."""

    __slots__ = (
        "console_slave",
        "container_id",
        "fifo",
        "hook_state",
        "hooks",
        "hostname",
        "keep_fds",
        "log",
        "network",
        "ns_actions",
        "request",
        "security",
    )
    container_id: str
    fifo: str
    ns_actions: Sequence[NsAction]
    hostname: str | None
    console_slave: int | None
    hooks: Mapping[str, Sequence[Hook]]
    hook_state: Callable[[str], Mapping[str, Any]]  # status -> state JSON for hooks
    request: Any  # monitor.launch.LaunchRequest
    security: Any  # oci.security.ProcessSecurity
    log: RuntimeLog
    network: Any  # oci.autodev.NetworkJob: network devices to wire here, if any
    # Inherited fds that are the container's (--preserve-fds) or the plan's (rootfs files):
    # every other fd above stdio is closed first thing (oci/fds.py).
    keep_fds: Sequence[int]

    def __init__(
        self,
        container_id: str,
        fifo: str,
        ns_actions: Sequence[NsAction],
        hostname: str | None,
        console_slave: int | None,
        hooks: Mapping[str, Sequence[Hook]],
        hook_state: Callable[[str], Mapping[str, Any]],
        request: Any,
        security: Any,
        log: RuntimeLog,
        network: Any = None,
        keep_fds: Sequence[int] = (),
    ) -> None:
        self.container_id = container_id
        self.fifo = fifo
        self.ns_actions = ns_actions
        self.hostname = hostname
        self.console_slave = console_slave
        self.hooks = hooks
        self.hook_state = hook_state
        self.request = request
        self.security = security
        self.log = log
        self.network = network
        self.keep_fds = keep_fds


def run_init(chan: Channel, cfg: InitConfig) -> NoReturn:
    """The init's whole life (see the module docstring). Never returns."""
    try:
        _enter_container(chan, cfg)
        send(chan, OK)
        _import_boot_modules(cfg)
        _wait_go(chan)
        prepared, fifo_fd = _prepare_guest(cfg)
        if _waits_in_launcher(cfg):
            _boot_when_started(chan, cfg, prepared, fifo_fd)  # returns only by raising
        send(chan, OK)
        _wait_go(chan)
        chan.close()
    except BaseException as exc:  # everything goes back to the parent
        message = exc.line() if isinstance(exc, RunncError) else f"init failed: {exc!r}"
        # The parent may be gone (killed mid-create): Channel.send says so with RunncError.
        try:  # noqa: SIM105 (contextlib costs create ~1 ms)
            send(chan, ERROR_PREFIX + message.encode())
        except (OSError, RunncError):
            pass
        os._exit(1)

    try:
        _start_in_python(cfg, prepared, fifo_fd)
    except RunncError as exc:
        _report(cfg, exc.line())
    except BaseException as exc:  # never unwind into the code of `create`
        _report(cfg, f"init failed: {exc!r}")
    os._exit(1)


def _enter_container(chan: Channel, cfg: InitConfig) -> None:
    """Step 1: own fds only, own session, the console, the container's namespaces."""
    # Python turns SIGINT into KeyboardInterrupt: the container must die of it as a plain
    # process does. SIGPIPE stays ignored while Python runs (a hook that does not read its
    # stdin must not kill us); the launcher resets every signal before the jump.
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
    from runnc_py.oci.fds import close_inherited_fds

    # Before anything else, so no hook ever sees an fd of the engine's in our /proc/PID/fd.
    own = (chan.rfd, chan.wfd, *(() if cfg.console_slave is None else (cfg.console_slave,)))
    close_inherited_fds((*own, *cfg.keep_fds))
    os.setsid()
    if cfg.console_slave is not None:
        from runnc_py.oci.console import become_terminal

        become_terminal(cfg.console_slave)
    from runnc_py.oci.namespaces import enter

    enter(cfg.ns_actions, cfg.hostname)


def _import_boot_modules(cfg: InitConfig) -> None:
    """Between steps 1 and 3, while the parent joins the cgroup and runs the runtime's hooks:
    import what steps 3-5 use. Imports touch nothing on the host, so they need not wait."""
    from runnc_py.monitor import launch
    from runnc_py.oci import security

    names = (*launch.boot_modules(cfg.request), *security.MODULES, "runnc_py.oci.hooks")
    if cfg.network is not None:
        from runnc_py.oci import autodev  # loaded already: create planned the network with it

        names += autodev.NETWORK_MODULES
    for name in names:
        __import__(name)


def _prepare_guest(cfg: InitConfig) -> tuple[Any, int]:
    """Step 3: wire the network, createContainer hooks, open the devices and compile the
    filter (launch.prepare), open exec.fifo for reading. Returns (prepared, fifo fd)."""
    from runnc_py.monitor import launch
    from runnc_py.oci.hooks import run_hooks

    request = cfg.request
    if cfg.network is not None:
        from runnc_py.oci.autodev import wire_network

        # From here on net.json records the wiring: a failure below is undone by the
        # parent's teardown (or by `delete`, if the parent died).
        request = wire_network(cfg.network, request)
    run_hooks("createContainer", cfg.hooks.get("createContainer", ()), cfg.hook_state("creating"))
    prepared = launch.prepare(request)
    return prepared, open_fifo_reader(cfg.fifo)


def _waits_in_launcher(cfg: InitConfig) -> bool:
    """A guest without startContainer hooks waits for `start` inside the launcher (spt) or the
    monitor's run loop (hvt), with the interpreter unmapped. startContainer hooks must run in
    the init after `start`: those keep waiting in Python."""
    return not cfg.hooks.get("startContainer")


def _boot_when_started(chan: Channel, cfg: InitConfig, prepared: Any, fifo_fd: int) -> None:
    """Steps 4-6 in the launcher: drop privileges now, then let the C side map and load the
    guest, answer "ok" and wait for "go" (any failure until then still reaches `create`),
    shed the interpreter and, from the trampoline, wait for `start`'s byte on exec.fifo."""
    from runnc_py.monitor import launch
    from runnc_py.oci.security import apply_process_security

    apply_process_security(cfg.security)
    gate = launch.StartGate(ready_fd=chan.wfd, go_fd=chan.rfd, fifo_fd=fifo_fd, fifo_path=cfg.fifo)
    launch.boot(prepared, gate=gate)


def _start_in_python(cfg: InitConfig, prepared: Any, fifo_fd: int) -> NoReturn:
    """Steps 5-6 the slower way: wait for `start` here, run startContainer hooks, close
    exec.fifo (`start` waits for that, then runs poststart), drop privileges, boot."""
    from runnc_py.monitor import launch
    from runnc_py.oci.hooks import run_hooks
    from runnc_py.oci.security import apply_process_security

    fifo_fd = wait_fifo(cfg.fifo, fifo_fd)
    run_hooks("startContainer", cfg.hooks.get("startContainer", ()), cfg.hook_state("created"))
    os.close(fifo_fd)  # tells `start` the guest is booting: it runs poststart hooks now
    apply_process_security(cfg.security)
    launch.boot(prepared)


def _report(cfg: InitConfig, message: str) -> None:
    try:  # noqa: SIM105 (contextlib costs create ~1 ms)
        cfg.log.error(f"container {cfg.container_id}: {message}")
    except OSError:
        pass
