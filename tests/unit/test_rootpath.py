"""Rootfs paths resolved by the kernel inside the rootfs, opened once (runnc_py/oci/rootpath.py).

openat2 needs no privileges: these run as any user, on a tree of symlinks made to escape.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runnc_py.errors import RunncError
from runnc_py.oci.rootpath import host_path, open_in_root, open_regular_file, open_root


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "app" / "bin").mkdir(parents=True)
    (root / "app" / "bin" / "u.spt").write_bytes(b"inside")
    (root / "abs-link").symlink_to("/app/bin/u.spt")
    (root / "app" / "rel-link").symlink_to("bin/u.spt")
    (root / "escape").symlink_to("../../../../etc/passwd")
    (root / "escape-abs").symlink_to("/etc")
    (root / "magic").symlink_to("/proc/self/root/etc/passwd")
    (root / "loop").symlink_to("loop")
    (root / "file").write_bytes(b"")
    (root / "dir").mkdir()
    os.mkfifo(root / "fifo")
    (tmp_path / "outside.spt").write_bytes(b"secret")
    return root


@pytest.fixture
def root_fd(rootfs: Path) -> Iterator[int]:
    fd = open_root(str(rootfs), where="w")
    yield fd
    os.close(fd)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/app/bin/u.spt", "app/bin/u.spt"),
        ("app/./bin//u.spt", "app/bin/u.spt"),
        ("/abs-link", "app/bin/u.spt"),  # absolute symlinks restart at the rootfs
        ("/app/rel-link", "app/bin/u.spt"),
        ("/../../app/bin/u.spt", "app/bin/u.spt"),  # `..` stops at the rootfs
        ("/app/bin/../../app/bin/u.spt", "app/bin/u.spt"),
    ],
)
def test_paths_resolve_inside(rootfs: Path, root_fd: int, path: str, expected: str) -> None:
    fd = open_regular_file(root_fd, path, os.O_RDONLY, where="w")
    try:
        assert host_path(fd) == str(rootfs / expected)
        assert os.read(fd, 16) == b"inside"
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/escape", "not found in the rootfs"),  # ../../etc/passwd re-rooted: none inside
        ("/escape-abs/passwd", "not found in the rootfs"),
        ("/../outside.spt", "not found in the rootfs"),
        ("/magic", "not found in the rootfs"),  # /proc re-rooted too: not the host's
        ("/loop", "too many symbolic links"),
        ("/file/x", "a component is not a directory"),
        ("/missing.spt", "not found in the rootfs"),
    ],
)
def test_paths_never_leave_the_rootfs(root_fd: int, path: str, message: str) -> None:
    with pytest.raises(RunncError, match=message):
        os.close(open_in_root(root_fd, path, where="w"))


@pytest.mark.parametrize("path", ["/dir", "/fifo"])
def test_only_regular_files_are_opened(root_fd: int, path: str) -> None:
    # A fifo opened for reading would block; O_PATH first means it is never really opened.
    with pytest.raises(RunncError, match="is not a regular file"):
        open_regular_file(root_fd, path, os.O_RDONLY, where="w")


def test_the_fd_keeps_the_file_when_the_path_is_swapped(rootfs: Path, root_fd: int) -> None:
    fd = open_regular_file(root_fd, "/app/bin/u.spt", os.O_RDONLY, where="w")
    try:
        (rootfs / "app").rename(rootfs / "app.old")
        (rootfs / "app").symlink_to(rootfs.parent)  # now points out of the rootfs
        assert os.pread(fd, 16, 0) == b"inside"
    finally:
        os.close(fd)
