"""Docker/podman overlay rootfs: find its layers in /proc/self/mountinfo, fingerprint them.

A bundle's rootfs is usually an overlay mount whose lowerdirs are the image layers (shared by
every container of that image) plus a small per-container init layer, and whose upperdir is
the container's own. Keying the image cache on the layers instead of walking the merged tree
makes a cached create cost a few stats whatever the image's size.

Fingerprint of one layer directory:
- small (≤ 256 entries and ≤ 1 MiB of file data, e.g. Docker's `-init` layer or a fresh
  upperdir): its content (paths, types, modes, owners, sizes, bytes, link targets), without
  mtimes, because Docker rewrites the init layer for every container with new mtimes.
- larger: path, device, inode, mtime and ctime of the layer directory. Overlayfs forbids
  changing a lowerdir while mounted and engines never change a committed layer. A large
  upperdir (writable) has no cheap identity: then the merged tree is walked instead.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from runnc_py.mountinfo import unescape

SMALL_ENTRIES = 256
SMALL_BYTES = 1 << 20


@dataclass(frozen=True)
class Mount:
    mount_id: int
    parent_id: int
    root: str
    mount_point: str
    fstype: str
    source: str
    super_options: str




def parse_mountinfo(text: str) -> list[Mount]:
    """Lines of /proc/PID/mountinfo (proc(5)) as Mount records; malformed lines skipped."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        tail = right.split()
        if len(fields) < 6 or len(tail) < 3:
            continue
        mounts.append(
            Mount(
                mount_id=int(fields[0]),
                parent_id=int(fields[1]),
                root=unescape(fields[3]),
                mount_point=unescape(fields[4]),
                fstype=tail[0],
                source=unescape(tail[1]),
                super_options=tail[2],
            )
        )
    return mounts


def find_mount(mounts: list[Mount], path: str) -> Mount | None:
    """The mount on top at exactly `path` (later lines are mounted over earlier ones)."""
    found = None
    for mount in mounts:
        if mount.mount_point == path:
            found = mount
    return found


def _split_lower(value: str) -> list[str]:
    # lowerdir=a:b:c, where a literal ':' in a path is written '\:'.
    parts, current, i = [], "", 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value) and value[i + 1] == ":":
            current += ":"
            i += 2
            continue
        if value[i] == ":":
            parts.append(current)
            current = ""
        else:
            current += value[i]
        i += 1
    parts.append(current)
    return [p for p in parts if p]


@dataclass(frozen=True)
class OverlayLayers:
    lowerdirs: tuple[str, ...]  # top first, as overlayfs lists them
    upperdir: str | None


def overlay_layers(mount: Mount) -> OverlayLayers | None:
    """lowerdir/upperdir of an overlay mount, made absolute; None if not overlay.

    Docker and podman mount with paths relative to their storage directory (`l/ABC…`,
    `ID/diff`) to fit the option page; the merged dir is STORAGE/ID/merged, so relative
    paths are taken from its grandparent.
    """
    if mount.fstype != "overlay":
        return None
    base = os.path.dirname(os.path.dirname(mount.mount_point))
    lowers: list[str] = []
    upper = None
    for option in mount.super_options.split(","):
        key, _, value = option.partition("=")
        value = unescape(value)
        if key == "lowerdir":
            lowers.extend(_split_lower(value))
        elif key in ("lowerdir+", "datadir+"):
            lowers.append(value)
        elif key == "upperdir":
            upper = value
    if not lowers:
        return None

    def absolute(p: str) -> str:
        return p if p.startswith("/") else os.path.join(base, p)

    return OverlayLayers(tuple(absolute(p) for p in lowers), absolute(upper) if upper else None)


def _small_content(path: Path) -> str | None:
    """A content hash of a small tree (no mtimes), or None once it proves large."""
    digest = hashlib.sha256()
    count = total = 0
    stack = [(str(path), "")]
    while stack:
        directory, rel = stack.pop()
        with os.scandir(directory) as it:
            children = sorted(it, key=lambda e: e.name)
        for child in children:
            count += 1
            if count > SMALL_ENTRIES:
                return None
            st = child.stat(follow_symlinks=False)
            name = f"{rel}/{child.name}" if rel else child.name
            extra = b""
            if stat.S_ISLNK(st.st_mode):
                extra = os.fsencode(os.readlink(child.path))
            elif stat.S_ISREG(st.st_mode):
                total += st.st_size
                if total > SMALL_BYTES:
                    return None
                with open(child.path, "rb") as f:
                    extra = hashlib.sha256(f.read()).digest()
            elif stat.S_ISDIR(st.st_mode):
                stack.append((child.path, name))
            line = f"{name}\0{st.st_mode:o} {st.st_uid} {st.st_gid} {st.st_size} {st.st_rdev}\0"
            digest.update(line.encode("utf-8", "surrogateescape") + extra + b"\n")
    return digest.hexdigest()


def layer_fingerprint(path: str) -> str:
    """What identifies one layer directory's content (see the module docstring)."""
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise FileNotFoundError(path)
    small = _small_content(Path(path))
    if small is not None:
        return f"content:{small}"
    return f"dir:{os.path.realpath(path)}:{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def overlay_fingerprint(path: str, mountinfo: str | None = None) -> str | None:
    """A cache identity for the overlay mounted at `path`, or None if there is none to use."""
    real = os.path.realpath(path)
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo") as f:
                mountinfo = f.read()
        except OSError:
            return None
    mount = find_mount(parse_mountinfo(mountinfo), real)
    if mount is None:
        return None
    layers = overlay_layers(mount)
    if layers is None:
        return None
    try:
        parts = [layer_fingerprint(p) for p in layers.lowerdirs]
        upper = "none"
        if layers.upperdir:
            # The upperdir is writable: only a content fingerprint can speak for it.
            small = _small_content(Path(layers.upperdir))
            if small is None:
                return None
            upper = f"content:{small}"
    except OSError:
        return None  # layers not where we guessed: fall back to walking the merged tree
    return hashlib.sha256("\n".join([*parts, "upper", upper]).encode()).hexdigest()
