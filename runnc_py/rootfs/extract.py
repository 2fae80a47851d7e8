"""The effectful side of layer application: a work directory that mirrors the merged tree.

Only this module writes the extracted tree. It writes below its own root and nowhere else:
the Applier hands it real paths (no symlink on them, see tree.py), and every final
component is created with O_EXCL/O_NOFOLLOW semantics, so even a symlink planted in the work
directory could not redirect a write. Device nodes are never created on the host: an empty
placeholder stands in and debugfs makes the real node inside the image.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from runnc_py.errors import RunncError
from runnc_py.rootfs.mkfs import Fixup
from runnc_py.rootfs.remove import remove_tree
from runnc_py.rootfs.tree import DataOpener, Inode, Tree

CHUNK = 1 << 20
_ZEROS = bytes(CHUNK)


class DiskSink:
    """Materialises applier decisions under `root` (a private, empty directory)."""

    def __init__(self, root: Path, where: str) -> None:
        self.root = str(root)
        self.where = where

    def _p(self, path: str) -> str:
        return os.path.join(self.root, path) if path else self.root

    @contextlib.contextmanager
    def _guard(self, action: str, path: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise RunncError(
                    "no space left on the host device while extracting layers",
                    where=self.root,
                ) from None
            raise RunncError(f"cannot {action} /{path}: {exc.strerror}", where=self.where) from None

    def mkdir(self, path: str) -> None:
        with self._guard("create directory", path):
            os.mkdir(self._p(path), 0o700)

    def write(self, path: str, size: int, data: DataOpener) -> None:
        with self._guard("write file", path):
            fd = os.open(
                self._p(path),
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
            try:
                source = data() if size else None
                written = 0
                while source is not None and written < size:
                    chunk = source.read(min(CHUNK, size - written))
                    if not chunk:
                        break
                    # All-zero chunks become holes: sparse files stay sparse, and mke2fs
                    # skips unallocated ranges when it copies.
                    if chunk == _ZEROS[: len(chunk)]:
                        os.lseek(fd, len(chunk), os.SEEK_CUR)
                    else:
                        os.write(fd, chunk)
                    written += len(chunk)
                os.ftruncate(fd, size)
            finally:
                os.close(fd)

    def symlink(self, path: str, target: str) -> None:
        with self._guard("create symlink", path):
            os.symlink(target, self._p(path))

    def link(self, path: str, existing: str) -> None:
        with self._guard("create hardlink", path):
            os.link(self._p(existing), self._p(path), follow_symlinks=False)

    def special(self, path: str, inode: Inode) -> None:
        with self._guard("create special file", path):
            if inode.kind == "fifo":
                os.mkfifo(self._p(path), 0o600)
            else:  # device placeholder, replaced inside the image by a Fixup
                os.close(
                    os.open(
                        self._p(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
                    )
                )

    def remove(self, path: str, inode: Inode) -> None:
        with self._guard("remove", path):
            if inode.kind == "dir":
                remove_tree(self._p(path))  # fd-based, iterative, never follows symlinks
            else:
                os.unlink(self._p(path))


def apply_metadata(tree: Tree, root: Path) -> list[Fixup]:
    """Give every extracted file its final owner, mode, xattrs and mtime.

    Directories last (children first), so their mtimes stay. What the host refuses (chown as
    an unprivileged user, trusted.* xattrs) becomes a Fixup for debugfs instead.
    """
    try:
        return _apply_metadata(tree, str(root))
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise RunncError(
                "no space left on the host device while extracting layers", where=str(root)
            ) from None
        raise RunncError(f"cannot set metadata: {exc}", where=str(root)) from None


def _apply_metadata(tree: Tree, base: str) -> list[Fixup]:
    privileged = os.geteuid() == 0
    me = (os.geteuid(), os.getegid())
    fixups: list[Fixup] = []
    done: set[int] = set()
    for path, inode in tree.walk():
        if inode.kind in ("char", "block"):
            fixups.append(
                Fixup(
                    path, inode.kind, inode.mode, inode.uid, inode.gid, int(inode.mtime), inode.rdev
                )
            )
            continue
        if id(inode) in done:
            continue
        done.add(id(inode))
        full = os.path.join(base, path) if path else base
        if path == "":
            # mke2fs gives the image root its own metadata; only debugfs can change it.
            if (inode.mode, inode.uid, inode.gid) != (0o755, 0, 0) or inode.xattrs:
                fixups.append(
                    Fixup("", "dir", inode.mode, inode.uid, inode.gid, None, None, inode.xattrs)
                )
            continue
        fixup = Fixup(path, inode.kind)
        owner = (inode.uid, inode.gid)
        if owner != me:
            try:
                if not privileged:
                    raise PermissionError
                os.lchown(full, inode.uid, inode.gid)  # before chmod: chown clears setuid
            except OSError:
                fixup.uid, fixup.gid = owner
        if inode.kind != "symlink":
            # Unprivileged, mke2fs could not read a 0000 file: keep the owner's access on
            # disk and set the true mode in the image.
            on_disk = inode.mode
            if not privileged:
                on_disk |= 0o700 if inode.kind == "dir" else 0o400
            os.chmod(full, on_disk)
            if on_disk != inode.mode:
                fixup.mode = inode.mode
        for name, value in inode.xattrs.items():
            try:
                os.setxattr(full, name, value, follow_symlinks=False)
            except OSError:
                fixup.xattrs[name] = value
        mtime = int(inode.mtime * 1_000_000_000)
        os.utime(full, ns=(mtime, mtime), follow_symlinks=False)
        if fixup.uid is not None or fixup.mode is not None or fixup.xattrs:
            fixups.append(fixup)
    return fixups
