"""Layer-stack semantics of the Applier: whiteouts, opaque dirs, links, escapes (pure)."""

from __future__ import annotations

import inspect
import io
import sys
import tarfile

import pytest

from runnc_py.errors import RunncError
from runnc_py.rootfs.paths import MAX_DEPTH, MAX_PATH_BYTES, DevicePolicy
from runnc_py.rootfs.tree import Applier, DataOpener, Inode


class FakeDisk:
    """A sink that keeps a path → kind map, to check the applier mirrors its tree exactly."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {"": "dir"}
        self.data: dict[str, bytes] = {}
        self.links: list[tuple[str, str]] = []

    def _parent_is_dir(self, path: str) -> None:
        parent = path.rpartition("/")[0]
        assert self.files.get(parent) == "dir", f"{path}: parent {parent!r} not a directory"
        assert path not in self.files, f"{path} exists"

    def mkdir(self, path: str) -> None:
        self._parent_is_dir(path)
        self.files[path] = "dir"

    def write(self, path: str, size: int, data: DataOpener) -> None:
        self._parent_is_dir(path)
        self.files[path] = "file"
        f = data()
        self.data[path] = f.read() if f is not None else b""

    def symlink(self, path: str, target: str) -> None:
        self._parent_is_dir(path)
        self.files[path] = "symlink"

    def link(self, path: str, existing: str) -> None:
        self._parent_is_dir(path)
        assert self.files[existing] != "dir"
        self.files[path] = self.files[existing]
        self.links.append((path, existing))

    def special(self, path: str, inode: Inode) -> None:
        self._parent_is_dir(path)
        self.files[path] = inode.kind

    def remove(self, path: str, inode: Inode) -> None:
        assert path in self.files
        for p in [p for p in self.files if p == path or p.startswith(path + "/")]:
            del self.files[p]


class Member(tarfile.TarInfo):
    """A TarInfo that carries its test data (TarInfo itself has __slots__)."""

    test_data = b""


def member(name: str, kind: str = "file", data: bytes = b"", **attrs: object) -> Member:
    info = Member(name)
    info.type = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "link": tarfile.LNKTYPE,
        "char": tarfile.CHRTYPE,
        "block": tarfile.BLKTYPE,
        "fifo": tarfile.FIFOTYPE,
    }[kind]
    info.size = len(data)
    info.mode = 0o755 if kind == "dir" else 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    info.test_data = data
    return info


def apply(
    layers: list[list[Member]], devices: DevicePolicy = DevicePolicy.SAFE
) -> tuple[Applier, FakeDisk]:
    disk = FakeDisk()
    applier = Applier(disk, devices)
    for n, layer in enumerate(layers):
        for m in layer:
            applier.apply(m, lambda m=m: io.BytesIO(m.test_data), n, f"layer {n + 1}")
    # The sink must hold exactly the tree the applier believes in.
    assert {p: i.kind for p, i in applier.tree.walk()} == disk.files
    return applier, disk


def paths(applier: Applier) -> set[str]:
    return {p for p, _ in applier.tree.walk() if p}


def test_later_layer_replaces_and_whiteout_deletes() -> None:
    a, disk = apply(
        [
            [member("etc", "dir"), member("etc/a", data=b"1"), member("etc/b", data=b"2")],
            [member("etc/a", data=b"new"), member("etc/.wh.b"), member(".wh.missing")],
        ]
    )
    assert paths(a) == {"etc", "etc/a"}
    assert disk.data["etc/a"] == b"new"


def test_whiteout_of_directory_removes_subtree() -> None:
    a, _ = apply(
        [
            [member("usr/share/doc/x", data=b"x"), member("usr/bin/sh", data=b"sh")],
            [member("usr/share/.wh.doc")],
        ]
    )
    assert paths(a) == {"usr", "usr/share", "usr/bin", "usr/bin/sh"}


def test_opaque_directory_hides_lower_children_only() -> None:
    a, _ = apply(
        [
            [member("var/lib/old", data=b"o"), member("var/cache/c", data=b"c")],
            # The marker comes after this layer's own child: the child must survive.
            [member("var/lib/new", data=b"n"), member("var/lib/.wh..wh..opq")],
        ]
    )
    assert paths(a) == {"var", "var/lib", "var/lib/new", "var/cache", "var/cache/c"}


def test_whiteout_never_hides_its_own_layer() -> None:
    a, _ = apply(
        [[member("a", data=b"1")], [member("b", data=b"2"), member(".wh.b"), member(".wh.a")]]
    )
    assert paths(a) == {"b"}


def test_whiteout_of_dir_keeps_same_layer_children() -> None:
    a, _ = apply([[member("d/old", data=b"o")], [member("d/new", data=b"n"), member(".wh.d")]])
    assert paths(a) == {"d", "d/new"}


def test_hardlinks_across_layers_share_inode_and_survive_replacement() -> None:
    a, disk = apply(
        [
            [
                member("bin/busybox", data=b"BB", uid=5),
                member("bin/sh", "link", linkname="bin/busybox"),
            ],
            [member("usr/bin/ls", "link", linkname="./bin/busybox")],
            [member("bin/busybox", data=b"NEW")],
        ]
    )
    tree = a.tree
    sh, ls, bb = (tree.lookup(p) for p in ("bin/sh", "usr/bin/ls", "bin/busybox"))
    assert sh is ls and sh is not bb
    assert sh is not None and sh.uid == 5
    assert ("usr/bin/ls", "bin/busybox") in disk.links
    assert disk.data["bin/busybox"] == b"NEW"


def test_hardlink_to_missing_or_whited_out_target_fails() -> None:
    with pytest.raises(RunncError, match="layer 2: member 'x': hardlink target 'a' does not exist"):
        apply([[member("a", data=b"1")], [member(".wh.a"), member("x", "link", linkname="a")]])
    with pytest.raises(RunncError, match="hardlink to directory"):
        apply([[member("d", "dir"), member("x", "link", linkname="d")]])


def test_parent_through_symlink_is_resolved_inside_the_image() -> None:
    a, disk = apply(
        [
            [member("usr/lib", "dir"), member("lib", "symlink", linkname="usr/lib")],
            [member("lib/libc.so", data=b"c")],
            [member("etc2", "symlink", linkname="/usr/../usr/lib/"), member("etc2/x", data=b"x")],
        ]
    )
    assert "usr/lib/libc.so" in disk.files and "usr/lib/x" in disk.files
    assert a.tree.lookup("lib") is not None and a.tree.lookup("lib").kind == "symlink"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "layers",
    [
        [[member("evil", "symlink", linkname="../../etc")], [member("evil/passwd", data=b"x")]],
        [[member("a/b", "symlink", linkname="../../../tmp"), member("a/b/x", data=b"x")]],
        [[member("evil", "symlink", linkname="/..")], [member("evil/x", "dir")]],
        [
            [member("evil", "symlink", linkname="..")],
            [member("x", "link", linkname="evil/etc/passwd")],
        ],
    ],
)
def test_symlink_escapes_are_refused(layers: list[list[Member]]) -> None:
    with pytest.raises(RunncError, match="escapes the image root"):
        apply(layers)


def test_symlink_loop_is_refused() -> None:
    with pytest.raises(RunncError, match="loop"):
        apply(
            [
                [
                    member("a", "symlink", linkname="b"),
                    member("b", "symlink", linkname="a"),
                    member("a/x"),
                ]
            ]
        )


def test_symlink_itself_may_point_anywhere() -> None:
    a, _ = apply([[member("up", "symlink", linkname="../../../etc/shadow")]])
    up = a.tree.lookup("up")
    assert up is not None and up.target == "../../../etc/shadow"


def test_file_replaces_directory_and_directory_merges() -> None:
    a, _ = apply(
        [
            [member("d/x", data=b"x"), member("f", data=b"f")],
            [member("d", data=b"now a file"), member("f", "dir", mode=0o700, uid=3), member("f/y")],
        ]
    )
    assert paths(a) == {"d", "f", "f/y"}
    f = a.tree.lookup("f")
    assert f is not None and (f.kind, f.mode, f.uid) == ("dir", 0o700, 3)


def test_root_entry_sets_root_metadata_and_must_be_a_directory() -> None:
    a, _ = apply([[member("./", "dir", mode=0o700, uid=1)]])
    assert (a.tree.root.mode, a.tree.root.uid) == (0o700, 1)
    with pytest.raises(RunncError, match="root must be a directory"):
        apply([[member("./", data=b"")]])


def test_device_policy_applies_to_members() -> None:
    _a, disk = apply([[member("dev/null", "char", devmajor=1, devminor=3), member("p", "fifo")]])
    assert disk.files["dev/null"] == "char" and disk.files["p"] == "fifo"
    with pytest.raises(RunncError, match="block device 8:0 not allowed"):
        apply([[member("dev/sda", "block", devmajor=8, devminor=0)]])
    with pytest.raises(RunncError, match="char device 1:3 not allowed"):
        apply([[member("dev/null", "char", devmajor=1, devminor=3)]], DevicePolicy.DENY)
    apply([[member("dev/sda", "block", devmajor=8, devminor=0)]], DevicePolicy.ALLOW)


def test_parent_that_is_a_file_is_refused() -> None:
    with pytest.raises(RunncError, match="'f' is not a directory"):
        apply([[member("f", data=b"1"), member("f/x", data=b"2")]])


def test_xattrs_from_pax_headers() -> None:
    m = member("f", data=b"1")
    m.pax_headers = {"SCHILY.xattr.user.k": "v", "LIBARCHIVE.xattr.user.b": "AAE"}
    a, _ = apply([[m]])
    f = a.tree.lookup("f")
    assert f is not None and f.xattrs == {"user.k": b"v", "user.b": b"\x00\x01"}


def test_deep_nesting_is_refused_before_anything_is_written() -> None:
    deep = "/".join(["d"] * 3000)
    with pytest.raises(RunncError, match="nested 3001 directories deep") as info:
        apply([[member(f"{deep}/f", data=b"x")]])
    assert len(info.value.line()) < 300
    # Through a symlink: the real path is what counts, checked before any implicit mkdir.
    target = "/".join(["t"] * (MAX_DEPTH + 5))
    with pytest.raises(RunncError, match="directories deep"):
        apply([[member("l", "symlink", linkname=target), member("l/f", data=b"x")]])
    longest = "/".join(["n" * 200] * 11)[: MAX_PATH_BYTES - 2] + "/f"
    assert len(longest) == MAX_PATH_BYTES
    apply([[member(longest, data=b"x")]])
    with pytest.raises(RunncError, match=f"bytes long \\(at most {MAX_PATH_BYTES}\\)"):
        apply([[member(longest + "x", data=b"x")]])


def test_whiteout_of_a_deep_tree_needs_no_recursion() -> None:
    deep = "/".join(["d"] * (MAX_DEPTH - 1))
    layers = [[member(f"{deep}/f", data=b"x")], [member(f"{deep}/g", data=b"y"), member(".wh.d")]]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 100)  # far below the tree's depth
    try:
        a, disk = apply(layers)
    finally:
        sys.setrecursionlimit(limit)
    # Layer 2 re-adds d/.../g, so its whiteout of d only removes layer 1's f.
    assert f"{deep}/g" in disk.files and a.tree.lookup(f"{deep}/f") is None
