"""One lstat pass over a directory tree: what it needs on ext4, and a fingerprint of it.

Used for bundle rootfs directories (read-only is fine: nothing here writes) and for the work
directory a layer stack was extracted into. Never follows symlinks.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from runnc_py.errors import RunncError
from runnc_py.rootfs.limits import Budget, BuildLimits
from runnc_py.rootfs.paths import DevicePolicy, check_device, check_path
from runnc_py.rootfs.size import BLOCK, ContentStats

_FAST_SYMLINK_MAX = 59  # ext4 keeps shorter targets inside the inode


def _blocks(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


@dataclass(frozen=True)
class TreeScan:
    stats: ContentStats
    fingerprint: str | None  # sha256 over every entry's path and stat, when asked for
    root_mode: int
    root_uid: int
    root_gid: int


def scan_tree(
    root: Path,
    *,
    devices: DevicePolicy | None = None,
    fingerprint: bool = False,
    where: str,
    limits: BuildLimits | None = None,
) -> TreeScan:
    """Count inodes and allocated bytes under `root`; check devices against the policy.

    Every entry's path is checked against the image's depth and length limits (mke2fs
    1.47.0 corrupts its heap on some long paths, see paths.MAX_PATH_BYTES), and with
    `limits` the entry count and file data against the build's budget, as the walk goes.

    The fingerprint covers path, type, mode, owner, size, mtime, ctime, inode and device
    number of every entry (and symlink targets): any change a writer can make to a directory
    tree changes at least the ctime of something in it.
    """
    try:
        top = os.lstat(root)
    except OSError as exc:
        raise RunncError(f"cannot read directory: {exc.strerror}", where=str(root)) from None
    if not stat.S_ISDIR(top.st_mode):
        raise RunncError("not a directory", where=str(root))
    digest = hashlib.sha256() if fingerprint else None
    budget = Budget(limits, where) if limits is not None else None
    seen: set[tuple[int, int]] = set()
    entries = data = meta = 0
    stack = [(str(root), "")]
    while stack:
        directory, rel = stack.pop()
        dir_bytes = 24  # "." and ".."
        try:
            with os.scandir(directory) as it:
                children = sorted(it, key=lambda e: e.name) if digest else list(it)
        except OSError as exc:
            raise RunncError(f"cannot read directory: {exc.strerror}", where=directory) from None
        for child in children:
            path = f"{rel}/{child.name}" if rel else child.name
            check_path(path, where=where)
            if budget is not None:
                budget.count_file()
            try:
                st = child.stat(follow_symlinks=False)
            except OSError as exc:
                raise RunncError(f"cannot stat: {exc.strerror}", where=child.path) from None
            dir_bytes += 8 + (len(os.fsencode(child.name)) + 3) // 4 * 4
            mode = st.st_mode
            target = ""
            if stat.S_ISLNK(mode):
                target = os.readlink(child.path)
                if len(os.fsencode(target)) > _FAST_SYMLINK_MAX:
                    meta += BLOCK
            elif (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) and devices is not None:
                kind = "char" if stat.S_ISCHR(mode) else "block"
                check_device(
                    kind, os.major(st.st_rdev), os.minor(st.st_rdev), devices, where=child.path
                )
            if digest is not None:
                digest.update(
                    f"{path}\0{mode:o} {st.st_uid} {st.st_gid} {st.st_size} {st.st_mtime_ns} "
                    f"{st.st_ctime_ns} {st.st_ino} {st.st_rdev}\0{target}\n".encode(
                        "utf-8", "surrogateescape"
                    )
                )
            if st.st_nlink > 1 and not stat.S_ISDIR(mode):
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            entries += 1
            if stat.S_ISREG(mode):
                data += _blocks(min(st.st_size, st.st_blocks * 512))
                if budget is not None:
                    budget.check_data(data, where)
            elif stat.S_ISDIR(mode):
                stack.append((child.path, path))
        meta += _blocks(dir_bytes)
    return TreeScan(
        ContentStats(entries=entries, data_bytes=data, meta_bytes=meta),
        digest.hexdigest() if digest else None,
        stat.S_IMODE(top.st_mode),
        top.st_uid,
        top.st_gid,
    )
