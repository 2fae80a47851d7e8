"""A container's own writable copy of a cached image: reflink if the filesystem can, else sparse.

FICLONE (XFS with reflink, btrfs, bcachefs) shares every block copy-on-write: O(1) whatever
the image size. Elsewhere (ext4, tmpfs) only the allocated ranges are copied, found with
SEEK_DATA/SEEK_HOLE and moved in the kernel with copy_file_range, so holes stay holes.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from runnc_py.errors import RunncError

FICLONE = 0x40049409  # _IOW(0x94, 9, int)
_NO_COPY_RANGE = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}
_CHUNK = 1 << 20
_NO_REFLINK = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM}


def _sparse_copy(src: int, dst: int, size: int) -> None:
    os.ftruncate(dst, size)
    offset = 0
    while offset < size:
        try:
            start = os.lseek(src, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole remains
                return
            raise
        end = os.lseek(src, start, os.SEEK_HOLE)
        _copy_range(src, dst, start, end)
        offset = end


def _copy_range(src: int, dst: int, start: int, end: int) -> None:
    position = start
    while position < end:
        try:
            n = os.copy_file_range(src, dst, end - position, position, position)
        except OSError as exc:
            # Across filesystems (tmpfs → ext4) the kernel refuses: copy through userspace.
            if exc.errno not in _NO_COPY_RANGE:
                raise
            break
        if n == 0:
            raise OSError(errno.EIO, "copy_file_range copied nothing")
        position += n
    while position < end:
        chunk = os.pread(src, min(_CHUNK, end - position), position)
        if not chunk:
            raise OSError(errno.EIO, "image shrank while being copied")
        os.pwrite(dst, chunk, position)
        position += len(chunk)


def temp_path(dest: Path, pid: int) -> Path:
    """Where process PID builds the copy for `dest` before renaming it into place (a process
    killed mid-copy leaves it: whoever cleans up after that process removes it)."""
    return dest.with_name(f".{dest.name}.{pid}.tmp")


def clone_file(src: int, dest: Path) -> str:
    """Copy the open file `src` to `dest` (replaced atomically); "reflink" or "sparse-copy"."""
    size = os.fstat(src).st_size
    tmp = temp_path(dest, os.getpid())
    try:
        dst = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except OSError as exc:
        raise RunncError(f"cannot create image copy: {exc.strerror}", where=str(dest)) from None
    try:
        try:
            fcntl.ioctl(dst, FICLONE, src)
            method = "reflink"
        except OSError as exc:
            if exc.errno not in _NO_REFLINK:
                raise
            _sparse_copy(src, dst, size)
            method = "sparse-copy"
        os.close(dst)
        dst = -1
        os.rename(tmp, dest)
    except OSError as exc:
        if dst >= 0:
            os.close(dst)
        tmp.unlink(missing_ok=True)
        reason = "no space left on device" if exc.errno == errno.ENOSPC else exc.strerror
        raise RunncError(f"cannot copy image: {reason}", where=str(dest)) from None
    return method
