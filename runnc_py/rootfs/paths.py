"""Layer member names: normalisation, whiteouts, and what is allowed at all. Pure functions.

A layer tar is untrusted input. Names are reduced to a tuple of components that can only
name something inside the image: absolute names and `..` components are refused outright
(Docker and umoci strip a leading `/`; we refuse it, the issue asks for that).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from runnc_py.errors import RunncError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
# AUFS's own metadata (`.wh..wh.plnk`, `.wh..wh.aufs`): never part of the image.
AUFS_META_PREFIX = ".wh..wh."
NAME_MAX = 255
# Every image path (relative to the root, "a/b/c") is at most this long. mke2fs 1.47.0 (Debian
# 12) keeps the path of the entry it copies in a buffer of 255 * 2**k bytes and checks its
# room one byte short: an entry whose "/a/b/c" is exactly as long as the buffer gets its NUL
# written one past the end. glibc's chunk rounding gives 255, 510, 1020 and 4080-byte buffers
# spare bytes, but a 2040-byte one none, so an entry path of exactly 2040 bytes corrupts the
# heap (`realloc(): invalid next size`, seen with a 1020-deep tree). Paths up to 2038 bytes
# ("/" + 2038 < 2040) never make the buffer reach 2040. Linux itself allows 4095.
MAX_PATH_BYTES = 2038
# Real images nest about 10-20 levels (node_modules ~30); 512 leaves room for anything real
# and keeps mke2fs's recursive copy (one C stack frame per level) shallow.
MAX_DEPTH = 512
# ext4 keeps a symlink target in one block (4096 bytes, NUL included); the kernel's limit too.
MAX_SYMLINK_TARGET = 4095


class DevicePolicy(StrEnum):
    """Which device nodes a layer or directory may carry into an image."""

    DENY = "deny"  # none at all
    SAFE = "safe"  # the character devices runc itself creates in every container
    ALLOW = "allow"  # anything (the image is only ever read by the guest's own kernel)


# (major, minor) of null, zero, full, random, urandom, tty, console, ptmx: the devices the
# OCI runtime spec requires in every container, so an image holding them reveals nothing.
SAFE_DEVICES = frozenset({(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)})


def check_device(kind: str, major: int, minor: int, policy: DevicePolicy, *, where: str) -> None:
    """Refuse a device node the policy does not allow. `kind` is "char" or "block"."""
    if policy is DevicePolicy.ALLOW:
        return
    if policy is DevicePolicy.SAFE and kind == "char" and (major, minor) in SAFE_DEVICES:
        return
    raise RunncError(
        f"{kind} device {major}:{minor} not allowed by device policy {policy.value!r} "
        "(use --devices allow to keep it)",
        where=where,
    )


def _short(path: str) -> str:
    return repr(path if len(path) <= 48 else path[:24] + "..." + path[-20:])


def check_path(path: str, *, where: str) -> None:
    """Refuse an image path ("a/b/c", relative to the root) deeper or longer than an image
    can safely hold (MAX_DEPTH, MAX_PATH_BYTES: see above)."""
    depth = path.count("/") + 1
    if depth > MAX_DEPTH:
        raise RunncError(
            f"path {_short(path)} is nested {depth} directories deep (at most {MAX_DEPTH})",
            where=where,
        )
    size = len(path.encode("utf-8", "surrogateescape"))
    if size > MAX_PATH_BYTES:
        raise RunncError(
            f"path {_short(path)} is {size} bytes long (at most {MAX_PATH_BYTES})", where=where
        )


def split_name(name: str, *, where: str) -> tuple[str, ...]:
    """A member name as components; `()` is the image root. Refuses names that could escape."""
    if "\x00" in name:
        raise RunncError("member name contains a NUL byte", where=where)
    if name.startswith("/"):
        raise RunncError(f"absolute member name {name!r}", where=where)
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise RunncError(f"member name {name!r} contains '..'", where=where)
        if len(part.encode("utf-8", "surrogateescape")) > NAME_MAX:
            raise RunncError(f"member name component longer than {NAME_MAX} bytes", where=where)
        parts.append(part)
    return tuple(parts)


class Action(StrEnum):
    ENTRY = "entry"  # create or replace the named entry
    WHITEOUT = "whiteout"  # delete the named entry of lower layers
    OPAQUE = "opaque"  # hide every lower-layer child of the named directory
    SKIP = "skip"  # AUFS metadata: ignore


@dataclass(frozen=True)
class Classified:
    action: Action
    parts: tuple[str, ...]  # the entry, the whited-out path, or the opaque directory


def classify(parts: tuple[str, ...]) -> Classified:
    """What a member means in the OCI layer format (image-spec layer.md, whiteouts)."""
    if not parts:
        return Classified(Action.ENTRY, parts)
    base = parts[-1]
    if base == OPAQUE_MARKER:
        return Classified(Action.OPAQUE, parts[:-1])
    if base.startswith(AUFS_META_PREFIX):
        return Classified(Action.SKIP, parts)
    if base.startswith(WHITEOUT_PREFIX):
        target = base[len(WHITEOUT_PREFIX) :]
        if target in ("", ".", ".."):
            return Classified(Action.SKIP, parts)
        return Classified(Action.WHITEOUT, (*parts[:-1], target))
    return Classified(Action.ENTRY, parts)


def debugfs_quote(path: str, *, where: str) -> str:
    """A path as one debugfs (libss) argument: double quotes, `"` doubled.

    libss has no way to write a newline inside an argument, so such names are refused.
    """
    if "\n" in path or "\r" in path:
        raise RunncError("file name with a newline cannot be fixed up with debugfs", where=where)
    return '"' + path.replace('"', '""') + '"'
