"""Compiled seccomp programs on disk, and the boot path's way to get one.

Two caches, two jobs. `filter_program` keys a boot's program on the policy file's version
(device, inode, size, mtime, ctime) and the boot's facts: a repeated boot reads one small file
and imports neither the TOML parser nor the policy validator (~15 ms). On a miss it validates
the policy and resolves its rules, then `bpf.compile_bpf` looks the program up by the rules'
meaning, so editing only a rule's `why` still skips libseccomp.

A cached program is a security boundary, so both caches use only trusted files
(runnc_py.cachedir: ours, written whole and renamed into place). The boot-keyed entries are read
with what the boot path already has (docs/boot-path.md): `marshal` data holding the whole key
and the program, named by the policy's inode and a crc32 of the facts; an entry whose key
differs is a miss. The rule-keyed entries (the miss path) end in the program's sha256.
"""

from __future__ import annotations

import marshal
import os
import zlib

from runnc_py import cachedir
from runnc_py.sandbox.locate import find_policy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runnc_py.sandbox.facts import BootFacts

BOOT_FORMAT = 2  # bump when resolve() or the compiler change what a policy yields
BPF_MAXINSNS = 4096  # the kernel refuses longer classic-BPF programs
INSN_SIZE = 8  # sizeof(struct sock_filter)
_DIGEST = 32
_MAX_BOOT_ENTRY = BPF_MAXINSNS * INSN_SIZE + 64 * 1024  # the program and its key
KEEP_PROGRAMS = 512  # compiled programs remembered (boot- and rule-keyed); the oldest go first


def filter_program(policy: str, facts: BootFacts) -> bytes:
    """The compiled program of POLICY (a name or a path) for one boot's FACTS."""
    path = os.path.realpath(find_policy(policy))
    st = os.stat(path)
    described = repr(facts)
    key = (BOOT_FORMAT, path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    key += (described,)
    name = f"boot-{st.st_dev:x}-{st.st_ino:x}-{zlib.crc32(described.encode()):08x}.prog"
    entry = os.path.join(cachedir.cache_dir("bpf"), name)
    program = _read_boot_entry(entry, key)
    if program is None:
        from runnc_py.sandbox.bpf import compile_bpf
        from runnc_py.sandbox.policy import load_policy, resolve

        loaded = load_policy(path)
        program = compile_bpf(resolve(loaded, facts), loaded.default_action)
        cachedir.write_atomic(entry, marshal.dumps((key, program)))
        cachedir.prune(os.path.dirname(entry), KEEP_PROGRAMS)
    return program


def _read_boot_entry(path: str, key: tuple[object, ...]) -> bytes | None:
    data = cachedir.read_trusted(path, _MAX_BOOT_ENTRY)
    if data is None:
        return None
    try:
        stored, program = marshal.loads(data)
    except (ValueError, EOFError, TypeError):
        return None
    if stored != key or type(program) is not bytes or not _plausible(program):
        return None  # another boot's facts under the same crc, or a damaged entry
    return program


def _plausible(program: bytes) -> bool:
    return 0 < len(program) <= BPF_MAXINSNS * INSN_SIZE and not len(program) % INSN_SIZE


def read_program(path: str | os.PathLike[str]) -> bytes | None:
    """A rule-keyed program (bpf.py): used only if its trailing sha256 matches."""
    import hashlib

    data = cachedir.read_trusted(path, BPF_MAXINSNS * INSN_SIZE + _DIGEST)
    if data is None:
        return None
    program, digest = data[:-_DIGEST], data[-_DIGEST:]
    if not _plausible(program) or hashlib.sha256(program).digest() != digest:
        return None  # torn or tampered: compile again and replace it
    return program


def store_program(path: str | os.PathLike[str], program: bytes) -> None:
    import hashlib

    cachedir.write_atomic(path, program + hashlib.sha256(program).digest())
