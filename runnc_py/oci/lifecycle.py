"""The OCI verbs on unikernel containers: create, start, kill, delete, pause, ... (the library).

Every verb on an existing container is: lock `<root>/<id>/lock` -> load state.json -> derive the
status -> refuse what the status does not allow -> act -> save. Only `state` and `list` read
without the lock (state.json is replaced atomically, so they never see half a file).

This module is imported by the hot verbs (`state`, `kill`, `start`, `delete`): module-level
imports stay builtin-only; specs, plans, the launcher, cgroups and hooks are imported where used.
"""

from __future__ import annotations

import os
import time

from runnc_py.errors import RunncError
from runnc_py.oci.state import (
    CREATED,
    CREATING,
    FIFO_FILE,
    PAUSED,
    RUNNING,
    STOPPED,
    ContainerState,
    Lock,
    Store,
    check_own_dir,
    pid_matches,
    proc_start_time,
    signal_verified,
)
from runnc_py.record import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from runnc_py.globals import Globals
    from runnc_py.monitor.launch import LaunchRequest
    from runnc_py.oci.autodev import AutoDevices
    from runnc_py.oci.cgroup_plan import CgroupPlan
    from runnc_py.oci.cgroups import Cgroup
    from runnc_py.oci.init import Channel
    from runnc_py.oci.plan import UnikernelPlan
    from runnc_py.oci.security import ProcessSecurity
    from runnc_py.oci.spec import Spec

KILL_WAIT = 10.0  # s: how long delete waits for a SIGKILLed init to die
NET_JSON = "net.json"  # runnc_py.net.store.NET_JSON, not imported: `delete` is a hot path


# ---------------------------------------------------------------------------- helpers


def container_dir(g: Globals, container_id: str) -> str:
    """Our directory for CONTAINER_ID; hands the whole call to the delegate runtime when the
    container is one of its own (see delegate.py)."""
    store = Store(g.root)
    path = store.dir(container_id)
    if os.path.lexists(path):
        check_own_dir(path, container_id)
        return path
    if os.path.isdir(os.path.join(store.delegate_root(), container_id)):
        if g.delegate:
            from runnc_py.oci.delegate import exec_delegate

            exec_delegate(g.delegate, g.argv, store.delegate_root())
        raise RunncError(
            "container belongs to the delegate runtime: give --delegate RUNTIME", where=container_id
        )
    raise RunncError("container does not exist", where=container_id)


def _cgroup(state: ContainerState) -> Cgroup | None:
    if not state.cgroup:
        return None
    from runnc_py.oci.cgroups import Cgroup, CgroupLayout

    return Cgroup.from_record(state.cgroup, CgroupLayout.detect())


def _wait_gone(pid: int, start: int | None, timeout: float = KILL_WAIT) -> bool:
    """Wait until PID (recorded with START) is dead or a zombie; reap it if it is our child."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while pid_matches(pid, start):
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # not our child: its parent (the engine's shim) reaps it
    return True


def _signal(pid: int, signum: int) -> bool:
    """kill(2); False if PID is gone (ESRCH). No contextlib: this is on the hot path."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def _kill_init(state: ContainerState) -> None:
    """SIGKILL the init (thawing it if frozen, or it could not die) and wait for its death."""
    if not signal_verified(state.pid, state.pid_start, 9):
        return
    cgroup = _cgroup(state)
    if cgroup is not None and state.paused:
        cgroup.thaw()
        state.paused = False
    if not _wait_gone(state.pid, state.pid_start):
        raise RunncError(f"init process {state.pid} did not die after SIGKILL", where=state.id)


def _teardown(
    store: Store,
    state: ContainerState,
    pid_file: str | None = None,
    warn: Callable[[str], None] | None = None,
) -> None:
    """Remove everything a container has on this host: init, network wiring, rootfs image,
    cgroup, state dir (pid file). What cannot be undone is reported through WARN."""
    _kill_init(state)
    cgroup = _cgroup(state)
    if cgroup is not None:
        _kill_members(cgroup)  # anything the state did not name (or named wrongly)
    _release_devices(store, state, warn)
    if cgroup is not None:
        cgroup.remove()
    if pid_file and os.path.lexists(pid_file):
        os.unlink(pid_file)
    store.remove(state.id)


def _release_devices(
    store: Store, state: ContainerState, warn: Callable[[str], None] | None
) -> None:
    """Unwire the network (net.json) and remove the rootfs copy, if the container has them.

    After the init's death: its taps are open until then. Failures are warnings, so the rest
    of the container still goes (a record kept for a retry would hold nothing that works).
    """
    problems: list[str] = []
    net_json = os.path.join(store.dir(state.id), NET_JSON)
    if os.path.exists(net_json):  # checked first: the network modules load only when needed
        from runnc_py.net import store as net_store
        from runnc_py.net.wiring import unwire

        try:
            record = net_store.load(os.path.dirname(net_json))
            if record.wired is not None:
                unwire(record.wired)
        except RunncError as exc:
            problems.append(exc.line())
    if state.rootfs_image:
        from runnc_py.oci.autodev import remove_rootfs_copy

        try:
            remove_rootfs_copy(state.rootfs_image, state.creator)
        except RunncError as exc:
            problems.append(exc.line())
    for problem in problems:
        if warn is not None:
            warn(f"{state.id}: {problem}")


def _kill_members(cgroup: Cgroup) -> list[int]:
    """SIGKILL every process in CGROUP and wait (bounded) until it is empty; the pids found."""
    found = cgroup.pids()
    if found:
        if cgroup.is_frozen():
            cgroup.thaw()  # a frozen task cannot act on SIGKILL
        cgroup.signal(9)
        deadline = time.monotonic() + KILL_WAIT
        while cgroup.pids() and time.monotonic() < deadline:
            time.sleep(0.01)
    return found


def _teardown_unrecorded(g: Globals, store: Store, container_id: str, why: RunncError) -> None:
    """`delete --force` without a usable state.json (docs/state.md, rule 7): kill what is in
    the default cgroup, unwire net.json, remove the derived rootfs copy and the directory, and
    say what could not be identified."""
    from runnc_py.oci.autodev import rootfs_copy_path
    from runnc_py.oci.cgroup_plan import cgroup_path
    from runnc_py.oci.cgroups import Cgroup, CgroupLayout

    layout = CgroupLayout.detect()
    default_path = cgroup_path(container_id, None, g.systemd_cgroup)
    cgroup = Cgroup(layout.version, default_path, layout.mounts)
    killed = _kill_members(cgroup)
    problems: list[str] = []
    try:
        cgroup.remove()
    except RunncError as exc:
        problems.append(exc.line())
    image = rootfs_copy_path(store.root, container_id)
    stub = ContainerState(
        id=container_id,
        bundle="",
        rootfs="",
        created="",
        rootfs_image=image if os.path.exists(image) else None,
    )
    _release_devices(store, stub, problems.append)
    store.remove(container_id)
    g.log.warning(
        f"{container_id}: state unusable ({why.message}); removed what can be derived without "
        f"it: cgroup {cgroup.path} ({len(killed)} processes killed), the network journal, the "
        "rootfs copy. An init outside that cgroup or a custom linux.cgroupsPath could not be "
        "found" + "".join(f"; {p}" for p in problems)
    )


def _write_pid_file(path: str, pid: int) -> None:
    """Atomically, as runc: the pid in decimal, no newline."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, str(pid).encode())
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError as exc:
        raise RunncError(f"cannot write the pid file: {exc.strerror}", where=path) from None


def _owner() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


# ---------------------------------------------------------------------------- state / list


def load_status(g: Globals, container_id: str) -> tuple[ContainerState, str]:
    path = container_dir(g, container_id)
    state = Store(g.root).load(container_id)
    return state, state.status(path)


def state_json(g: Globals, container_id: str) -> str:
    from runnc_py.oci import fastjson

    state, status = load_status(g, container_id)
    return fastjson.dumps(state.oci(status), indent=2)


def list_states(g: Globals) -> list[dict[str, Any]]:
    """runc `list` entries; unreadable state dirs are reported on stderr and skipped."""
    store = Store(g.root)
    out = []
    for container_id in store.ids():
        try:
            state = store.load(container_id)
        except RunncError as exc:
            g.log.warning(exc.line())
            continue
        out.append(state.oci(state.status(store.dir(container_id))))
    return out


# ---------------------------------------------------------------------------- create


class CreateJob(FrozenRecord):
    """Everything `create` decided before anything exists on the host (pure data)."""

    __slots__ = (
        "auto",
        "bundle",
        "cg_plan",
        "container_id",
        "engine_files",
        "ns_actions",
        "plan",
        "preserved",
        "request",
        "rootfs_image",
        "security",
        "spec",
        "terminal_socket",
    )

    def __init__(
        self,
        *,
        auto: AutoDevices,
        bundle: str,
        cg_plan: CgroupPlan,
        container_id: str,
        engine_files: Any,
        ns_actions: Any,
        plan: UnikernelPlan,
        preserved: tuple[int, ...],
        request: LaunchRequest,
        rootfs_image: str | None,
        security: ProcessSecurity,
        spec: Spec,
        terminal_socket: str | None,
    ) -> None:
        self._set(
            auto=auto,
            bundle=bundle,
            cg_plan=cg_plan,
            container_id=container_id,
            engine_files=engine_files,
            ns_actions=ns_actions,
            plan=plan,
            preserved=preserved,
            request=request,
            rootfs_image=rootfs_image,
            security=security,
            spec=spec,
            terminal_socket=terminal_socket,
        )


def create(
    g: Globals,
    container_id: str,
    bundle: str,
    pid_file: str | None = None,
    console_socket: str | None = None,
    *,
    foreground: bool = False,
    preserve_fds: int = 0,
) -> int:
    """Create the container: an init process waiting for `start`. Returns its pid.

    FOREGROUND (`run` without --detach): a terminal without --console-socket is allowed and
    the guest uses the inherited stdio. PRESERVE_FDS: runc's --preserve-fds (oci/fds.py).
    The steps, in order: plan (refuse what can be refused, nothing on the host yet) -> state
    dir -> rootfs image -> exec.fifo -> console -> fork the init -> its cgroup -> prestart
    and createRuntime hooks -> devices -> pid file -> "created". Any failure tears down
    everything made so far.
    """
    from runnc_py.oci.migration import start_grace_period

    start_grace_period()  # the cgroup join's kernel wait, overlapped with planning (its doc)
    store = Store(g.root)
    job = plan_create(g, store, container_id, bundle, console_socket, foreground, preserve_fds)
    try:
        return _create_planned(g, store, job, pid_file)
    finally:
        job.plan.close()  # the init has its own copies of the rootfs files it opened


def plan_create(
    g: Globals,
    store: Store,
    container_id: str,
    bundle: str,
    console_socket: str | None,
    foreground: bool,
    preserve_fds: int,
) -> CreateJob:
    """Step 1: read and check everything; refuse before anything exists on the host."""
    from runnc_py.monitor import launch
    from runnc_py.oci import autodev, cgroup_plan, security
    from runnc_py.oci.fds import check_handed_fds, preserved_fds
    from runnc_py.oci.mounts import plan_mounts
    from runnc_py.oci.namespaces import plan_namespaces
    from runnc_py.oci.plan import NotAUnikernel, plan_from_spec
    from runnc_py.oci.spec import load_spec
    from runnc_py.oci.state import check_id

    check_id(container_id)
    bundle = os.path.abspath(bundle)
    if store.exists(container_id):
        raise RunncError("container with this ID already exists", where=container_id)
    spec = load_spec(bundle)
    try:
        plan = plan_from_spec(spec)
    except NotAUnikernel:
        if g.delegate:
            from runnc_py.oci.delegate import exec_delegate

            exec_delegate(g.delegate, g.argv, store.delegate_root())
        raise
    try:
        # A bind mount the guest cannot see is refused here; the engine's files go in its image.
        engine_files = plan_mounts(spec.raw.get("mounts") or (), plan.annotations)
        request = plan.request()
        # Only the fds the caller preserved may reach the guest (oci/fds.py).
        preserved = preserved_fds(preserve_fds)
        check_handed_fds(request.nets, preserved)
        auto = autodev.plan_auto_devices(
            plan.annotations, launch.load_image(request).manifest, request
        )
        rootfs_image = (
            autodev.rootfs_copy_path(store.root, container_id) if auto.rootfs_device else None
        )
        request = auto.with_rootfs(request, rootfs_image)
        launch.check(auto.check_request(request))
        _check_terminal(spec.terminal, console_socket, foreground)
        return CreateJob(
            auto=auto,
            bundle=bundle,
            cg_plan=cgroup_plan.plan_cgroup(
                container_id, spec.cgroups_path, spec.resources, g.systemd_cgroup
            ),
            container_id=container_id,
            engine_files=engine_files,
            ns_actions=plan_namespaces(spec.namespaces),
            plan=plan,
            preserved=preserved,
            request=request,
            rootfs_image=rootfs_image,
            security=security.plan_process_security(spec.process),
            spec=spec,
            terminal_socket=console_socket if spec.terminal else None,
        )
    except BaseException:
        plan.close()
        raise


def _check_terminal(terminal: bool, console_socket: str | None, foreground: bool) -> None:
    if terminal and console_socket is None and not foreground:
        raise RunncError(
            "process.terminal is set: a detached container needs --console-socket", where="create"
        )
    if console_socket is not None and not terminal:
        raise RunncError("--console-socket given but process.terminal is false", where="create")


def _create_planned(g: Globals, store: Store, job: CreateJob, pid_file: str | None) -> int:
    """Steps 2 on: make it all, recording each thing in state.json before it exists, so a
    create killed half-way leaves what `delete --force` finds."""
    from runnc_py.oci.init import expect_ok, send_go

    directory = store.make_dir(job.container_id)
    state = _initial_state(job)
    wrote_pid_file: str | None = None
    try:
        store.save(state)
        with Lock(directory) as lock:
            _build_rootfs_image(g, job)
            fifo = os.path.join(directory, FIFO_FILE)
            os.mkfifo(fifo, 0o600)
            slave = _console_slave(job.terminal_socket)
            chan = _fork_init(g, job, state, fifo, slave, lock.fd)
            try:
                store.save(state)  # the init's pid and start time
                _make_cgroup_meanwhile(store, state, job.cg_plan, chan)
                _run_create_hooks(job, state)
                send_go(chan, "create: devices")
                expect_ok(chan, "create: devices")
                if pid_file:
                    _write_pid_file(pid_file, state.pid)
                    wrote_pid_file = pid_file
                state.phase = CREATED
                store.save(state)
                send_go(chan, "create")
            finally:
                chan.close()
    except BaseException:
        try:
            _teardown(store, state, wrote_pid_file, g.log.warning)
        except RunncError as exc:
            g.log.warning(f"cleanup after failed create: {exc.line()}")
        raise
    g.log.debug_(f"created {job.container_id} (init pid {state.pid})")
    return state.pid


def _initial_state(job: CreateJob) -> ContainerState:
    from runnc_py.oci.log import _timestamp

    me = os.getpid()
    spec = job.spec
    return ContainerState(
        id=job.container_id,
        bundle=job.bundle,
        rootfs=spec.root_path,
        created=_timestamp(),
        owner=_owner(),
        annotations=dict(spec.annotations),
        phase=CREATING,
        creator=me,
        creator_start=proc_start_time(me),
        hooks={
            kind: [h.to_json() for h in spec.hooks[kind]]
            for kind in ("poststart", "poststop")
            if spec.hooks.get(kind)
        },
        # Recorded before it exists: a create killed half-way leaves a copy to delete.
        rootfs_image=job.rootfs_image,
    )


def _build_rootfs_image(g: Globals, job: CreateJob) -> None:
    if job.rootfs_image is None:
        return
    from runnc_py.oci import autodev

    info = autodev.build_rootfs(job.spec.root_path, job.rootfs_image, job.auto, job.engine_files)
    g.log.debug_(
        f"{job.container_id}: rootfs {info.path} ({'built' if info.built else 'cached'}, "
        f"{info.copy_method}, {info.seconds * 1000:.0f} ms)"
    )


def _console_slave(console_socket: str | None) -> int | None:
    """With --console-socket: a pty whose master went to the engine; its slave, for the init."""
    if console_socket is None:
        return None
    from runnc_py.oci.console import open_pty, send_master

    master, slave = open_pty()
    try:
        send_master(console_socket, master)
    except BaseException:
        os.close(slave)
        raise
    finally:
        os.close(master)
    return slave


def _hook_state(state: ContainerState, status: str) -> dict[str, Any]:
    # Also called in the init, whose copy of `state` predates the fork: its pid is its own.
    return state.oci(status) | {"pid": state.pid or os.getpid()}


def _fork_init(
    g: Globals,
    job: CreateJob,
    state: ContainerState,
    fifo: str,
    slave: int | None,
    lock_fd: int,
) -> Channel:
    """Fork the init (runnc_py/oci/init.py); record its pid in STATE; the parent's channel."""
    from runnc_py.oci import autodev
    from runnc_py.oci.init import InitConfig, channel_pair, run_init

    spec = job.spec
    cfg = InitConfig(
        container_id=job.container_id,
        fifo=fifo,
        ns_actions=job.ns_actions,
        hostname=spec.hostname,
        console_slave=slave,
        hooks=spec.hooks,
        hook_state=lambda status: _hook_state(state, status),
        request=job.request,
        security=job.security,
        log=g.log,
        network=autodev.network_job(
            spec,
            job.auto,
            os.path.dirname(fifo),
            job.security.uid,
            job.security.gid,
            job.plan,
        ),
        keep_fds=(*job.preserved, *job.plan.fds()),
    )
    parent_chan, init_chan = channel_pair()
    pid = os.fork()
    if pid == 0:  # the init: never returns
        # The lock's open file description is shared across fork: a copy kept here would
        # hold the container's lock for as long as the init lives.
        os.close(lock_fd)
        parent_chan.close()
        try:
            run_init(init_chan, cfg)
        finally:
            # Never unwind into the parent's code: it would tear down the container from
            # inside its own init.
            os._exit(1)
    init_chan.close()
    if slave is not None:
        os.close(slave)
    state.pid, state.pid_start = pid, proc_start_time(pid)
    return parent_chan


def _make_cgroup(store: Store, state: ContainerState, cg_plan: CgroupPlan) -> None:
    from runnc_py.oci import cgroups

    layout = cgroups.CgroupLayout.detect()
    # Recorded before it exists: a create killed half-way leaves a cgroup that
    # `delete --force` must find.
    state.cgroup = cgroups.Cgroup(layout.version, cg_plan.path, layout.mounts).to_json()
    store.save(state)
    cgroup = cgroups.Cgroup.create(cg_plan, layout=layout)
    state.cgroup = cgroup.to_json()
    store.save(state)
    cgroup.add(state.pid)


def _make_cgroup_meanwhile(
    store: Store, state: ContainerState, cg_plan: CgroupPlan, chan: Channel
) -> None:
    """The cgroup made and joined while the init enters its namespaces (the cgroup namespace
    is ignored, oci/namespaces.py, so the order is free), then the init's "ok" awaited. When
    the cgroup step fails, the init's own error wins if it has one: joining fails with "no
    such process" only because the init died first, and its message says why."""
    from runnc_py.oci.init import expect_ok

    try:
        _make_cgroup(store, state, cg_plan)
    except (RunncError, OSError):
        expect_ok(chan, "create: namespaces")
        raise
    expect_ok(chan, "create: namespaces")


def _run_create_hooks(job: CreateJob, state: ContainerState) -> None:
    """prestart (deprecated, still Docker's networking) then createRuntime, in the runtime's
    namespaces; the init runs createContainer in the container's."""
    from runnc_py.oci.hooks import run_hooks

    for kind in ("prestart", "createRuntime"):
        run_hooks(kind, job.spec.hooks.get(kind, ()), _hook_state(state, CREATING))


# ---------------------------------------------------------------------------- start / kill


def start(g: Globals, container_id: str) -> None:
    path = container_dir(g, container_id)
    store = Store(g.root)
    with Lock(path):
        state = store.load(container_id)
        status = state.status(path)
        if status != CREATED:
            if status == STOPPED and state.phase == CREATED:  # never started: its init died
                raise RunncError(
                    f"cannot start a container that has stopped: its init (pid {state.pid}) "
                    "was killed or died before start",
                    where=container_id,
                )
            if status == STOPPED:
                raise RunncError("cannot start a container that has stopped", where=container_id)
            raise RunncError(f"cannot start a container that is {status}", where=container_id)
        fifo = os.path.join(path, FIFO_FILE)
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            # ENXIO: no reader, the init is not waiting (any more).
            raise RunncError(
                f"the container's init is not waiting: {exc.strerror}", where=container_id
            ) from None
        try:
            os.write(fd, b"0")
            os.unlink(fifo)
            _wait_reader_gone(fd, state)
        finally:
            os.close(fd)
        state.phase = RUNNING
        store.save(state)
        _run_saved_hooks(g, state, "poststart", RUNNING)


def _wait_reader_gone(fd: int, state: ContainerState) -> None:
    """Return once the init has closed exec.fifo (startContainer hooks done, guest booting).

    A pipe writer learns that the last reader left from POLLERR, but POLLOUT hides it while
    there is room: fill the pipe first (the init reads one byte only), then poll.
    """
    import select

    chunk = bytes(65536)
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    while True:
        try:
            while os.write(fd, chunk):
                pass
        except BlockingIOError:
            pass
        except BrokenPipeError:
            return
        events = poller.poll(100)
        if any(mask & (select.POLLERR | select.POLLHUP) for _, mask in events):
            return
        if not state.init_alive():
            return


def _run_saved_hooks(g: Globals, state: ContainerState, kind: str, status: str) -> None:
    """Hooks recorded at create (poststart, poststop): failures are warnings (runtime spec)."""
    saved = state.hooks.get(kind)
    if saved:
        from runnc_py.oci.hooks import hooks_from_json, run_hooks

        run_hooks(kind, hooks_from_json(saved), state.oci(status), warn=g.log.warning)


def kill(g: Globals, container_id: str, signal: str = "SIGTERM", *, all_: bool = False) -> None:
    from runnc_py.oci.signals import parse_signal

    signum = parse_signal(signal)
    path = container_dir(g, container_id)
    with Lock(path):
        state = Store(g.root).load(container_id)
        status = state.status(path)
        # containerd's shim recognises "container not running" as "already gone".
        if status in (STOPPED, CREATING):
            raise RunncError("container not running", where=container_id)
        # Gone since we looked (ESRCH): the purpose is met.
        signal_verified(state.pid, state.pid_start, signum)
        cgroup = _cgroup(state) if all_ else None
        if cgroup is not None:
            cgroup.signal(signum)
        if signum == 9 and status == PAUSED:
            # A frozen task cannot act on SIGKILL until thawed.
            frozen = _cgroup(state)
            if frozen is not None:
                frozen.thaw()
                state.paused = False
                Store(g.root).save(state)


# ---------------------------------------------------------------------------- delete


def delete(g: Globals, container_id: str, *, force: bool = False) -> None:
    store = Store(g.root)
    path = container_dir(g, container_id)
    with Lock(path):
        try:
            state = store.load(container_id)
        except RunncError as exc:
            if not force:
                raise
            # Unreadable or missing state.json (a create killed before its first save, or
            # tampering): clean what can be derived without it.
            _teardown_unrecorded(g, store, container_id, exc)
            return
        status = state.status(path)
        if status in (RUNNING, PAUSED, CREATING) and not force:
            raise RunncError(
                f"cannot delete a container that is not stopped: {status} (use --force)",
                where=container_id,
            )
        was_created = state.phase != CREATING
        _teardown(store, state, warn=g.log.warning)
        if was_created:
            _run_saved_hooks(g, state, "poststop", STOPPED)


# ---------------------------------------------------------------------------- pause / ps / update


def pause(g: Globals, container_id: str) -> None:
    _set_paused(g, container_id, True)


def resume(g: Globals, container_id: str) -> None:
    _set_paused(g, container_id, False)


def _set_paused(g: Globals, container_id: str, paused: bool) -> None:
    path = container_dir(g, container_id)
    store = Store(g.root)
    with Lock(path):
        state = store.load(container_id)
        status = state.status(path)
        need = RUNNING if paused else PAUSED
        if status != need:
            verb = "pause" if paused else "resume"
            raise RunncError(f"cannot {verb} a container that is {status}", where=container_id)
        cgroup = _cgroup(state)
        if cgroup is None:
            raise RunncError("container has no cgroup to freeze", where=container_id)
        if paused:
            cgroup.freeze()
        else:
            cgroup.thaw()
        state.paused = paused
        store.save(state)


def ps_pids(g: Globals, container_id: str) -> list[int]:
    path = container_dir(g, container_id)
    store = Store(g.root)
    with Lock(path):
        state = store.load(container_id)
        status = state.status(path)
        if status == STOPPED:
            return []
        cgroup = _cgroup(state)
        pids = set(cgroup.pids()) if cgroup is not None else set()
        if state.init_alive():
            pids.add(state.pid)
        return sorted(pids)


def update(g: Globals, container_id: str, resources: Mapping[str, Any]) -> None:
    """Apply new cgroup limits (memory, pids, cpu) to a live container."""
    path = container_dir(g, container_id)
    store = Store(g.root)
    with Lock(path):
        state = store.load(container_id)
        status = state.status(path)
        if status == STOPPED:
            raise RunncError("container not running", where=container_id)
        cgroup = _cgroup(state)
        if cgroup is None:
            raise RunncError("container has no cgroup", where=container_id)
        cgroup.update(changed_resources(resources), where="--resources")


def changed_resources(resources: Mapping[str, Any]) -> dict[str, Any]:
    """`update`'s input without the fields it leaves alone. Engines send every field, with
    0 (or "") for "unchanged" (`docker update --memory` sends reservation 0, cpu shares 0,
    pids 0): runc's rule, and none of those zeros would be a valid limit anyway. Pure."""
    out: dict[str, Any] = {}
    for section, values in resources.items():
        if isinstance(values, dict):
            kept = {k: v for k, v in values.items() if v not in (0, "", None) or v is False}
            if kept:
                out[section] = kept
        elif values not in (0, "", None):
            out[section] = values
    return out


# ---------------------------------------------------------------------------- run


def run(
    g: Globals,
    container_id: str,
    bundle: str,
    pid_file: str | None = None,
    console_socket: str | None = None,
    *,
    detach: bool = False,
    preserve_fds: int = 0,
) -> int:
    """create + start, then (unless DETACH) wait for the guest, delete, return its status."""
    import signal as signal_module

    pid = create(
        g,
        container_id,
        bundle,
        pid_file,
        console_socket,
        foreground=not detach,
        preserve_fds=preserve_fds,
    )
    forwarded = (
        signal_module.SIGTERM,
        signal_module.SIGINT,
        signal_module.SIGHUP,
        signal_module.SIGQUIT,
        signal_module.SIGUSR1,
        signal_module.SIGUSR2,
        signal_module.SIGWINCH,
    )
    if not detach:
        # The guest is our child: forward what we receive, as `runc run` does.
        def forward(signum: int, _frame: object) -> None:
            _signal(pid, signum)

        for signum in forwarded:
            signal_module.signal(signum, forward)
    try:
        start(g, container_id)
    except BaseException:
        if not detach:
            delete(g, container_id, force=True)
        raise
    if detach:
        return 0
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    delete(g, container_id, force=True)
    return code if code >= 0 else 128 - code


def exec_refusal(g: Globals, container_id: str) -> RunncError:
    """The answer to `exec` on one of our containers (a delegated one is handed over)."""
    container_dir(g, container_id)  # raises "does not exist"; execs the delegate if it is its own
    return RunncError(
        "cannot exec into a unikernel container: the guest is a single address space with "
        "no processes to add",
        where=container_id,
    )
