"""Open files named by paths inside a container's rootfs: once, race-free, as fds.

A path in the bundle (`process.args[0]`, `org.runnc-py.block.*`) names a file inside the
rootfs, which whoever owns the bundle can change at any time, also between `create`'s checks
and the init's use (a `createRuntime` hook, or a loop racing `create`). So such a path is
resolved exactly once, by the kernel, with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
relative to an fd of the rootfs: `..` stops at the rootfs, absolute symlinks restart there,
/proc magic links are refused. The result is an fd; everything after (the checks, the ELF
reader, the launcher, the block device) works on that fd and never on the path again.

Files are first opened O_PATH (which opens nothing: a device node or a fifo has no side
effect), checked to be regular files, and only then reopened with the access mode wanted
through /proc/self/fd/N, which names the open file itself, not a path.
"""

from __future__ import annotations

import os
import stat

from runnc_py.errors import RunncError

RESOLVE_NO_MAGICLINKS = 0x02  # <linux/openat2.h>
RESOLVE_IN_ROOT = 0x10
IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS


def open_root(root: str, *, where: str) -> int:
    """An O_PATH fd of the rootfs directory ROOT (a host path the engine gave us)."""
    try:
        return os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise RunncError(f"cannot open the rootfs {root}: {exc.strerror}", where=where) from None


def open_in_root(root_fd: int, path: str, *, where: str) -> int:
    """An O_PATH fd of PATH resolved inside the rootfs ROOT_FD, as if it were `/`."""
    from runnc_py import _launcher

    fd = _launcher.lib.runnc_openat2(root_fd, path.encode(), os.O_PATH | os.O_CLOEXEC, IN_ROOT)
    if fd >= 0:
        return fd
    err = _launcher.ffi.errno
    if err == 2:  # ENOENT
        raise RunncError(f"{path} not found in the rootfs", where=where)
    if err == 40:  # ELOOP
        raise RunncError(f"too many symbolic links resolving {path}", where=where)
    if err == 20:  # ENOTDIR
        raise RunncError(f"{path}: a component is not a directory", where=where)
    if err == 38:  # ENOSYS
        raise RunncError(
            "resolving paths inside the rootfs needs openat2 (Linux 5.6 or later)", where=where
        )
    raise RunncError(f"cannot resolve {path} in the rootfs: {os.strerror(err)}", where=where)


def host_path(fd: int) -> str:
    """Where the file of FD is on the host, for messages only: never opened again."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"fd {fd}"


def open_regular_file(root_fd: int, path: str, flags: int, *, where: str) -> int:
    """PATH inside the rootfs, checked to be a regular file, opened with FLAGS."""
    handle = open_in_root(root_fd, path, where=where)
    try:
        mode = os.fstat(handle).st_mode
        if not stat.S_ISREG(mode):
            raise RunncError(f"{host_path(handle)} is not a regular file", where=where)
        return reopen(handle, flags, where=where)
    finally:
        os.close(handle)


def reopen(fd: int, flags: int, *, where: str) -> int:
    """The file FD refers to, opened anew with FLAGS (O_CLOEXEC added)."""
    try:
        return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)
    except OSError as exc:
        raise RunncError(f"cannot open {host_path(fd)}: {exc.strerror}", where=where) from None
