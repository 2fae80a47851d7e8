"""How much a build may read and create: decompressed bytes and files. Pure bookkeeping.

A layer is untrusted and compresses arbitrarily well: a 20 MB gzip held 20 GiB of zeros
(180 s of CPU), a layer of 10**6 empty files cost 189 s and 1 GB of memory. Every build
therefore has a budget, checked while the bytes stream and before each member is applied:

- `max_bytes`: decompressed layer bytes, all layers together, tar headers and whited-out
  content included (what the CPU actually has to go through); for a directory source, its
  file data. Default: the requested image size (`--size`), but never below DEFAULT_MAX_BYTES
  (layers that whiteout each other may sum to more than the final image);
- `max_files`: tar members (all layers) or directory entries. Default: one per 16 KiB of
  `max_bytes`, mke2fs's own default bytes-per-inode ratio, and at least MIN_MAX_FILES.
"""

from __future__ import annotations

from dataclasses import dataclass

from runnc_py.errors import RunncError
from runnc_py.rootfs.size import GiB, KiB, human

DEFAULT_MAX_BYTES = 4 * GiB
BYTES_PER_FILE = 16 * KiB
MIN_MAX_FILES = 65536


@dataclass(frozen=True)
class BuildLimits:
    max_bytes: int
    max_files: int

    @classmethod
    def for_request(
        cls,
        size: int | None = None,
        *,
        max_size: int | None = None,
        max_files: int | None = None,
    ) -> BuildLimits:
        """The limits of a build of an image of SIZE (None: content + headroom), with the
        caller's explicit MAX_SIZE / MAX_FILES winning over the defaults."""
        nbytes = max_size if max_size is not None else max(size or 0, DEFAULT_MAX_BYTES)
        files = max_files if max_files is not None else max(MIN_MAX_FILES, nbytes // BYTES_PER_FILE)
        return cls(nbytes, files)


class Budget:
    """What is left of a build's limits; raises one RunncError when a limit is crossed."""

    def __init__(self, limits: BuildLimits, where: str) -> None:
        self.limits = limits
        self.where = where
        self.bytes = 0
        self.files = 0

    def clamp(self, n: int) -> int:
        """How much to ask for in one read: never more than one byte past the limit, so an
        oversized request (a tar header claiming gigabytes) is refused, not allocated."""
        room = self.limits.max_bytes - self.bytes + 1
        return room if n < 0 or n > room else n

    def spend(self, n: int) -> None:
        self.bytes += n
        if self.bytes > self.limits.max_bytes:
            raise RunncError(
                f"layers decompress to more than {human(self.limits.max_bytes)} "
                "(raise with --max-size or a larger image size)",
                where=self.where,
            )

    def count_file(self, where: str | None = None) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise RunncError(
                f"more than {self.limits.max_files} files (raise with --max-files or --max-size)",
                where=where or self.where,
            )

    def check_data(self, total: int, where: str) -> None:
        """For a directory source: its file data against max_bytes."""
        if total > self.limits.max_bytes:
            raise RunncError(
                f"holds more than {human(self.limits.max_bytes)} of file data "
                "(raise with --max-size or a larger image size)",
                where=where,
            )
