"""Layer member names, whiteouts, device policy, debugfs quoting, sizes (pure functions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runnc_py.errors import RunncError
from runnc_py.rootfs.mkfs import _fail
from runnc_py.rootfs.paths import (
    Action,
    DevicePolicy,
    check_device,
    classify,
    debugfs_quote,
    split_name,
)
from runnc_py.rootfs.size import (
    ContentStats,
    GiB,
    MiB,
    parse_size,
    plan_layout,
    sizes_from_annotations,
)


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("etc/passwd", ("etc", "passwd")),
        ("./etc/passwd", ("etc", "passwd")),
        ("./", ()),
        (".", ()),
        ("a//b/./c/", ("a", "b", "c")),
        ("..foo/bar..", ("..foo", "bar..")),
    ],
)
def test_split_name_normalises(name: str, parts: tuple[str, ...]) -> None:
    assert split_name(name, where="t") == parts


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x", "a/..", "a/b/../c"])
def test_split_name_refuses_escapes(name: str) -> None:
    with pytest.raises(RunncError) as info:
        split_name(name, where="layer 1")
    assert info.value.line().startswith("layer 1: ")
    assert "\n" not in info.value.line()


def test_split_name_refuses_overlong_component() -> None:
    with pytest.raises(RunncError, match="longer than 255"):
        split_name("a/" + "x" * 256, where="t")
    assert split_name("a/" + "x" * 255, where="t")[1] == "x" * 255


@pytest.mark.parametrize(
    ("parts", "action", "target"),
    [
        (("etc", "passwd"), Action.ENTRY, ("etc", "passwd")),
        (("etc", ".wh.passwd"), Action.WHITEOUT, ("etc", "passwd")),
        ((".wh.etc",), Action.WHITEOUT, ("etc",)),
        (("var", ".wh..wh..opq"), Action.OPAQUE, ("var",)),
        ((".wh..wh..opq",), Action.OPAQUE, ()),
        (("x", ".wh..wh.plnk"), Action.SKIP, ("x", ".wh..wh.plnk")),
        (("x", ".wh."), Action.SKIP, ("x", ".wh.")),
        (("x", ".whatever"), Action.ENTRY, ("x", ".whatever")),
        ((), Action.ENTRY, ()),
    ],
)
def test_classify(parts: tuple[str, ...], action: Action, target: tuple[str, ...]) -> None:
    got = classify(parts)
    assert (got.action, got.parts) == (action, target)


def test_device_policy() -> None:
    check_device("char", 1, 3, DevicePolicy.SAFE, where="t")  # /dev/null
    check_device("block", 8, 0, DevicePolicy.ALLOW, where="t")
    with pytest.raises(RunncError, match="block device 8:0 not allowed"):
        check_device("block", 8, 0, DevicePolicy.SAFE, where="t")
    with pytest.raises(RunncError, match="char device 1:1 not allowed"):  # /dev/mem
        check_device("char", 1, 1, DevicePolicy.SAFE, where="t")
    with pytest.raises(RunncError, match="'deny'"):
        check_device("char", 1, 3, DevicePolicy.DENY, where="t")


def test_debugfs_quote() -> None:
    assert debugfs_quote("/a b/c", where="t") == '"/a b/c"'
    assert debugfs_quote('/q"x', where="t") == '"/q""x"'
    with pytest.raises(RunncError, match="newline"):
        debugfs_quote("/a\nb", where="t")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4096", 4096),
        ("64k", 64 * 1024),
        ("512M", 512 * MiB),
        ("512MiB", 512 * MiB),
        ("512mb", 512 * MiB),
        ("1.5G", 3 * GiB // 2),
        ("2GiB", 2 * GiB),
        (100, 100),
    ],
)
def test_parse_size(text: str | int, value: int) -> None:
    assert parse_size(text, where="t") == value


@pytest.mark.parametrize("text", ["", "M", "12X", "-5M", "0", "1e9", "5 MB MB"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(RunncError, match="--size: "):
        parse_size(text, where="--size")


def test_sizes_from_annotations() -> None:
    assert sizes_from_annotations({}) == (None, None)
    got = sizes_from_annotations(
        {"org.runnc-py.rootfs.size": "1G", "org.runnc-py.rootfs.headroom": "64M", "x": "y"}
    )
    assert got == (GiB, 64 * MiB)
    with pytest.raises(RunncError, match=r"annotation org\.runnc-py\.rootfs\.size"):
        sizes_from_annotations({"org.runnc-py.rootfs.size": "big"})


def test_default_layout_is_content_plus_headroom() -> None:
    stats = ContentStats(entries=7000, data_bytes=200 * MiB, meta_bytes=8 * MiB)
    layout = plan_layout(stats)
    assert layout.size % MiB == 0
    # headroom = max(128 MiB, content / 2) = 128 MiB, plus inode tables, journal, bookkeeping
    assert 208 * MiB + 128 * MiB < layout.size < 208 * MiB + 128 * MiB + 40 * MiB
    assert layout.inodes >= 7000 + 1024
    bigger = plan_layout(ContentStats(7000, 2 * GiB, 8 * MiB))
    assert bigger.size > 2 * GiB + GiB  # half the content as headroom
    assert plan_layout(stats, headroom=0).size < layout.size


def test_explicit_size_wins_but_must_hold_the_content() -> None:
    stats = ContentStats(entries=10, data_bytes=20 * MiB, meta_bytes=MiB)
    assert plan_layout(stats, size=64 * MiB).size == 64 * MiB
    small = plan_layout(stats, size=26 * MiB)
    assert small.journal_mib in (0, 4)
    with pytest.raises(RunncError, match="needs at least 22 MiB but the image size is 16 MiB"):
        plan_layout(stats, size=16 * MiB)


def test_mke2fs_failures_become_one_clear_line() -> None:
    layout = plan_layout(ContentStats(1, MiB, 0), size=16 * MiB)
    image = Path("/var/cache/x/img.ext4")
    full = _fail(
        'big: No space left on device while looking up "big"\n'
        "mke2fs: No space left on device while populating file system\n",
        layout,
        image,
        "src",
    )
    assert full.line() == "/var/cache/x: no space left on the host device while writing the image"
    small = _fail(
        '__populate_fs: Could not allocate block in ext2 filesystem while writing file "big"\n'
        "mke2fs: Could not allocate block in ext2 filesystem while populating file system\n",
        layout,
        image,
        "src",
    )
    assert small.line() == "src: rootfs does not fit in a 16 MiB image; give a larger size"
    other = _fail("mke2fs: bad thing\n", layout, image, "src")
    assert other.line() == "src: mke2fs failed: mke2fs: bad thing"
