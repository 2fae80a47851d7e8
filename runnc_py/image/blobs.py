"""Content-addressed blobs written while they stream: the layers and JSON documents of an
image being built, in a private temporary directory next to the output."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import IO

from runnc_py.errors import RunncError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Blob:
    digest: str  # sha256:<hex>
    size: int
    path: str

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]


class HashingWriter:
    """A write-only file object that hashes and counts what passes into FILE."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.file.write(data)


class BlobDir:
    """Blobs under a temporary directory in DIRECTORY (removed by `close`)."""

    def __init__(self, directory: str) -> None:
        try:
            self.root = tempfile.mkdtemp(prefix=".runnc-py-image-", dir=directory)
        except OSError as exc:
            raise RunncError(
                f"cannot create a work directory: {exc.strerror}", where=directory
            ) from None
        self._count = 0

    def new(self) -> tuple[str, IO[bytes]]:
        self._count += 1
        path = os.path.join(self.root, f"blob{self._count}")
        return path, open(path, "wb")  # closed by the caller

    def put_bytes(self, data: bytes) -> Blob:
        path, f = self.new()
        with f:
            f.write(data)
        return Blob("sha256:" + hashlib.sha256(data).hexdigest(), len(data), path)

    def put_stream(self, source: IO[bytes]) -> Blob:
        path, f = self.new()
        with f:
            out = HashingWriter(f)
            while chunk := source.read(CHUNK):
                out.write(chunk)
        return Blob("sha256:" + out.sha.hexdigest(), out.size, path)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
