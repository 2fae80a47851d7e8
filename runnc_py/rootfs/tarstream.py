"""Read one layer tar as a stream: decompress, verify its digest, insist on a proper end.

Python's tarfile quietly stops at a damaged or missing header, which would turn a truncated
layer into a silently smaller image. `read_layer` checks that the archive ended at a real
end-of-archive block, and that the blob's digest (compressed or not) is the one the manifest
promised, so a layer that was cut short or tampered with fails as a whole.
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import hashlib
import shutil
import subprocess
import tarfile
import threading
import zlib
from collections.abc import Callable
from typing import IO

from runnc_py.errors import RunncError
from runnc_py.rootfs.limits import Budget
from runnc_py.rootfs.tree import DataOpener

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1 << 20
_TAR_BUFSIZE = 256 * 1024  # tarfile's stream reads (its default, 10 KiB, costs 20k calls/200 MB)
_WINDOW = 4 * _TAR_BUFSIZE  # > 2 x tarfile's buffer: the last header read is still in it
_ALGORITHMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}

Visitor = Callable[[tarfile.TarInfo, DataOpener], None]
# pax and GNU long-name/long-link records are read whole into memory by tarfile (and parsed
# with a regular expression): a 300 MiB pax record, 1.3 MB as gzip, cost 1.25 GB of RSS. Real
# ones hold a path, a link target and xattrs (ext4 keeps all of a file's in one 4 KiB block).
MAX_EXTENDED_HEADER = 1 << 20
_EXTENDED_TYPES = frozenset(
    {
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
    }
)


def bounded_tarinfo(where: str) -> type[tarfile.TarInfo]:
    """A TarInfo class that refuses an oversized extended header before tarfile reads it."""

    class BoundedTarInfo(tarfile.TarInfo):
        def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:  # type: ignore[override]
            if self.type in _EXTENDED_TYPES and self.size > MAX_EXTENDED_HEADER:
                raise RunncError(
                    f"extended tar header of {self.size} bytes (at most {MAX_EXTENDED_HEADER})",
                    where=where,
                )
            return super()._proc_member(archive)  # type: ignore[misc]

    return BoundedTarInfo


class _Reader:
    """A read-only wrapper: hashes and counts what passes, keeps a short tail, can peek."""

    def __init__(
        self,
        inner: IO[bytes],
        algorithm: str | None = None,
        window: int = 0,
        budget: Budget | None = None,
    ) -> None:
        self.inner = inner
        self.budget = budget
        self.hash = _ALGORITHMS[algorithm]() if algorithm else None
        self.pos = 0
        self._pushback = b""
        self._window = window
        self._tail: collections.deque[tuple[int, bytes]] = collections.deque()
        self._tail_bytes = 0

    def peek(self, n: int) -> bytes:
        while len(self._pushback) < n:
            more = self.inner.read(n - len(self._pushback))
            if not more:
                break
            self._pushback += more
        return self._pushback[:n]

    def read(self, n: int = -1) -> bytes:
        if self._pushback:
            take = len(self._pushback) if n < 0 else min(n, len(self._pushback))
            data, self._pushback = self._pushback[:take], self._pushback[take:]
        else:
            data = self.inner.read(self.budget.clamp(n) if self.budget is not None else n)
        if data:
            if self.budget is not None:
                self.budget.spend(len(data))
            if self.hash is not None:
                self.hash.update(data)
            if self._window:
                self._tail.append((self.pos, data))
                self._tail_bytes += len(data)
                while self._tail_bytes - len(self._tail[0][1]) >= self._window:
                    self._tail_bytes -= len(self._tail.popleft()[1])
            self.pos += len(data)
        return data

    def block_at(self, offset: int, size: int) -> bytes | None:
        """Bytes [offset, offset+size) if still in the tail window, else None."""
        out = b""
        for start, data in self._tail:
            end = start + len(data)
            if end <= offset or start >= offset + size:
                continue
            out += data[max(0, offset - start) : offset + size - start]
        if self._tail and self._tail[0][0] > offset:
            return None
        return out

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


class _Filter:
    """A decompressor process (`gzip -dc`, `zstd -dc`) fed by a thread.

    Decompressing on the other core while Python parses the tar takes a third off a cold
    build (the stdlib has no zstd at all, and its gzip runs in this thread).
    """

    def __init__(self, argv: list[str], source: _Reader, where: str) -> None:
        self.where = where
        self.what = argv[0]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.source = source
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        assert self.proc.stdin is not None
        try:
            while chunk := self.source.read(CHUNK):
                self.proc.stdin.write(chunk)
        except BrokenPipeError:
            pass
        except BaseException as exc:  # reported by close(), on the main thread
            self.error = exc
        finally:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()

    def read(self, n: int = -1) -> bytes:
        assert self.proc.stdout is not None
        return self.proc.stdout.read(n)

    def close(self, check: bool) -> None:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        if not check:
            self.proc.kill()
        self.proc.stdout.read()  # let it finish so it can exit
        self.thread.join()
        err = self.proc.stderr.read().decode(errors="replace").strip()
        rc = self.proc.wait()
        if check and self.error is not None:
            raise RunncError(f"reading layer failed: {self.error}", where=self.where)
        if check and rc != 0:
            first = err.splitlines()[-1] if err else f"exit status {rc}"
            raise RunncError(f"corrupt {self.what} layer: {first}", where=self.where)


def _check_digest(reader: _Reader, digest: str, what: str, where: str) -> None:
    assert reader.hash is not None
    actual = f"{digest.split(':', 1)[0]}:{reader.hash.hexdigest()}"
    if actual != digest:
        raise RunncError(f"{what} digest mismatch: expected {digest}, got {actual}", where=where)


def _algorithm(digest: str | None, where: str) -> str | None:
    if digest is None:
        return None
    algorithm = digest.split(":", 1)[0]
    if algorithm not in _ALGORITHMS or ":" not in digest:
        raise RunncError(f"unsupported digest {digest!r}", where=where)
    return algorithm


def read_layer(
    raw: IO[bytes],
    visit: Visitor,
    *,
    where: str,
    digest: str | None = None,
    digest_of: str = "compressed",
    size: int | None = None,
    budget: Budget | None = None,
) -> None:
    """Call `visit(member, open_data)` for each member of the layer in `raw`, then verify.

    `digest` is of the blob as stored (`compressed`, OCI descriptors) or of the plain tar
    (`uncompressed`, Docker's diff_ids). Any damage raises one RunncError. `budget` counts
    every decompressed byte (headers, data, padding, anything after the end-of-archive
    block) and stops the stream as soon as the build's limit is crossed.
    """
    algorithm = _algorithm(digest, where)
    outer = _Reader(raw, algorithm if digest_of == "compressed" else None)
    magic = outer.peek(4)
    decompressor: _Filter | None = None
    inner: IO[bytes] | _Reader | _Filter | gzip.GzipFile
    if magic.startswith(GZIP_MAGIC) and shutil.which("gzip"):
        inner = decompressor = _Filter(["gzip", "-dc"], outer, where)
    elif magic.startswith(GZIP_MAGIC):
        inner = gzip.GzipFile(fileobj=outer, mode="rb")  # type: ignore[arg-type]
    elif magic == ZSTD_MAGIC:
        if shutil.which("zstd") is None:
            raise RunncError(
                "zstd-compressed layer needs the zstd program (apt-get install zstd)",
                where=where,
            )
        inner = decompressor = _Filter(["zstd", "-dcq"], outer, where)
    else:
        inner = outer
    plain = _Reader(
        inner,  # type: ignore[arg-type]
        algorithm if digest_of == "uncompressed" else None,
        _WINDOW,
        budget,
    )
    ok = False
    try:
        # Stream mode reads strictly forward; nothing to close but our own readers.
        archive = tarfile.open(  # type: ignore[call-overload]  # noqa: SIM115
            fileobj=plain, mode="r|", bufsize=_TAR_BUFSIZE, tarinfo=bounded_tarinfo(where)
        )
        for member in archive:
            visit(member, lambda m=member: archive.extractfile(m))
        end = plain.block_at(archive.offset, tarfile.BLOCKSIZE)
        if end is None or len(end) < tarfile.BLOCKSIZE:
            raise RunncError(
                f"layer is truncated or corrupt at byte {archive.offset} (no end-of-archive block)",
                where=where,
            )
        if end.count(0) != len(end):
            raise RunncError(f"corrupt tar header at byte {archive.offset}", where=where)
        plain.drain()
        if decompressor is not None:
            # Join the feeding thread before reading the rest of the blob ourselves.
            decompressor.close(check=True)
            decompressor = None
        outer.drain()
        ok = True
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as exc:
        raise RunncError(f"corrupt or truncated layer: {exc}", where=where) from None
    finally:
        if decompressor is not None:
            decompressor.close(check=ok)
    if size is not None and outer.pos != size:
        raise RunncError(f"layer is {outer.pos} bytes, manifest says {size}", where=where)
    if digest is not None:
        _check_digest(plain if digest_of == "uncompressed" else outer, digest, "layer", where)
