"""How big an ext4 image must be: size parsing and the default rule (content + headroom).

Pure arithmetic, no I/O. The image file is sparse, so headroom costs host disk only when the
guest writes to it; it still costs a little mke2fs time (bitmaps, inode tables), so it is not
unlimited.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from runnc_py.errors import RunncError

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
BLOCK = 4096
INODE_SIZE = 256

# Annotations a bundle may carry (config.json `annotations`), read by `create`.
SIZE_ANNOTATION = "org.runnc-py.rootfs.size"
HEADROOM_ANNOTATION = "org.runnc-py.rootfs.headroom"

MIN_HEADROOM = 128 * MiB
MIN_SPARE_INODES = 1024
_UNITS = {"": 1, "k": KiB, "m": MiB, "g": GiB, "t": 1 << 40}
# ASCII digits, no sign, no spaces (the strictnum rule), an optional fraction and unit.
_SIZE_RE = re.compile(r"^([0-9]{1,20}(?:\.[0-9]{1,9})?)([kmgt]?)(?:i?b)?$", re.I | re.A)
# The largest image we make: ext4's largest file with 4 KiB blocks on the host (16 TiB), which
# is also where a sparse image file on an ext4 host stops growing.
MAX_IMAGE_SIZE = 16 << 40


def parse_size(text: str | int, *, where: str) -> int:
    """`"512M"`, `"1.5GiB"`, `"4096"`, `"64k"` → bytes (binary units; a bare number is bytes)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = _SIZE_RE.match(text) if isinstance(text, str) else None
        if match is None:
            raise RunncError(f"invalid size {text!r} (use e.g. 512M, 2G, 1.5GiB)", where=where)
        value = math.ceil(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value <= 0:
        raise RunncError(f"size must be positive, got {text!r}", where=where)
    if value > MAX_IMAGE_SIZE:
        raise RunncError(f"size {text!r} is larger than {human(MAX_IMAGE_SIZE)}", where=where)
    return value


def sizes_from_annotations(annotations: Mapping[str, str]) -> tuple[int | None, int | None]:
    """(size, headroom) requested by a bundle's annotations, None where absent."""
    size = annotations.get(SIZE_ANNOTATION)
    headroom = annotations.get(HEADROOM_ANNOTATION)
    return (
        parse_size(size, where=f"annotation {SIZE_ANNOTATION}") if size is not None else None,
        parse_size(headroom, where=f"annotation {HEADROOM_ANNOTATION}")
        if headroom is not None
        else None,
    )


def human(n: int) -> str:
    """Bytes as a short binary-unit string for messages (`1.5 GiB`, `12 MiB`, `300 B`)."""
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= scale:
            text = f"{n / scale:.1f}".removesuffix(".0")
            return f"{text} {unit}"
    return f"{n} B"


@dataclass(frozen=True)
class ContentStats:
    """What a tree needs on ext4: inodes and allocated bytes (4 KiB blocks)."""

    entries: int  # inodes, hardlinks counted once, the root not counted
    data_bytes: int  # regular file data actually allocated (holes excluded)
    meta_bytes: int  # directory blocks, long symlinks, xattr blocks


@dataclass(frozen=True)
class Layout:
    """The mke2fs parameters that follow from the content and the request."""

    size: int  # bytes, a multiple of 1 MiB
    inodes: int
    journal_mib: int
    minimum: int  # the smallest size this content could fit in (for messages)


def _journal_mib(total: int) -> int:
    # A fixed ladder instead of mke2fs's own so the estimate below knows the number.
    if total < 256 * MiB:
        return 4
    if total < 1 * GiB:
        return 16
    return 64


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


def default_headroom(stats: ContentStats) -> int:
    """Room for the guest's writes: half the content, at least 128 MiB."""
    return max(MIN_HEADROOM, stats.data_bytes // 2)


def plan_layout(
    stats: ContentStats, *, size: int | None = None, headroom: int | None = None
) -> Layout:
    """Size, inode count and journal for an image of this content.

    Default rule: needed = data + metadata + inode tables + journal + 2 % + 8 MiB of ext4
    bookkeeping (group descriptors, bitmaps, reserved GDT blocks), then + headroom
    (default `default_headroom`), rounded up to 1 MiB. An explicit `size` wins but must hold
    at least data + metadata; whether it truly fits is mke2fs's verdict.
    """
    room = default_headroom(stats) if headroom is None else headroom
    inodes = _round_up(stats.entries + 16 + max(MIN_SPARE_INODES, room // (16 * KiB)), 64)
    content = stats.data_bytes + stats.meta_bytes
    base = content + inodes * INODE_SIZE
    total_guess = base + room
    journal = _journal_mib(total_guess)
    needed = base + journal * MiB + base // 50 + 8 * MiB
    minimum = _round_up(content + (stats.entries + 16) * INODE_SIZE, MiB)
    if size is None:
        return Layout(_round_up(needed + room, MiB), inodes, journal, minimum)
    size = _round_up(size, MiB)
    if size < minimum:
        raise RunncError(
            f"rootfs content needs at least {human(minimum)} but the image size is {human(size)}",
            where="rootfs size",
        )
    # A small explicit size: shrink the journal (and inode reserve) so the content fits.
    journal = _journal_mib(size)
    if size - minimum < journal * MiB + 8 * MiB:
        # ext4's smallest journal is 1024 blocks (4 MiB); below that, go without one.
        journal = 4 if size - minimum >= 12 * MiB else 0
    spare = max(0, (size - needed) // (16 * KiB))
    inodes = _round_up(stats.entries + 16 + min(spare, MIN_SPARE_INODES), 64)
    return Layout(size, inodes, journal, minimum)
