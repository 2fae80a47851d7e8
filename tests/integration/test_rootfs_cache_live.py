"""The image cache for real: hits and misses, concurrent builders, overlay rootfs keys, reflink."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from runnc_py.rootfs import container_image
from runnc_py.rootfs.pack import write_oci_layout

pytestmark = pytest.mark.root


def layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_000_000_000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.ext4"))


@pytest.fixture
def oci(tmp_path: Path) -> Path:
    source = tmp_path / "oci"
    write_oci_layout(
        source,
        [layer({f"bin/f{i}": os.urandom(64 << 10) for i in range(40)}), layer({"etc/x": b"x"})],
    )
    return source


def test_miss_then_hit_gives_independent_copies(tmp_path: Path, oci: Path) -> None:
    cache = tmp_path / "cache"
    first = container_image(oci, tmp_path / "c1.ext4", cache_dir=cache)
    assert first.built and first.key is not None
    (entry,) = entries(cache)
    before = entry.stat()
    assert before.st_mode & 0o777 == 0o444
    second = container_image(oci, tmp_path / "c2.ext4", cache_dir=cache)
    assert not second.built and second.key == first.key
    after = entry.stat()  # the entry was not rebuilt: same inode, same mtime
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert digest(tmp_path / "c1.ext4") == digest(tmp_path / "c2.ext4") == digest(entry)
    # The guest writes to its own copy, never to the cache.
    with open(tmp_path / "c2.ext4", "r+b") as f:
        f.write(b"guest wrote here")
    assert digest(entry) == digest(tmp_path / "c1.ext4") != digest(tmp_path / "c2.ext4")
    assert second.copy_method in ("reflink", "sparse-copy")
    assert os.stat(tmp_path / "c1.ext4").st_blocks * 512 < first.size // 2  # holes kept
    # Another size is another image.
    third = container_image(oci, tmp_path / "c3.ext4", cache_dir=cache, size=96 << 20)
    assert third.built and third.key != first.key and len(entries(cache)) == 2
    assert os.stat(tmp_path / "c3.ext4").st_size == 96 << 20


def _worker(args: tuple[str, str, str]) -> tuple[bool, str]:
    source, dest, cache = args
    info = container_image(source, dest, cache_dir=cache)
    return info.built, digest(Path(dest))


def test_concurrent_creates_build_once(tmp_path: Path, oci: Path) -> None:
    cache = tmp_path / "cache"
    jobs = [(str(oci), str(tmp_path / f"c{i}.ext4"), str(cache)) for i in range(6)]
    with multiprocessing.get_context("fork").Pool(6) as pool:
        results = pool.map(_worker, jobs)
    assert sum(built for built, _ in results) == 1
    assert len({d for _, d in results}) == 1
    (entry,) = entries(cache)
    assert digest(entry) == results[0][1]
    assert list((cache / "tmp").iterdir()) == []
    refs = list((cache / "refs" / entry.name.removesuffix(".ext4")).iterdir())
    assert len(refs) == 6


def _mount_overlay(storage: Path, ident: str, lowers: list[str]) -> Path:
    """Mount STORAGE/ID/merged like Docker: relative lowerdir/upperdir, from STORAGE."""
    for d in ("diff", "work", "merged"):
        (storage / ident / d).mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={':'.join(lowers)},upperdir={ident}/diff,workdir={ident}/work"
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, f"{ident}/merged"],
        cwd=storage,
        check=True,
    )
    return storage / ident / "merged"


def _init_layer(path: Path) -> None:
    """What Docker's per-container -init layer holds: same content, new mtimes each time."""
    (path / "etc").mkdir(parents=True)
    for name in ("hosts", "hostname", "resolv.conf"):
        (path / "etc" / name).write_bytes(b"")
    (path / ".dockerenv").write_bytes(b"")


def test_overlay_rootfs_is_keyed_on_its_layers(tmp_path: Path) -> None:
    storage = tmp_path / "overlay2"
    big = storage / "l" / "BASE"
    for i in range(300):  # above the small-layer limit: keyed by the directory's identity
        (big / "usr" / f"d{i % 10}").mkdir(parents=True, exist_ok=True)
        (big / "usr" / f"d{i % 10}" / f"f{i}").write_bytes(b"%d" % i)
    cache = tmp_path / "cache"
    mounted: list[Path] = []
    try:
        _init_layer(storage / "l" / "INIT1")
        one = _mount_overlay(storage, "c1", ["l/INIT1", "l/BASE"])
        mounted.append(one)
        info = container_image(one, tmp_path / "c1.ext4", cache_dir=cache)
        assert info.built and info.kind == "directory"
        # A second container of the same image: other init layer copy, other upperdir.
        os.utime(storage / "l" / "INIT1" / ".dockerenv", (1, 1))
        _init_layer(storage / "l" / "INIT2")
        two = _mount_overlay(storage, "c2", ["l/INIT2", "l/BASE"])
        mounted.append(two)
        again = container_image(two, tmp_path / "c2.ext4", cache_dir=cache)
        assert not again.built and again.key == info.key
        # The container wrote to its upperdir: its rootfs is different now.
        (two / "etc" / "hostname").write_text("changed\n")
        changed = container_image(two, tmp_path / "c2b.ext4", cache_dir=cache)
        assert changed.built and changed.key != info.key
        dumped = subprocess.run(
            ["debugfs", "-R", "cat /etc/hostname", str(tmp_path / "c2b.ext4")],
            capture_output=True,
            check=True,
        ).stdout
        assert dumped == b"changed\n"
    finally:
        for m in reversed(mounted):
            subprocess.run(["umount", m], check=True)


def test_plain_directory_rebuilds_when_anything_changes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "f").write_text("1")
    cache = tmp_path / "cache"
    assert container_image(src, tmp_path / "c1.ext4", cache_dir=cache).built
    assert not container_image(src, tmp_path / "c2.ext4", cache_dir=cache).built
    (src / "a" / "b" / "f").write_text("2")  # deep change, same size
    assert container_image(src, tmp_path / "c3.ext4", cache_dir=cache).built


@pytest.fixture
def xfs(tmp_path: Path) -> Any:
    if shutil.which("mkfs.xfs") is None:
        pytest.skip("mkfs.xfs not installed (apt-get install xfsprogs)")
    backing = tmp_path / "xfs.img"
    with open(backing, "wb") as f:
        f.truncate(512 << 20)
    subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", backing], check=True)
    mnt = tmp_path / "xfs"
    mnt.mkdir()
    subprocess.run(["mount", "-o", "loop", backing, mnt], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", mnt], check=True)  # also frees the loop device (autoclear)


def test_copies_are_reflinks_where_the_filesystem_can(xfs: Path, oci: Path, tmp_path: Path) -> None:
    cache = xfs / "cache"
    first = container_image(oci, xfs / "c1.ext4", cache_dir=cache)
    assert first.copy_method == "reflink"
    second = container_image(oci, xfs / "c2.ext4", cache_dir=cache)
    assert (second.built, second.copy_method) == (False, "reflink")
    elsewhere = container_image(oci, tmp_path / "c3.ext4", cache_dir=cache)
    assert elsewhere.copy_method == "sparse-copy"
    assert digest(xfs / "c2.ext4") == digest(tmp_path / "c3.ext4")


def test_cli_ls_and_gc(tmp_path: Path, oci: Path, runnc: Any) -> None:
    cache = tmp_path / "cache"
    out = tmp_path / "c1.ext4"
    done = runnc("rootfs", "build", oci, "-o", out, "--cache-dir", cache)
    assert done.returncode == 0, done.stderr
    assert "built into cache" in done.stdout
    done = runnc("rootfs", "build", oci, "-o", tmp_path / "c2.ext4", "--cache-dir", cache, "--json")
    assert json.loads(done.stdout)["built"] is False
    listed = json.loads(runnc("rootfs", "ls", "--json", "--cache-dir", cache).stdout)
    assert len(listed) == 1 and listed[0]["live_refs"] == 2 and listed[0]["kind"] == "oci-layout"
    assert listed[0]["size"] == out.stat().st_size and 0 < listed[0]["disk"] < listed[0]["size"]
    table = runnc("rootfs", "ls", "--cache-dir", cache).stdout
    assert listed[0]["key"][:12] in table and "OCI image layout" in table
    # In use by live copies: gc keeps it even when it is "old".
    assert (
        "removed 0 entries" in runnc("rootfs", "gc", "--max-age", "0", "--cache-dir", cache).stdout
    )
    out.unlink()
    (tmp_path / "c2.ext4").unlink()
    assert "removed 0 entries" in runnc("rootfs", "gc", "--cache-dir", cache).stdout  # recent
    assert (
        "removed 1 entries" in runnc("rootfs", "gc", "--max-age", "0s", "--cache-dir", cache).stdout
    )
    assert json.loads(runnc("rootfs", "ls", "--json", "--cache-dir", cache).stdout) == []
    done = runnc("rootfs", "gc", "--max-age", "soon", "--cache-dir", cache)
    assert done.returncode == 1 and "--max-age: invalid age 'soon'" in done.stderr
    env = {**os.environ, "RUNNC_PY_CACHE_DIR": str(cache)}
    assert runnc("rootfs", "build", oci, "-o", out, env=env).returncode == 0
    assert len(entries(cache)) == 1
    assert "removed 1 entries" in runnc("rootfs", "gc", "--all", env=env).stdout
