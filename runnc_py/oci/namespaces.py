"""`linux.namespaces` for a unikernel: which to join, which to create, which make no sense.

The guest can only make the system calls of its seccomp allowlist (write to stdout, its own
device fds, clocks, epoll): it never opens a path, sees a pid, or touches IPC. So:

  network  joined (path: podman's/Docker's netns) or created: taps live in it and Docker's
           bridge prestart hook configures it. Required for the guest's network devices.
  uts, ipc joined or created: cheap, and hooks that look at them see what they expect.
  mount    not entered: the init opens the unikernel and its images from the runtime's view
           before the filter forbids any open(); no mount is ever made, so none can leak.
  pid      not created: the guest would become a pid namespace's init, and the kernel drops
           SIGTERM/SIGINT sent to such an init without a handler, so `docker stop` would
           always wait for SIGKILL. A path (shared pid namespace) is ignored the same way.
  cgroup, time  ignored: they only change what the (file-less) guest could read.
  user     refused: uid/gid mapping is not implemented.
"""

from __future__ import annotations

import os

from runnc_py.errors import RunncError
from runnc_py.record import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from runnc_py.oci.spec import Namespace

CLONE_FLAGS = {
    "network": 0x40000000,  # CLONE_NEWNET
    "uts": 0x04000000,  # CLONE_NEWUTS
    "ipc": 0x08000000,  # CLONE_NEWIPC
}
IGNORED = frozenset({"mount", "pid", "cgroup", "time"})
REFUSED = {"user": "user namespaces (uid/gid mapping) are not supported"}


class NsAction(FrozenRecord):
    """Join the namespace at `path`, or create a new one when `path` is None."""

    __slots__ = ("path", "type")
    type: str
    path: str | None

    def __init__(self, type: str, path: str | None) -> None:
        self._set(type=type, path=path)


def plan_namespaces(namespaces: Iterable[Namespace]) -> list[NsAction]:
    """What the init does for each entry of linux.namespaces (joins first). Pure."""
    actions: list[NsAction] = []
    for i, ns in enumerate(namespaces):
        where = f"config.json: linux.namespaces[{i}]"
        if ns.type in REFUSED:
            raise RunncError(REFUSED[ns.type], where=where)
        if ns.type in IGNORED:
            continue
        if ns.type not in CLONE_FLAGS:
            raise RunncError(f"unknown namespace type {ns.type!r}", where=where)
        actions.append(NsAction(ns.type, ns.path))
    # Join before creating: a new namespace made first would be replaced by the join anyway.
    return sorted(actions, key=lambda a: a.path is None)


def enter(actions: Iterable[NsAction], hostname: str | None = None) -> None:
    """In the init process: join or create each namespace; set HOSTNAME in a new uts ns."""
    import ctypes  # here: only the init that enters namespaces needs it, not create's parent

    libc = ctypes.CDLL(None, use_errno=True)
    actions = list(actions)
    # Open every path first: a joined namespace must not change how later paths resolve.
    fds: list[tuple[NsAction, int]] = []
    try:
        for action in actions:
            if action.path is not None:
                try:
                    fds.append((action, os.open(action.path, os.O_RDONLY | os.O_CLOEXEC)))
                except OSError as exc:
                    raise RunncError(
                        f"cannot open {action.type} namespace: {exc.strerror}", where=action.path
                    ) from None
        for action, fd in fds:
            if libc.setns(fd, CLONE_FLAGS[action.type]) != 0:
                err = ctypes.get_errno()
                raise RunncError(
                    f"cannot join {action.type} namespace: {os.strerror(err)}", where=action.path
                )
    finally:
        for _, fd in fds:
            os.close(fd)
    flags = 0
    for action in actions:
        if action.path is None:
            flags |= CLONE_FLAGS[action.type]
    if flags and libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise RunncError(f"cannot create namespaces: {os.strerror(err)}", where="unshare")
    new_uts = any(a.type == "uts" and a.path is None for a in actions)
    if hostname and new_uts:
        name = hostname.encode()
        if libc.sethostname(name, len(name)) != 0:
            err = ctypes.get_errno()
            raise RunncError(
                f"cannot set hostname: {os.strerror(err)}", where="config.json: hostname"
            )
