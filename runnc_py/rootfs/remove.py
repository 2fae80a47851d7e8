"""Remove a directory tree of any depth: iteratively, by file descriptor, two fds at a time.

`shutil.rmtree` recurses once per level (RecursionError on a tree a hostile layer nested
3000 deep: the work directory then stayed in the cache's tmp/ and `rootfs gc` crashed on it
every time) and builds paths that outgrow PATH_MAX. Here the walk goes down with
openat(name, O_NOFOLLOW) and back up with openat("..") checked against the (dev, inode) it
came from, so it never follows a symlink, never builds a long path, and keeps only the names
still to visit in memory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Level:
    """One directory on the way down: its fd's identity and the subdirectories still to do."""

    __slots__ = ("ident", "name", "pending")

    def __init__(self, ident: tuple[int, int], name: str, pending: list[str]) -> None:
        self.ident = ident
        self.name = name  # its name in the parent
        self.pending = pending


def _scan(fd: int) -> list[str]:
    """Unlink every non-directory in the directory FD; return its subdirectories."""
    subdirs = []
    with os.scandir(fd) as it:
        for entry in it:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.name)
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.name, dir_fd=fd)
    return subdirs


def _ident(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def remove_tree(path: str | os.PathLike[str], *, ignore_errors: bool = False) -> None:
    """Remove PATH and everything below it; a symlink or file at PATH is just unlinked.

    OSError on failure unless IGNORE_ERRORS (then it removes what it can). Never raises
    RecursionError: there is no recursion.
    """
    try:
        _remove_tree(os.fspath(path))
    except OSError:
        if not ignore_errors:
            raise


def _remove_tree(path: str) -> None:
    parent_path, name = os.path.split(path.rstrip("/") or "/")
    parent = os.open(parent_path or ".", _DIR_FLAGS & ~os.O_NOFOLLOW)
    try:
        try:
            st = os.lstat(name, dir_fd=parent)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=parent)
            return
        _empty(parent, name)
        os.rmdir(name, dir_fd=parent)
    finally:
        os.close(parent)


def _empty(parent: int, name: str) -> None:
    """Empty the directory NAME of PARENT, depth first, without recursion."""
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    levels = [_Level(_ident(fd), name, _scan(fd))]
    try:
        while levels:
            level = levels[-1]
            if level.pending:
                child = level.pending.pop()
                try:
                    child_fd = os.open(child, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    if exc.errno != errno.ELOOP and exc.errno != errno.ENOTDIR:
                        raise
                    # Replaced by a symlink or file since the scan: unlink that instead.
                    os.unlink(child, dir_fd=fd)
                    continue
                os.close(fd)
                fd = child_fd
                levels.append(_Level(_ident(fd), child, _scan(fd)))
                continue
            # Every subdirectory is gone; anything created meanwhile is caught by a rescan.
            leftover = _scan(fd)
            if leftover:
                level.pending = leftover
                continue
            levels.pop()
            if not levels:
                break
            up = os.open("..", _DIR_FLAGS & ~os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = up
            if _ident(fd) != levels[-1].ident:
                raise OSError(errno.ESTALE, "directory moved while being removed", level.name)
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(level.name, dir_fd=fd)
    finally:
        os.close(fd)
