"""Run e2fsprogs: `mke2fs -d DIR` into a sparse file, then debugfs for what a directory can't say.

e2fsprogs 1.47.0 (Debian 12) takes only a directory for `-d` (tar input came in 1.47.1), and
it copies modes, owners, mtimes, xattrs, hardlinks, holes and special files from it. What we
do not put in the directory — device nodes (never created on the host), and owners or modes
an unprivileged builder could not set — is applied afterwards by `Fixup`s, as one debugfs
script.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from runnc_py.errors import RunncError
from runnc_py.rootfs.paths import debugfs_quote
from runnc_py.rootfs.size import Layout, human

# Features every Linux since 4.4 mounts (the LKL ports are 4.x): ext4's defaults minus the
# 5.x-only orphan_file and the metadata_csum_seed that older kernels refuse read-write.
DISABLED_FEATURES = ("orphan_file", "metadata_csum_seed")
_KIND_BITS = {
    "dir": stat.S_IFDIR,
    "file": stat.S_IFREG,
    "symlink": stat.S_IFLNK,
    "fifo": stat.S_IFIFO,
    "char": stat.S_IFCHR,
    "block": stat.S_IFBLK,
}


@dataclass
class Fixup:
    """A change to one image path after mke2fs (path relative to the image root, "" = root)."""

    path: str
    kind: str
    mode: int | None = None  # permission bits
    uid: int | None = None
    gid: int | None = None
    mtime: int | None = None  # seconds
    rdev: tuple[int, int] | None = None  # recreate as a device node
    xattrs: dict[str, bytes] = field(default_factory=dict)


def debugfs_script(fixups: list[Fixup], values_dir: Path) -> bytes:
    """The debugfs commands for `fixups`; xattr values go to files under `values_dir`."""
    lines: list[str] = []
    for n, fx in enumerate(fixups):
        where = f"image path /{fx.path}"
        target = debugfs_quote("/" + fx.path, where=where)
        if fx.rdev is not None:
            parent, _, name = fx.path.rpartition("/")
            letter = "c" if fx.kind == "char" else "b"
            lines += [
                f"rm {target}",
                f"cd {debugfs_quote('/' + parent, where=where)}",
                f"mknod {debugfs_quote(name, where=where)} {letter} {fx.rdev[0]} {fx.rdev[1]}",
                "cd /",
            ]
        if fx.mode is not None:
            lines.append(f"sif {target} mode 0{_KIND_BITS[fx.kind] | fx.mode:o}")
        if fx.uid is not None:
            lines.append(f"sif {target} uid {fx.uid}")
        if fx.gid is not None:
            lines.append(f"sif {target} gid {fx.gid}")
        if fx.mtime is not None:
            lines.append(f"sif {target} mtime @{fx.mtime}")
        for i, (name, value) in enumerate(sorted(fx.xattrs.items())):
            value_file = values_dir / f"xattr-{n}-{i}"
            value_file.write_bytes(value)
            lines.append(
                f"ea_set -f {debugfs_quote(str(value_file), where=where)} {target} "
                f"{debugfs_quote(name, where=where)}"
            )
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


def _fail(stderr: str, layout: Layout, image: Path, where: str) -> RunncError:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = " ".join(lines)
    if "No space left on device" in text:
        return RunncError(
            "no space left on the host device while writing the image", where=str(image.parent)
        )
    if any(
        s in text for s in ("Could not allocate block", "Could not allocate inode", "No free space")
    ):
        return RunncError(
            f"rootfs does not fit in a {human(layout.size)} image; give a larger size",
            where=where,
        )
    return RunncError(f"mke2fs failed: {lines[-1] if lines else 'no message'}", where=where)


def make_ext4(
    tree: Path,
    image: Path,
    layout: Layout,
    *,
    where: str,
    uuid: str | None = None,
    fixups: list[Fixup] | None = None,
    scratch: Path | None = None,
) -> None:
    """Create `image` (must not exist) as a sparse ext4 file holding `tree`'s contents."""
    fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, layout.size)
    except OSError as exc:
        raise RunncError(f"cannot size image: {exc.strerror}", where=str(image)) from None
    finally:
        os.close(fd)
    features = ",".join("^" + f for f in DISABLED_FEATURES)
    if layout.journal_mib == 0:
        features += ",^has_journal"
    extended = "root_owner=0:0"
    cmd = ["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256"]
    cmd += ["-N", str(layout.inodes), "-m", "0", "-L", "rootfs", "-O", features]
    if layout.journal_mib:
        cmd += ["-J", f"size={layout.journal_mib}"]
    if uuid is not None:
        # Same key, same UUID and hash seed: rebuilding an entry gives the same filesystem.
        cmd += ["-U", uuid]
        extended += f",hash_seed={uuid}"
    cmd += ["-E", extended, "-d", str(tree), str(image)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    except FileNotFoundError:
        raise RunncError("mke2fs not found (apt-get install e2fsprogs)", where=where) from None
    if done.returncode != 0:
        raise _fail(done.stderr, layout, image, where)
    if fixups:
        _run_debugfs(fixups, image, scratch or image.parent, layout, where)


def _run_debugfs(
    fixups: list[Fixup], image: Path, scratch: Path, layout: Layout, where: str
) -> None:
    script = scratch / "debugfs.cmds"
    script.write_bytes(debugfs_script(fixups, scratch))
    done = subprocess.run(
        ["debugfs", "-w", "-f", str(script), str(image)],
        capture_output=True,
        text=True,
        errors="replace",
    )
    # debugfs exits 0 whatever its commands did; every stderr line but its banner is a failure.
    errors = [
        line
        for line in done.stderr.splitlines()
        if line.strip() and not line.startswith("debugfs ")
    ]
    if done.returncode != 0 or errors:
        if any("Could not allocate" in e or "No free space" in e for e in errors):
            raise _fail("\n".join(errors), layout, image, where)
        raise RunncError(
            f"debugfs fixup failed: {errors[0] if errors else done.returncode}", where=where
        )
