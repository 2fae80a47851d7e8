"""The layers of a unikernel image, as uncompressed tar blobs (their digest is their diff_id).

* the rootfs, from a directory (tarred in sorted order, owners and times as they are) or from
  an image or tar (`docker save`, OCI archive/layout: its layers, decompressed; any other tar:
  one layer);
* the top layer: the unikernel at its path in the image and /runnc-py.json. Its entries have
  fixed owner (0:0) and time (SOURCE_DATE_EPOCH, else 0), so the same unikernel and settings
  always give the same layer digest and engines share it between images.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from typing import IO

from runnc_py.errors import RunncError
from runnc_py.image.blobs import Blob, BlobDir, HashingWriter
from runnc_py.image.settings import SETTINGS_FILE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runnc_py.rootfs.sources import LayerRef

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def fixed_mtime() -> int:
    text = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(text) if text.isdigit() else 0


def _tar_blob(blobs: BlobDir, fill: Callable[[tarfile.TarFile], None]) -> Blob:
    path, f = blobs.new()
    with f:
        out = HashingWriter(f)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:  # type: ignore[call-overload]
            fill(archive)
    return Blob("sha256:" + out.sha.hexdigest(), out.size, path)


def directory_layer(tree: str, blobs: BlobDir) -> Blob:
    """TREE's content (not TREE itself) as one layer."""

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uname = info.gname = ""  # numeric owners only: names mean nothing in an image
        return info

    def fill(archive: tarfile.TarFile) -> None:
        for name in sorted(os.listdir(tree)):
            archive.add(os.path.join(tree, name), arcname=name, filter=clean)

    try:
        return _tar_blob(blobs, fill)
    except OSError as exc:
        raise RunncError(f"cannot read: {exc.strerror}", where=exc.filename or tree) from None


def top_layer(unikernel: str, image_path: str, settings: bytes, blobs: BlobDir) -> Blob:
    """The unikernel file at IMAGE_PATH (mode 0755) and /runnc-py.json (0644)."""
    mtime = fixed_mtime()

    def entry(name: str, size: int, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name.lstrip("/"))
        info.size, info.mode, info.mtime = size, mode, mtime
        info.uid = info.gid = 0
        return info

    def parents(name: str) -> Iterator[str]:
        parts = name.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            yield "/".join(parts[:i])

    def fill(archive: tarfile.TarFile) -> None:
        for directory in parents(image_path):
            info = entry(directory, 0, 0o755)
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
        size = os.path.getsize(unikernel)
        with open(unikernel, "rb") as f:
            archive.addfile(entry(image_path, size, 0o755), f)
        archive.addfile(entry(SETTINGS_FILE, len(settings), 0o644), io.BytesIO(settings))

    try:
        return _tar_blob(blobs, fill)
    except OSError as exc:
        raise RunncError(f"cannot read: {exc.strerror}", where=unikernel) from None


@contextlib.contextmanager
def _plain(raw: IO[bytes], where: str) -> Iterator[IO[bytes]]:
    """RAW decompressed (gzip, zstd) or as it is."""
    head = raw.read(4)
    rest = _Prefixed(head, raw)
    if head.startswith(GZIP_MAGIC):
        with gzip.GzipFile(fileobj=rest, mode="rb") as plain:  # type: ignore[arg-type]
            yield plain  # type: ignore[misc]
    elif head == ZSTD_MAGIC:
        try:
            proc = subprocess.Popen(["zstd", "-dcq"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        except FileNotFoundError:
            raise RunncError("zstd layer needs the zstd program", where=where) from None
        import threading

        def feed() -> None:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError), proc.stdin:
                while chunk := rest.read(1 << 20):
                    proc.stdin.write(chunk)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        assert proc.stdout is not None
        try:
            yield proc.stdout
        finally:
            feeder.join()
            if proc.wait() != 0:
                raise RunncError("zstd could not decompress the layer", where=where)
    else:
        yield rest  # type: ignore[misc]


class _Prefixed:
    """HEAD, then the rest of RAW: a stream whose first bytes were already read."""

    def __init__(self, head: bytes, raw: IO[bytes]) -> None:
        self.head, self.raw = head, raw

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n < 0:
                data, self.head = self.head + self.raw.read(), b""
                return data
            data, self.head = self.head[:n], self.head[n:]
            return data if len(data) == n else data + self.raw.read(n - len(data))
        return self.raw.read(n)


class _HashingReader:
    """RAW, hashed (sha256, sha512) as it is read: a stored blob checked against its digest."""

    def __init__(self, raw: IO[bytes], algorithm: str) -> None:
        import hashlib

        self.raw = raw
        self.hash = hashlib.new(algorithm)

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _copy_layer(ref: LayerRef, source: str, blobs: BlobDir) -> Blob:
    """REF's layer, decompressed, as a blob; both of its digests checked when known."""
    where = f"{source}: {ref.name}"
    stored = ref.digest if ref.digest_of == "compressed" else None
    with ref.open() as raw:
        reader = _HashingReader(raw, stored.split(":")[0] if stored else "sha256")
        with _plain(reader, where) as plain:  # type: ignore[arg-type]
            blob = blobs.put_stream(plain)
        reader.drain()  # what the decompressor left (gzip trailer padding) counts too
    if stored is not None and f"{stored.split(':')[0]}:{reader.hash.hexdigest()}" != stored:
        raise RunncError(f"{ref.name} does not match its digest {stored}", where=source)
    if ref.digest_of == "uncompressed" and ref.digest not in (None, blob.digest):
        raise RunncError(f"{ref.name} does not match its diff_id {ref.digest}", where=source)
    return blob


def image_layers(source: str, blobs: BlobDir) -> list[Blob]:
    """The layers of SOURCE: a directory, a tar, a docker-save tarball or an OCI archive/layout
    (found by runnc_py.rootfs.sources, which checks manifests and paths; the layer blobs are
    checked against their digests here, while they are copied)."""
    from runnc_py.rootfs.sources import detect

    found = detect(source)
    if found.kind == "directory":
        return [directory_layer(source, blobs)]
    return [_copy_layer(ref, source, blobs) for ref in found.layers]
