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
