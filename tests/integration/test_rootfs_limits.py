"""Issue 9 item 7: depth, path length, decompressed size and file count of a rootfs source are
capped before extraction or mke2fs; a failed build leaves nothing in the cache's tmp/, and
`rootfs gc --all` removes leftovers of any depth. Through the real CLI, mke2fs and e2fsck.
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runnc_py.rootfs.limits import DEFAULT_MAX_BYTES, BuildLimits
from runnc_py.rootfs.paths import MAX_DEPTH, MAX_PATH_BYTES
from runnc_py.rootfs.remove import remove_tree

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True)
def remove_deep_trees(tmp_path: Path) -> Iterator[None]:
    """pytest's own tmp_path cleanup is shutil.rmtree, which recursion stops on deep trees."""
    yield
    for child in tmp_path.iterdir():
        remove_tree(child, ignore_errors=True)


def tar_of(*members: tuple[str, bytes], trailer: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue() + trailer


def nested_dirs(root: Path, names: list[str], leaf: str | None = None) -> None:
    """ROOT/names[0]/names[1]/... made with dir fds: deeper than any path the host takes."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names:
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        if leaf is not None:
            os.close(os.open(leaf, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)


def one_line_failure(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert done.returncode == 1, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "internal error" not in lines[0]
    return lines[0]


def cache_tmp_is_empty(cache: Path) -> bool:
    return not (cache / "tmp").exists() or os.listdir(cache / "tmp") == []


def test_member_nested_3000_deep_is_refused_and_leaves_no_work_dir(
    tmp_path: Path, runnc: Any
) -> None:
    # Before: the work directory got ~2000 levels before ENAMETOOLONG, shutil.rmtree raised
    # RecursionError on it ("internal error"), and the directory stayed in tmp/.
    source = tmp_path / "deep.tar"
    source.write_bytes(tar_of(("a/" * 3000 + "f", b"x")))
    cache = tmp_path / "cache"
    done = runnc("rootfs", "build", source, "-o", tmp_path / "out.ext4", "--cache-dir", cache)
    one_line_failure(done, "nested 3001 directories deep", f"at most {MAX_DEPTH}")
    assert cache_tmp_is_empty(cache)
    assert not (tmp_path / "out.ext4").exists()
    gc = runnc("rootfs", "gc", "--all", "--cache-dir", cache)
    assert gc.returncode == 0, gc.stderr


def test_gc_all_removes_a_leftover_of_any_depth(tmp_path: Path, runnc: Any) -> None:
    cache = tmp_path / "cache"
    small = tmp_path / "small.tar"
    small.write_bytes(tar_of(("f", b"x")))
    built = runnc("rootfs", "build", small, "-o", tmp_path / "s.ext4", "--cache-dir", cache)
    assert built.returncode == 0, built.stderr
    leftover = cache / "tmp" / f"{'0' * 64}.4242.ext4.x1y2.work"
    nested_dirs(leftover, ["a"] * 3000, leaf="f")
    # Before: shutil.rmtree's recursion gave RecursionError, on every gc.
    done = runnc("rootfs", "gc", "--all", "--cache-dir", cache)
    assert done.returncode == 0, done.stderr
    assert cache_tmp_is_empty(cache)


def test_paths_that_would_corrupt_mke2fs_are_refused_first(tmp_path: Path, runnc: Any) -> None:
    # "/" + path of 2040 bytes: mke2fs 1.47.0 aborts with `realloc(): invalid next size`.
    crashing = tmp_path / "crashing"
    nested_dirs(crashing, ["abc"] * 509, leaf="fff")  # "/abc" * 509 + "/fff": 2040 bytes
    done = runnc("rootfs", "build", crashing, "-o", tmp_path / "x.ext4", "--no-cache")
    one_line_failure(done, "2039 bytes long", f"at most {MAX_PATH_BYTES}")
    # The 1500-deep directory.
    deep = tmp_path / "deep"
    nested_dirs(deep, ["d"] * 1500)
    done = runnc("rootfs", "build", deep, "-o", tmp_path / "y.ext4", "--no-cache")
    one_line_failure(done, "nested 513 directories deep")
    assert not list(tmp_path.glob("*.ext4")) and not list(tmp_path.glob(".*"))


def test_the_longest_allowed_path_builds_a_clean_image(tmp_path: Path, runnc: Any) -> None:
    tree = tmp_path / "tree"
    names = ["b" * 200] * 10
    used = len("/".join(names)) + 1
    nested_dirs(tree, names, leaf="f" * (MAX_PATH_BYTES - used))
    image = tmp_path / "ok.ext4"
    done = runnc("rootfs", "build", tree, "-o", image, "--no-cache", "--size", "64M")
    assert done.returncode == 0, done.stderr
    fsck = subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout


def test_max_size_caps_decompressed_bytes(tmp_path: Path, runnc: Any) -> None:
    # A gzip of 64 KiB holding 64 MiB of zeros, as a member or after the end-of-archive.
    cache = tmp_path / "cache"
    for n, (members, trailer) in enumerate(
        [([("zeros", bytes(64 << 20))], b""), ([("small", b"x")], bytes(64 << 20))]
    ):
        bomb = tmp_path / f"bomb{n}.tar.gz"
        bomb.write_bytes(gzip.compress(tar_of(*members, trailer=trailer), compresslevel=1))
        assert bomb.stat().st_size < 1 << 20
        out = tmp_path / f"out{n}.ext4"
        done = runnc("rootfs", "build", bomb, "-o", out, "--max-size", "16M", "--cache-dir", cache)
        one_line_failure(done, "layers decompress to more than 16 MiB", "--max-size")
        assert cache_tmp_is_empty(cache) and not out.exists()
    done = runnc("rootfs", "build", bomb, "-o", tmp_path / "ok.ext4", "--cache-dir", cache)
    assert done.returncode == 0, done.stderr  # under the default cap it builds


def test_max_files_caps_members_and_directory_entries(tmp_path: Path, runnc: Any) -> None:
    many = tmp_path / "many.tar"
    many.write_bytes(tar_of(*[(f"f{i}", b"") for i in range(1500)]))
    done = runnc("rootfs", "build", many, "-o", tmp_path / "a.ext4", "--max-files", "1000")
    one_line_failure(done, "more than 1000 files")
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(1500):
        (tree / f"f{i}").touch()
    done = runnc("rootfs", "build", tree, "-o", tmp_path / "b.ext4", "--max-files", "1000")
    one_line_failure(done, "more than 1000 files")
    for bad in ("+1000", " 1000", "１０００"):
        done = runnc("rootfs", "build", tree, "-o", tmp_path / "c.ext4", "--max-files", bad)
        one_line_failure(done, "--max-files", "ASCII digits")


def test_default_limits_follow_the_image_size() -> None:
    default = BuildLimits.for_request(None)
    assert default.max_bytes == DEFAULT_MAX_BYTES
    assert default.max_files < 1_000_000  # the million empty files are refused
    big = BuildLimits.for_request(32 << 30)
    assert big.max_bytes == 32 << 30 and big.max_files == (32 << 30) // (16 << 10)
    assert BuildLimits.for_request(32 << 30, max_size=1 << 20, max_files=7) == BuildLimits(
        1 << 20, 7
    )
