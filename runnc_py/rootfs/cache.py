"""The content-addressed image cache: `rootfs/` under runnc_py.cachedir's root.

That is /var/lib/runnc-py/rootfs for root ($RUNNC_PY_CACHE/rootfs, ~/.cache/runnc-py/rootfs
otherwise); $RUNNC_PY_CACHE_DIR or an explicit argument names the directory itself.

Layout (all 0700, root's):
    KEY.ext4          a finished image, read-only, never modified after its rename
    KEY.json          what it was built from; its mtime is the entry's last use
    locks/KEY.lock    flock(2) per key: one builder at a time, and gc's exclusion
    refs/KEY/HASH     symlink to each per-container copy made from the entry
    tmp/              builds in progress (temp image + work dir), renamed into place

Readers open KEY.ext4 without a lock: it only ever appears by rename() of a complete,
fsync'ed file, and gc's unlink leaves an open descriptor readable. Copies are independent
of the entry, so removing an entry never harms a container; "unused" only decides what is
worth keeping for the next create.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runnc_py import cachedir
from runnc_py.errors import RunncError
from runnc_py.rootfs.remove import remove_tree

CACHE_ENV = "RUNNC_PY_CACHE_DIR"
DEFAULT_MAX_AGE = 7 * 24 * 3600.0
FORMAT = 1  # bump when the builder's output changes for the same input


def resolve_cache_dir(explicit: str | Path | None = None) -> Path:
    """The cache directory: the argument, else $RUNNC_PY_CACHE_DIR, else cachedir's rootfs/."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path(cachedir.cache_dir("rootfs"))


def cache_key(identity: str, **params: Any) -> str:
    """sha256 over the source identity and every build parameter that changes the image."""
    blob = json.dumps({"format": FORMAT, "identity": identity, **params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: Path
    size: int  # apparent size of the image
    disk: int  # bytes allocated on the host
    created: float
    last_used: float
    source: str
    kind: str
    live_refs: int

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "path": str(self.path),
            "size": self.size,
            "disk": self.disk,
            "created": self.created,
            "last_used": self.last_used,
            "source": self.source,
            "kind": self.kind,
            "live_refs": self.live_refs,
        }


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.locks = root / "locks"
        self.refs = root / "refs"
        self.tmp = root / "tmp"

    def ensure(self) -> None:
        try:
            for d in (self.root, self.locks, self.refs, self.tmp):
                d.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise RunncError(
                f"cannot create cache directory: {exc.strerror}", where=str(self.root)
            ) from None
        # Whoever can write here decides what every guest of a cached image boots from.
        st = os.stat(self.root)
        if not cachedir.trusted(st):
            raise RunncError(
                f"cache directory is not private (owner uid {st.st_uid}, mode "
                f"{st.st_mode & 0o777:o}): it must be ours and not group/other-writable",
                where=str(self.root),
            )

    def image(self, key: str) -> Path:
        return self.root / f"{key}.ext4"

    def meta_path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def open_image(self, key: str) -> int | None:
        try:
            return os.open(self.image(key), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None

    def read_meta(self, key: str) -> dict[str, Any]:
        try:
            data = json.loads(self.meta_path(key).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    # -- locking ---------------------------------------------------------------------------

    def _try_lock(self, key: str, blocking: bool) -> int | None:
        path = self.locks / f"{key}.lock"
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                return None
            # gc unlinks a lock file while holding it: a lock on the unlinked inode guards
            # nothing, so retry on the new file.
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = -1
            if os.fstat(fd).st_ino == current:
                return fd
            os.close(fd)

    @contextlib.contextmanager
    def locked(self, key: str, *, blocking: bool = True) -> Iterator[bool]:
        """Hold KEY's lock for the block; yields False if non-blocking and it was busy."""
        fd = self._try_lock(key, blocking)
        try:
            yield fd is not None
        finally:
            if fd is not None:
                os.close(fd)

    # -- entries -----------------------------------------------------------------------------

    def tmp_image(self, key: str) -> Path:
        return self.tmp / f"{key}.{os.getpid()}.ext4"

    def clear_tmp(self, key: str) -> None:
        """Remove leftovers of a builder of KEY that died (call with KEY's lock held)."""
        for item in self.tmp.glob(f"{key}.*"):
            remove_tree(item, ignore_errors=True)

    def publish(self, key: str, built: Path, meta: dict[str, Any]) -> None:
        """Make a finished temp image the entry for KEY (call with KEY's lock held)."""
        fd = os.open(built, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)  # the data must be on disk before the name that promises it
        finally:
            os.close(fd)
        os.chmod(built, 0o444)
        meta_tmp = built.with_suffix(".json")
        meta_tmp.write_text(
            json.dumps({**meta, "key": key, "format": FORMAT, "created": time.time()})
        )
        os.replace(meta_tmp, self.meta_path(key))
        os.replace(built, self.image(key))
        dir_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def touch(self, key: str) -> None:
        with contextlib.suppress(OSError):
            os.utime(self.meta_path(key))

    def add_ref(self, key: str, dest: Path) -> None:
        """Remember that `dest` was copied from KEY (a symlink per copy)."""
        ref_dir = self.refs / key
        name = hashlib.sha256(str(dest.resolve()).encode()).hexdigest()[:32]
        with contextlib.suppress(OSError):
            ref_dir.mkdir(mode=0o700, exist_ok=True)
            tmp = ref_dir / f".{name}.{os.getpid()}"
            tmp.unlink(missing_ok=True)
            os.symlink(dest.resolve(), tmp)
            os.replace(tmp, ref_dir / name)

    def _live_refs(self, key: str) -> int:
        ref_dir = self.refs / key
        if not ref_dir.is_dir():
            return 0
        return sum(1 for ref in ref_dir.iterdir() if ref.exists())  # exists() follows the link

    def entries(self) -> list[CacheEntry]:
        found = []
        if not self.root.is_dir():
            return found
        for image in sorted(self.root.glob("*.ext4")):
            key = image.name.removesuffix(".ext4")
            try:
                st = image.stat()
            except FileNotFoundError:
                continue  # removed by gc meanwhile
            meta = self.read_meta(key)
            try:
                last_used = self.meta_path(key).stat().st_mtime
            except OSError:
                last_used = st.st_mtime
            found.append(
                CacheEntry(
                    key=key,
                    path=image,
                    size=st.st_size,
                    disk=st.st_blocks * 512,
                    created=float(meta.get("created", st.st_mtime)),
                    last_used=last_used,
                    source=str(meta.get("source", "?")),
                    kind=str(meta.get("kind", "?")),
                    live_refs=self._live_refs(key),
                )
            )
        return found

    def _remove(self, key: str) -> None:
        self.image(key).unlink(missing_ok=True)
        self.meta_path(key).unlink(missing_ok=True)
        remove_tree(self.refs / key, ignore_errors=True)

    def gc(
        self, *, all_: bool = False, max_age: float = DEFAULT_MAX_AGE, now: float | None = None
    ) -> list[CacheEntry]:
        """Remove unused entries; `all_` removes every entry not being built right now.

        Unused: no live per-container copy refers to it and not used for `max_age` seconds.
        Also removes temp files of dead builders, dead refs and stray lock files.
        """
        now = time.time() if now is None else now
        removed: list[CacheEntry] = []
        if not self.root.is_dir():
            return removed
        self.ensure()  # refuses a cache others can write; makes locks/ for the sweep's locking
        for entry in self.entries():
            if not all_ and (entry.live_refs > 0 or now - entry.last_used < max_age):
                continue
            with self.locked(entry.key, blocking=False) as got:
                if not got:
                    continue  # a builder or another gc holds it
                self._remove(entry.key)
                (self.locks / f"{entry.key}.lock").unlink(missing_ok=True)
                removed.append(entry)
        self._sweep()
        return removed

    def _sweep(self) -> None:
        """gc's cleanup of what dead builders and deleted containers left. Each step goes on
        past an item it cannot remove: a leftover must never make every later gc fail."""
        keys = {p.name.removesuffix(".ext4") for p in self.root.glob("*.ext4")}
        self._sweep_tmp()
        self._sweep_refs(keys)
        self._sweep_locks(keys)
        self._sweep_meta(keys)

    def _sweep_tmp(self) -> None:
        if not self.tmp.is_dir():
            return
        for item in self.tmp.iterdir():
            key = item.name.split(".", 1)[0]
            with contextlib.suppress(OSError), self.locked(key, blocking=False) as got:
                if got:  # nobody is building KEY: whatever is here is a dead builder's
                    # Any depth, no recursion: a crashed build may have left a tree a
                    # hostile layer nested thousands of levels deep.
                    remove_tree(item, ignore_errors=True)

    def _sweep_refs(self, keys: set[str]) -> None:
        if not self.refs.is_dir():
            return
        for ref_dir in self.refs.iterdir():
            with contextlib.suppress(OSError):
                if ref_dir.name not in keys or not ref_dir.is_dir() or ref_dir.is_symlink():
                    remove_tree(ref_dir, ignore_errors=True)
                    continue
                for ref in ref_dir.iterdir():
                    if not ref.exists():
                        ref.unlink(missing_ok=True)

    def _sweep_locks(self, keys: set[str]) -> None:
        if not self.locks.is_dir():
            return
        for lock in self.locks.glob("*.lock"):
            key = lock.name.removesuffix(".lock")
            if key in keys:
                continue
            with contextlib.suppress(OSError):
                fd = self._try_lock(key, blocking=False)
                if fd is not None:
                    lock.unlink(missing_ok=True)
                    os.close(fd)

    def _sweep_meta(self, keys: set[str]) -> None:
        for meta in self.root.glob("*.json"):
            key = meta.name.removesuffix(".json")
            if key in keys:
                continue
            with contextlib.suppress(OSError), self.locked(key, blocking=False) as got:
                if got and not self.image(key).exists():
                    meta.unlink(missing_ok=True)
