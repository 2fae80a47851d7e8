"""Validated unikernel facts, cached by file identity, so repeated boots skip pyelftools.

Reading a unikernel costs ~20 ms, nearly all of it importing pyelftools, while the facts a
boot needs (target, ABI, entry, segments, manifest) fit in a few hundred bytes. The identity of
a file version is device, inode, size, mtime and ctime; ctime cannot be set from user space, so
any rewrite of the file, even one that restores its mtime, is a miss.

Read with what the boot path already has (no hashlib, no json: docs/boot-path.md): the entry is
named by device and inode, holds the whole identity and is used only when that identity
matches, so no digest of the key is needed and no two files can share an entry. Entries are
`marshal` data, the format of the interpreter's own .pyc caches, read only from trusted files
(runnc_py.cachedir: ours, not writable by anyone else), as .pyc files are.
"""

from __future__ import annotations

import marshal
import os

from runnc_py import cachedir
from runnc_py.unikernel.elf import Segment, Target, UnikernelImage, load_unikernel
from runnc_py.unikernel.manifest import Manifest, ManifestEntry

FORMAT = 2  # bump when UnikernelImage or the checks behind it change
MAX_ENTRY = 64 * 1024
KEEP_ENTRIES = 512  # validated images remembered; the oldest go first


def load_unikernel_cached(path: str | os.PathLike[str]) -> UnikernelImage:
    """load_unikernel(PATH), from the cache when this exact file was validated before."""
    where = os.fspath(path)
    try:
        st = os.stat(where)
    except OSError:
        return load_unikernel(where)  # it words the error
    identity = (FORMAT, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    entry = os.path.join(cachedir.cache_dir("images"), f"{st.st_dev:x}-{st.st_ino:x}.facts")
    data = cachedir.read_trusted(entry, MAX_ENTRY)
    if data is not None:
        try:
            stored, facts = marshal.loads(data)
            if stored == identity:
                return decode(facts, where)
        except (ValueError, EOFError, TypeError, IndexError):
            pass  # an old or damaged entry: validate again and replace it
    image = load_unikernel(where)
    cachedir.write_atomic(entry, marshal.dumps((identity, encode(image))))
    cachedir.prune(os.path.dirname(entry), KEEP_ENTRIES)
    return image


def encode(image: UnikernelImage) -> tuple[object, ...]:
    """IMAGE's facts as plain ints, strings and bytes (everything but its path)."""
    manifest = image.manifest
    return (
        int(image.target),
        image.abi_version,
        image.entry,
        image.kernel_end,
        image.machine,
        tuple((s.vaddr, s.offset, s.filesz, s.memsz, s.flags) for s in image.segments),
        manifest.version,
        tuple((e.index, e.name, e.type) for e in manifest.entries),
        manifest.raw,
    )


def decode(facts: tuple[object, ...], path: str) -> UnikernelImage:
    """The image `encode` described, named PATH; TypeError/ValueError on a malformed entry."""
    target, abi_version, entry, kernel_end, machine, segments, version, entries, raw = facts
    return UnikernelImage(
        path=path,
        target=Target(target),
        abi_version=_int(abi_version),
        entry=_int(entry),
        kernel_end=_int(kernel_end),
        segments=tuple(Segment(*map(_int, s)) for s in segments),  # type: ignore[attr-defined]
        manifest=Manifest(
            version=_int(version),
            entries=tuple(
                ManifestEntry(_int(i), _str(n), _int(t))
                for i, n, t in entries  # type: ignore[attr-defined]
            ),
            raw=_bytes(raw),
        ),
        machine=_str(machine),
    )


def _int(value: object) -> int:
    if type(value) is not int:
        raise TypeError("expected an int")
    return value


def _str(value: object) -> str:
    if type(value) is not str:
        raise TypeError("expected a str")
    return value


def _bytes(value: object) -> bytes:
    if type(value) is not bytes:
        raise TypeError("expected bytes")
    return value
