"""Validated unikernel facts, cached by file identity, so repeated boots skip pyelftools.

Reading a unikernel costs ~20 ms, nearly all of it importing pyelftools, while the facts a
boot needs (target, ABI, entry, segments, manifest) fit in a few hundred bytes of JSON. The key
is the file's identity and version: path, device, inode, size, mtime and ctime. ctime cannot be
set from user space, so any rewrite of the file, even one that restores its mtime, is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os

from runnc_py import cachedir
from runnc_py.unikernel.elf import Segment, Target, UnikernelImage, load_unikernel
from runnc_py.unikernel.manifest import Manifest, ManifestEntry

FORMAT = 1  # bump when UnikernelImage or the checks behind it change
MAX_ENTRY = 64 * 1024
KEEP_ENTRIES = 512  # validated images remembered; the oldest go first


def load_unikernel_cached(path: str | os.PathLike[str]) -> UnikernelImage:
    """load_unikernel(PATH), from the cache when this exact file was validated before."""
    where = os.fspath(path)
    try:
        st = os.stat(where)
    except OSError:
        return load_unikernel(where)  # it words the error
    identity = (
        FORMAT,
        os.path.abspath(where),
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
    )
    key = hashlib.sha256(repr(identity).encode()).hexdigest()
    entry = os.path.join(cachedir.cache_dir("images"), f"{key}.json")
    data = cachedir.read_trusted(entry, MAX_ENTRY)
    if data is not None:
        try:
            return decode(data, where)
        except (ValueError, KeyError, TypeError, IndexError):
            pass  # an old or damaged entry: validate again and replace it
    image = load_unikernel(where)
    cachedir.write_atomic(entry, encode(image))
    cachedir.prune(os.path.dirname(entry), KEEP_ENTRIES)
    return image


def encode(image: UnikernelImage) -> bytes:
    return json.dumps(
        {
            "target": int(image.target),
            "abi_version": image.abi_version,
            "entry": image.entry,
            "kernel_end": image.kernel_end,
            "machine": image.machine,
            "segments": [[s.vaddr, s.offset, s.filesz, s.memsz, s.flags] for s in image.segments],
            "manifest": {
                "version": image.manifest.version,
                "entries": [[e.index, e.name, e.type] for e in image.manifest.entries],
                "raw": image.manifest.raw.hex(),
            },
        }
    ).encode()


def decode(data: bytes, path: str) -> UnikernelImage:
    facts = json.loads(data)
    manifest = facts["manifest"]
    return UnikernelImage(
        path=path,
        target=Target(facts["target"]),
        abi_version=int(facts["abi_version"]),
        entry=int(facts["entry"]),
        kernel_end=int(facts["kernel_end"]),
        segments=tuple(Segment(*map(int, s)) for s in facts["segments"]),
        manifest=Manifest(
            version=int(manifest["version"]),
            entries=tuple(ManifestEntry(int(i), str(n), int(t)) for i, n, t in manifest["entries"]),
            raw=bytes.fromhex(manifest["raw"]),
        ),
        machine=str(facts["machine"]),
    )
