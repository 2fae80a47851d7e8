"""Doing work inside another network namespace without moving the caller.

setns(CLONE_NEWNET) changes only the calling thread, and sockets and taps stay bound to the
namespace they were created in. So each call runs its whole job in a short-lived thread that
joined the namespace: the caller's thread never changes namespace, even when the job fails
halfway, and no child process (pyroute2's `NetNS` forks one per socket) is needed.
"""

from __future__ import annotations

import errno
import os

from runnc_py.errors import RunncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")
CLONE_NEWNET = 0x40000000
# The calling thread's namespace: /proc/self/ns/net is the main thread's, and `run_in_netns`
# runs jobs in a thread that joined another one.
SELF = "/proc/thread-self/ns/net"
_libc: Any = None  # ctypes.CDLL, loaded on first use


def open_netns(path: str) -> int:
    """An O_RDONLY fd on a netns file (`/proc/PID/ns/net`, `/run/netns/NAME`)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RunncError("network namespace does not exist", where=path) from None
    except OSError as exc:
        raise RunncError(f"cannot open network namespace: {exc.strerror}", where=path) from None


def netns_id(fd: int) -> str:
    """`dev:inode` of a namespace: stays the same for its whole life, differs between two."""
    st = os.fstat(fd)
    return f"{st.st_dev}:{st.st_ino}"


def current_netns_id() -> str:
    fd = open_netns(SELF)
    try:
        return netns_id(fd)
    finally:
        os.close(fd)


def run_in_netns(netns: str | None, job: Callable[[], T], *, fd: int | None = None) -> T:
    """Run `job()` in `netns` (a path; None = the caller's own) and return or raise its result.

    Pass `fd` when the caller already opened the namespace (to compare its id first). When the
    caller is in that namespace already (`create`'s init wiring its own), the job runs right
    here: no thread, no setns.
    """
    if netns is None:
        return job()
    own_fd = fd is None
    nsfd = open_netns(netns) if fd is None else fd
    try:
        here = netns_id(nsfd) == current_netns_id()
    except BaseException:
        if own_fd:
            os.close(nsfd)
        raise
    if here:
        try:
            return job()
        finally:
            if own_fd:
                os.close(nsfd)
    outcome: dict[str, object] = {}

    def runner() -> None:
        try:
            _setns(nsfd, netns)
            outcome["value"] = job()
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    import threading  # only for another namespace: create's init wires its own (~3 ms)

    try:
        thread = threading.Thread(target=runner, name="runnc-netns")
        thread.start()
        thread.join()
    finally:
        if own_fd:
            os.close(nsfd)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def _setns(fd: int, path: str) -> None:
    try:
        _raw_setns(fd)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise RunncError("is not a network namespace", where=path) from None
        raise RunncError(
            f"cannot enter network namespace: {os.strerror(exc.errno or 0)}", where=path
        ) from None


def _raw_setns(fd: int) -> None:
    """setns(fd, CLONE_NEWNET): os.setns from Python 3.12, else libc through ctypes (loaded
    only here: importing ctypes costs ~1 ms of every networked `create`)."""
    if hasattr(os, "setns"):
        os.setns(fd, CLONE_NEWNET)
        return
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
