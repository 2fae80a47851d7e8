"""Where runnc-py keeps work it can reuse, and how it reads and writes it safely.

One root for every cache: `$RUNNC_PY_CACHE`, else `/var/lib/runnc-py` for root, else
`$XDG_CACHE_HOME/runnc-py` (`~/.cache/runnc-py`); each kind of entry has its own directory
below it (`bpf/`, `images/`, `rootfs/`). Cached data decides what a guest may do, so a file is
used only when it and its directory belong to us and nobody else can write them; entries are
written to a temporary name and renamed, so a reader never sees part of one.
"""

from __future__ import annotations

import os

CACHE_ENV = "RUNNC_PY_CACHE"

# Paths are plain strings here, as in the other modules of the boot path: importing pathlib
# costs ~4 ms, a tenth of a whole `runnc-py exec`; contextlib (~2 ms) is left out likewise.


def cache_root() -> str:
    env = os.environ.get(CACHE_ENV)
    if env:
        return env
    if os.geteuid() == 0:
        return "/var/lib/runnc-py"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "runnc-py")


def cache_dir(kind: str) -> str:
    return os.path.join(cache_root(), kind)


def trusted(st: os.stat_result) -> bool:
    """Ours and not writable by group or others."""
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def read_trusted(path: str | os.PathLike[str], max_size: int) -> bytes | None:
    """The file's bytes if it is a trusted regular file of at most MAX_SIZE bytes, else None."""
    try:
        if not trusted(os.stat(os.path.dirname(os.fspath(path)))):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not trusted(st) or st.st_size > max_size:
            return None
        return os.read(fd, st.st_size)
    except OSError:
        return None
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Best effort: a cache that cannot be written only costs the next run the work again."""
    directory, name = os.path.split(os.fspath(path))
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)  # readers see the old file or the whole new one, never a part
    except OSError:
        _unlink_quietly(tmp)


def prune(directory: str, keep: int) -> None:
    """Keep the KEEP most recently written entries of DIRECTORY. Entries keyed by file identity
    or fds go stale as files and fds change, and nothing else would ever remove them. Called
    after a cache miss only, so listing the directory is off the hot path. Best effort."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    if len(names) <= keep:
        return
    aged = []
    for name in names:
        try:  # noqa: SIM105 (contextlib costs the boot path ~2 ms)
            aged.append((os.stat(os.path.join(directory, name)).st_mtime_ns, name))
        except OSError:
            pass  # removed meanwhile
    aged.sort()
    for _, name in aged[: len(aged) - keep]:
        _unlink_quietly(os.path.join(directory, name))


def _unlink_quietly(path: str) -> None:
    try:  # noqa: SIM105 (contextlib costs the boot path ~2 ms)
        os.unlink(path)
    except OSError:
        pass
