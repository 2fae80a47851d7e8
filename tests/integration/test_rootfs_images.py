"""ext4 images from layer stacks and directories, checked with e2fsck and debugfs (real tools).

Layer tars are crafted here with tarfile; images are read back with `debugfs` (`ls -p`,
`stat`, `ea_list`, `rdump`), never by mounting them.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest

from runnc_py.errors import RunncError
from runnc_py.rootfs import build_image, container_image
from runnc_py.rootfs.pack import write_docker_save, write_oci_layout

pytestmark = pytest.mark.root

MTIME = 1_000_000_000


# -- crafting layers ---------------------------------------------------------------------------


def entry(
    name: str, kind: str = "file", data: bytes = b"", **attrs: Any
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "link": tarfile.LNKTYPE,
        "char": tarfile.CHRTYPE,
        "block": tarfile.BLKTYPE,
        "fifo": tarfile.FIFOTYPE,
    }[kind]
    info.mode = 0o755 if kind == "dir" else 0o644
    info.mtime = MTIME
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def layer(*entries: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def sparse_layer(name: str, size: int, offset: int, data: bytes) -> bytes:
    """A layer with a GNU sparse member, written by GNU tar itself."""
    return _gnu_tar_sparse(name, size, offset, data)


def _gnu_tar_sparse(name: str, size: int, offset: int, data: bytes) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d, name)
        with open(path, "wb") as f:
            f.truncate(size)
            f.seek(offset)
            f.write(data)
        os.utime(path, (MTIME, MTIME))
        return subprocess.run(
            ["tar", "--sparse", "--format=posix", "--numeric-owner", "-C", d, "-cf", "-", name],
            capture_output=True,
            check=True,
        ).stdout


CAP = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_bind_service


def stack() -> list[bytes]:
    """Three layers exercising every rule; `EXPECTED` is the merged tree they must give."""
    xattr_file = entry("usr/bin/ping", data=b"PING", mode=0o755)
    # Surrogate-escaped bytes make tarfile write the raw value (hdrcharset=BINARY), as
    # GNU tar and Go's archive/tar do for binary xattrs.
    xattr_file[0].pax_headers = {
        "SCHILY.xattr.security.capability": CAP.decode("utf-8", "surrogateescape"),
        "SCHILY.xattr.user.note": "hello",
    }
    one = layer(
        entry("./", "dir", mode=0o755),
        entry("etc", "dir"),
        entry("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n"),
        entry("etc/shadow", data=b"root:*:1::::::\n", mode=0o640, gid=42),
        entry("bin", "dir"),
        entry("bin/busybox", data=b"\x7fELF busybox", mode=0o4755),
        entry("bin/sh", "link", linkname="bin/busybox"),
        entry("home", "dir"),
        entry("home/user", "dir", mode=0o700, uid=1000, gid=1000),
        entry("home/user/.profile", data=b"PS1=$\n", uid=1000, gid=1000, mode=0o600),
        entry("tmp", "dir", mode=0o1777),
        entry("var", "dir"),
        entry("var/cache", "dir"),
        entry("var/cache/apt", "dir"),
        entry("var/cache/apt/pkg1", data=b"cached"),
        entry("var/lib", "dir"),
        entry("var/lib/gone", data=b"whited out"),
        entry("dev", "dir"),
        entry("dev/null", "char", devmajor=1, devminor=3, mode=0o666),
        entry("run", "dir"),
        entry("run/initctl", "fifo", mode=0o600),
        entry("lib", "symlink", linkname="usr/lib"),
        entry("usr", "dir"),
        entry("usr/lib", "dir"),
        entry("usr/bin", "dir"),
        xattr_file,
        entry("usr/share/doc/long", "symlink", linkname="/" + "d" * 120),
    )
    two = layer(
        entry("var/lib/.wh.gone"),
        entry("var/cache/apt", "dir"),
        entry("var/cache/apt/.wh..wh..opq"),
        entry("var/cache/apt/pkg2", data=b"fresh"),
        entry("usr/bin/sh2", "link", linkname="bin/busybox"),  # hardlink to a lower layer
        entry("lib/libc.so.6", data=b"libc through the lib symlink", mode=0o755),
        entry("etc/passwd", data=b"root:x:0:0::/root:/bin/ash\n"),
    )
    three = sparse_layer("sparse.img", 64 << 20, 32 << 20, b"middle")
    return [one, two, three]


# (mode incl. type, uid, gid) of the merged tree, plus content / link checks below.
EXPECTED: dict[str, tuple[int, int, int]] = {
    "bin": (0o40755, 0, 0),
    "bin/busybox": (0o104755, 0, 0),
    "bin/sh": (0o104755, 0, 0),
    "dev": (0o40755, 0, 0),
    "dev/null": (0o20666, 0, 0),
    "etc": (0o40755, 0, 0),
    "etc/passwd": (0o100644, 0, 0),
    "etc/shadow": (0o100640, 0, 42),
    "home": (0o40755, 0, 0),
    "home/user": (0o40700, 1000, 1000),
    "home/user/.profile": (0o100600, 1000, 1000),
    "lib": (0o120777, 0, 0),
    "lost+found": (0o40700, 0, 0),
    "run": (0o40755, 0, 0),
    "run/initctl": (0o10600, 0, 0),
    "sparse.img": (0o100644, 0, 0),
    "tmp": (0o41777, 0, 0),
    "usr": (0o40755, 0, 0),
    "usr/bin": (0o40755, 0, 0),
    "usr/bin/ping": (0o100755, 0, 0),
    "usr/bin/sh2": (0o104755, 0, 0),
    "usr/lib": (0o40755, 0, 0),
    "usr/lib/libc.so.6": (0o100755, 0, 0),
    "usr/share": (0o40755, 0, 0),
    "usr/share/doc": (0o40755, 0, 0),
    "usr/share/doc/long": (0o120777, 0, 0),
    "var": (0o40755, 0, 0),
    "var/cache": (0o40755, 0, 0),
    "var/cache/apt": (0o40755, 0, 0),
    "var/cache/apt/pkg2": (0o100644, 0, 0),
    "var/lib": (0o40755, 0, 0),
}


# -- reading images back -------------------------------------------------------------------------


def debugfs(image: Path, *commands: str) -> dict[str, str]:
    """Run commands in one debugfs session; output of each, keyed by the command."""
    done = subprocess.run(
        ["debugfs", "-f", "-", str(image)],
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    out: dict[str, str] = {}
    current = None
    for line in done.stdout.splitlines():
        if line.startswith("debugfs: "):
            current = line[len("debugfs: ") :]
            out[current] = ""
        elif current is not None:
            out[current] += line + "\n"
    return out


def listing(image: Path) -> dict[str, dict[str, int]]:
    """path → {ino, mode, uid, gid, size} for the whole image (debugfs `ls -p`, breadth first)."""
    found: dict[str, dict[str, int]] = {}
    todo = [""]
    while todo:
        outs = debugfs(image, *(f'ls -p "/{d}"' for d in todo))
        todo_next = []
        for d in todo:
            for row in outs[f'ls -p "/{d}"'].splitlines():
                fields = row.split("/")
                if len(fields) < 7 or fields[5] in ("", ".", "..") or fields[1] == "0":
                    continue  # dot entries, and the empty slots of lost+found
                ino, mode, uid, gid, name, size = fields[1:7]
                path = f"{d}/{name}" if d else name
                found[path] = {
                    "ino": int(ino),
                    "mode": int(mode, 8),
                    "uid": int(uid),
                    "gid": int(gid),
                    "size": int(size or 0),
                }
                if int(mode, 8) & 0o170000 == 0o040000:
                    todo_next.append(path)
        todo = todo_next
    return found


def stat_of(image: Path, path: str) -> str:
    return debugfs(image, f'stat "/{path}"')[f'stat "/{path}"']


def rdump(image: Path, dest: Path) -> Path:
    dest.mkdir()
    subprocess.run(
        ["debugfs", "-R", f"rdump / {dest}", str(image)], capture_output=True, check=True
    )
    return dest


def fsck(image: Path) -> None:
    done = subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def check_merged_tree(image: Path, scratch: Path) -> None:
    fsck(image)
    tree = listing(image)
    assert {p: (v["mode"], v["uid"], v["gid"]) for p, v in tree.items()} == EXPECTED
    # hardlinks: one inode for three names, across layers, with a link count of 3
    assert tree["bin/busybox"]["ino"] == tree["bin/sh"]["ino"] == tree["usr/bin/sh2"]["ino"]
    assert "Links: 3" in stat_of(image, "bin/busybox")
    assert "Device major/minor number: 01:03" in stat_of(image, "dev/null")
    # mtimes from the tar headers (0x3b9aca00 = 1e9)
    assert "mtime: 0x3b9aca00" in stat_of(image, "etc/shadow")
    assert "mtime: 0x3b9aca00" in stat_of(image, "home/user")
    # the sparse file keeps its holes: 64 MiB apparent, one 4 KiB block allocated
    sparse = stat_of(image, "sparse.img")
    assert "Size: 67108864" in sparse
    assert int(re.search(r"Blockcount: (\d+)", sparse).group(1)) <= 16  # type: ignore[union-attr]
    xattrs = debugfs(image, 'ea_list "/usr/bin/ping"')['ea_list "/usr/bin/ping"']
    assert 'user.note (5) = "hello"' in xattrs
    assert "security.capability (20) = 01 00 00 02 00 20 00 00" in xattrs
    files = rdump(image, scratch / "rdump")
    assert (files / "etc/passwd").read_bytes() == b"root:x:0:0::/root:/bin/ash\n"
    assert (files / "bin/busybox").read_bytes() == b"\x7fELF busybox"
    assert (files / "usr/lib/libc.so.6").read_bytes() == b"libc through the lib symlink"
    assert (files / "var/cache/apt/pkg2").read_bytes() == b"fresh"
    assert os.readlink(files / "lib") == "usr/lib"
    assert os.readlink(files / "usr/share/doc/long") == "/" + "d" * 120
    with open(files / "sparse.img", "rb") as f:
        f.seek(32 << 20)
        assert f.read(6) == b"middle"


# -- tests ---------------------------------------------------------------------------------------


def test_oci_layer_stack_gives_the_expected_tree(tmp_path: Path) -> None:
    write_oci_layout(tmp_path / "oci", stack(), "gzip")
    info = build_image(tmp_path / "oci", tmp_path / "out.ext4")
    assert info.kind == "oci-layout" and info.path == tmp_path / "out.ext4"
    # lost+found is mke2fs's own; busybox's three names are one inode
    assert info.entries == len(EXPECTED) - 3
    st = os.stat(info.path)
    assert st.st_size == info.size and st.st_blocks * 512 < st.st_size // 4  # sparse image
    check_merged_tree(info.path, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["oci", "out.ext4", "rdump"]


@pytest.mark.parametrize("form", ["oci-none", "oci-zstd", "docker-save", "oci-archive"])
def test_every_layered_format_gives_the_same_tree(tmp_path: Path, form: str) -> None:
    if form == "oci-zstd" and shutil.which("zstd") is None:
        pytest.skip("zstd program not installed")
    layers = stack()
    if form.startswith("oci-") and form != "oci-archive":
        source = tmp_path / "oci"
        write_oci_layout(source, layers, form.removeprefix("oci-"))
    elif form == "docker-save":
        source = tmp_path / "save.tar"
        write_docker_save(source, layers)
    else:
        write_oci_layout(tmp_path / "oci", layers, "gzip")
        source = tmp_path / "oci.tar"
        subprocess.run(["tar", "-C", tmp_path / "oci", "-cf", source, "."], check=True)
    info = build_image(source, tmp_path / "out.ext4", from_layers=True)
    assert info.kind == {"docker-save": "docker-save", "oci-archive": "oci-archive"}.get(
        form, "oci-layout"
    )
    check_merged_tree(info.path, tmp_path)


def test_plain_tar_is_one_layer(tmp_path: Path) -> None:
    (tmp_path / "rootfs.tar").write_bytes(layer(entry("hello", data=b"world", uid=7)))
    info = build_image(tmp_path / "rootfs.tar", tmp_path / "out.ext4", size=32 << 20)
    assert (info.kind, info.size) == ("tar", 32 << 20)
    fsck(info.path)
    assert listing(info.path)["hello"]["uid"] == 7


def make_dir_tree(root: Path) -> None:
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("box\n")
    (root / "bin").mkdir()
    (root / "bin/tool").write_bytes(b"tool")
    os.chmod(root / "bin/tool", 0o4711)
    os.link(root / "bin/tool", root / "bin/tool2")
    os.symlink("../etc/hostname", root / "bin/link")
    (root / "home").mkdir(mode=0o750)
    os.chown(root / "home", 1000, 100)
    os.chmod(root / "home", 0o750)
    os.mkfifo(root / "fifo")
    os.utime(root / "etc/hostname", (MTIME, MTIME))


def test_read_only_bind_mounted_rootfs(tmp_path: Path) -> None:
    src, ro = tmp_path / "src", tmp_path / "ro"
    make_dir_tree(src)
    ro.mkdir()
    subprocess.run(["mount", "--bind", src, ro], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", ro], check=True)
        with pytest.raises(OSError):
            (ro / "probe").write_text("x")  # really read-only
        before = sorted((p, p.lstat().st_mtime_ns) for p in src.rglob("*"))
        info = build_image(ro, tmp_path / "out.ext4", size=16 << 20)
        assert info.kind == "directory"
        assert sorted((p, p.lstat().st_mtime_ns) for p in src.rglob("*")) == before
    finally:
        subprocess.run(["umount", ro], check=True)
    fsck(info.path)
    tree = listing(info.path)
    assert tree["bin/tool"]["mode"] == 0o104711
    assert tree["bin/tool"]["ino"] == tree["bin/tool2"]["ino"]
    assert (tree["home"]["mode"], tree["home"]["uid"], tree["home"]["gid"]) == (0o40750, 1000, 100)
    assert tree["fifo"]["mode"] == 0o10644
    assert "mtime: 0x3b9aca00" in stat_of(info.path, "etc/hostname")
    files = rdump(info.path, tmp_path / "rdump")
    assert os.readlink(files / "bin/link") == "../etc/hostname"
    assert (files / "etc/hostname").read_text() == "box\n"


def test_directory_root_metadata_is_kept(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir(mode=0o700)
    os.chmod(src, 0o711)
    os.chown(src, 5, 6)
    (src / "f").write_text("x")
    info = build_image(src, tmp_path / "out.ext4", size=16 << 20)
    assert "Mode:  0711" in stat_of(info.path, "") and "User:     5   Group:     6" in stat_of(
        info.path, ""
    )


def test_device_policy_for_directories(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    os.mknod(src / "sda", 0o600 | 0o060000, os.makedev(8, 0))
    with pytest.raises(RunncError, match="block device 8:0 not allowed by device policy 'safe'"):
        build_image(src, tmp_path / "out.ext4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    info = build_image(src, tmp_path / "out.ext4", devices="allow", size=16 << 20)
    assert listing(info.path)["sda"]["mode"] == 0o60600


# -- bad input: one clear error, nothing outside the work dir, nothing left behind -------------

BAD_LAYERS: dict[str, tuple[list[bytes], str]] = {
    "dotdot": ([layer(entry("../outside/pwned", data=b"x"))], "contains '..'"),
    "absolute": ([layer(entry("/outside/pwned", data=b"x"))], "absolute member name"),
    "symlink-escape": (
        [
            layer(entry("evil", "symlink", linkname="../../../../../../outside")),
            layer(entry("evil/pwned", data=b"x")),
        ],
        "escapes the image root",
    ),
    "symlink-escape-same-layer": (
        [
            layer(
                entry("a", "dir"),
                entry("a/evil", "symlink", linkname="../../outside"),
                entry("a/evil/pwned"),
            )
        ],
        "escapes the image root",
    ),
    "hardlink-escape": (
        [layer(entry("pwned", "link", linkname="../outside/secret"))],
        "contains '..'",
    ),
    "hardlink-absolute": (
        [layer(entry("pwned", "link", linkname="/etc/shadow"))],
        "absolute member name",
    ),
    "hardlink-through-symlink": (
        [
            layer(entry("up", "symlink", linkname="/../..")),
            layer(entry("pwned", "link", linkname="up/etc/shadow")),
        ],
        "escapes the image root",
    ),
    "device": (
        [layer(entry("dev/sda", "block", devmajor=8, devminor=0))],
        "block device 8:0 not allowed",
    ),
    "truncated": ([layer(entry("big", data=b"x" * 100_000))[:50_000]], "truncated"),
    "corrupt": ([b"\x1f\x8b" + b"garbage" * 100], "corrupt or truncated layer"),
}


@pytest.mark.parametrize("case", sorted(BAD_LAYERS))
@pytest.mark.parametrize("form", ["oci", "docker-save"])
def test_malicious_layers_are_refused_cleanly(tmp_path: Path, case: str, form: str) -> None:
    layers, message = BAD_LAYERS[case]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    work = tmp_path / "a" / "b" / "c"  # deep enough that ../../.. would land in tmp_path
    work.mkdir(parents=True)
    if form == "oci":
        source = work / "image"
        write_oci_layout(source, layers, "none")
    else:
        source = work / "image.tar"
        write_docker_save(source, layers)
    cache = work / "cache"
    before = sorted(tmp_path.rglob("*"))
    for build in (
        lambda: build_image(source, work / "out.ext4"),
        lambda: container_image(source, work / "ctr.ext4", cache_dir=cache),
    ):
        with pytest.raises(RunncError, match=message) as info:
            build()
        assert "\n" not in info.value.line() and str(source) in info.value.line()
    after = sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(cache))
    assert after == before  # no output, no temp image, no work dir, nothing outside
    assert [p.name for p in outside.iterdir()] == ["secret"]
    assert not list(cache.glob("*.ext4")) and not list(cache.glob("*.json"))
    assert not list((cache / "tmp").iterdir())


def test_digest_mismatch_in_a_blob_is_refused(tmp_path: Path) -> None:
    digests = write_oci_layout(tmp_path / "oci", [layer(entry("a", data=b"1"))], "none")
    blob = tmp_path / "oci/blobs/sha256" / digests[0].split(":")[1]
    blob.write_bytes(layer(entry("a", data=b"2")))  # same size, other content
    with pytest.raises(RunncError, match="layer digest mismatch"):
        build_image(tmp_path / "oci", tmp_path / "out.ext4")
    assert not (tmp_path / "out.ext4").exists()


def test_requested_size_too_small(tmp_path: Path) -> None:
    big = layer(entry("big", data=os.urandom((13 << 20) - (64 << 10))))
    (tmp_path / "rootfs.tar").write_bytes(big)
    with pytest.raises(RunncError, match="needs at least 13 MiB but the image size is 8 MiB"):
        build_image(tmp_path / "rootfs.tar", tmp_path / "out.ext4", size=8 << 20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rootfs.tar"]
    # The smallest size that holds it is enough: no journal, no spare inodes, but valid.
    info = build_image(tmp_path / "rootfs.tar", tmp_path / "out.ext4", size=13 << 20)
    fsck(info.path)


def test_full_host_disk(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8M", "tmpfs", small], check=True)
    try:
        # Layers bigger than the disk: extraction itself runs out of space.
        (tmp_path / "rootfs.tar").write_bytes(layer(entry("big", data=os.urandom(9 << 20))))
        with pytest.raises(RunncError, match="no space left on the host device") as info:
            build_image(tmp_path / "rootfs.tar", small / "out.ext4")
        assert str(small) in info.value.line()
        assert list(small.iterdir()) == []
        # Content that passes the up-front free-space check (7.97 of 8 MiB) but not with
        # ext4's metadata added: mke2fs itself hits ENOSPC.
        src = tmp_path / "src"
        src.mkdir()
        for i in range(3):
            (src / f"f{i}").write_bytes(os.urandom(2720 << 10))
        with pytest.raises(RunncError, match="no space left on the host device while writing"):
            container_image(src, tmp_path / "ctr.ext4", cache_dir=small / "cache", size=64 << 20)
        cache = small / "cache"
        assert not list(cache.glob("*.ext4")) and not list(cache.glob("*.json"))
        assert list((cache / "tmp").iterdir()) == []
        assert not (tmp_path / "ctr.ext4").exists()
    finally:
        subprocess.run(["umount", small], check=True)


def test_unprivileged_builder_gets_owners_and_devices_right() -> None:
    """Without root the builder cannot chown: debugfs fixups must give the same image."""
    # pytest's tmp_path is root-only (0700 parents): use a directory nobody can reach.
    base = Path(tempfile.mkdtemp(prefix="runnc-rootfs-"))
    try:
        os.chmod(base, 0o755)
        _unprivileged_build(base)
    finally:
        shutil.rmtree(base)


def _unprivileged_build(tmp_path: Path) -> None:
    layers = [
        layer(
            entry("etc", "dir"),
            entry("etc/secret", data=b"s", uid=0, gid=42, mode=0o000),
            entry("home/u", "dir", uid=1000, gid=1000, mode=0o700),
            entry("dev/null", "char", devmajor=1, devminor=3, mode=0o666),
            entry("bin/su", data=b"su", mode=0o4755),
        )
    ]
    write_oci_layout(tmp_path / "oci", layers, "gzip")
    out = tmp_path / "out"
    out.mkdir()
    os.chown(out, 65534, 65534)
    script = (
        # Import first: this Python lives under /root, out of nobody's reach.
        "import os, hashlib, runnc_py.rootfs.overlay;"
        "from runnc_py.rootfs import build_image;"
        "os.setgroups([]); os.setgid(65534); os.setuid(65534);"
        f"build_image({str(tmp_path / 'oci')!r}, {str(out / 'img.ext4')!r}, size=16 << 20)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    img = out / "img.ext4"
    fsck(img)
    tree = listing(img)
    assert (tree["etc/secret"]["mode"], tree["etc/secret"]["gid"]) == (0o100000, 42)
    assert tree["etc/secret"]["uid"] == 0 and tree["etc"]["uid"] == 0
    assert (tree["home/u"]["mode"], tree["home/u"]["uid"]) == (0o40700, 1000)
    assert tree["dev/null"]["mode"] == 0o20666
    assert tree["bin/su"]["mode"] == 0o104755
    assert sorted(p.name for p in out.iterdir()) == ["img.ext4"]


def test_cli_build_reports_kind_and_fails_in_one_line(tmp_path: Path, runnc: Any) -> None:
    write_docker_save(tmp_path / "save.tar", stack()[:2])
    done = runnc(
        "rootfs",
        "build",
        tmp_path / "save.tar",
        "-o",
        tmp_path / "out.ext4",
        "--no-cache",
        "--size",
        "64M",
    )
    assert done.returncode == 0, done.stderr
    assert "source: docker-save tarball" in done.stdout and "64 MiB" in done.stdout
    fsck(tmp_path / "out.ext4")
    bad = tmp_path / "bad.tar"
    bad.write_bytes(layer(entry("../x", data=b"x")))
    done = runnc("rootfs", "build", bad, "-o", tmp_path / "bad.ext4", "--no-cache")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "contains '..'" in done.stderr
    done = runnc("rootfs", "build", tmp_path, "-o", tmp_path / "x.ext4", "--from-layers")
    assert done.returncode == 1 and "--from-layers: source is a directory" in done.stderr
    done = runnc("rootfs", "build", bad, "-o", tmp_path / "x.ext4", "--size", "lots")
    assert done.returncode == 1 and "--size: invalid size 'lots'" in done.stderr
    assert not (tmp_path / "bad.ext4").exists() and not (tmp_path / "x.ext4").exists()
