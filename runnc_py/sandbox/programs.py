"""Compiled seccomp programs on disk, and the boot path's way to get one.

Two caches, two jobs. `filter_program` keys a boot's program on the policy file's version
(path, inode, size, mtime, ctime) and the boot's facts: a repeated boot reads one small file
and imports neither the TOML parser nor the policy validator (~15 ms). On a miss it validates
the policy and resolves its rules, then `bpf.compile_bpf` looks the program up by the rules'
meaning, so editing only a rule's `why` still skips libseccomp.

Stored programs end in their sha256 and are used only from trusted files (runnc_py.cachedir):
a cached program is a security boundary.
"""

from __future__ import annotations

import hashlib
import os

from runnc_py import cachedir
from runnc_py.sandbox.facts import BootFacts
from runnc_py.sandbox.locate import find_policy

BOOT_FORMAT = 1  # bump when resolve() or the compiler change what a policy yields
BPF_MAXINSNS = 4096  # the kernel refuses longer classic-BPF programs
INSN_SIZE = 8  # sizeof(struct sock_filter)
_DIGEST = 32
KEEP_PROGRAMS = 512  # compiled programs remembered (boot- and rule-keyed); the oldest go first


def filter_program(policy: str, facts: BootFacts) -> bytes:
    """The compiled program of POLICY (a name or a path) for one boot's FACTS."""
    path = os.path.realpath(find_policy(policy))
    st = os.stat(path)
    identity = (
        BOOT_FORMAT,
        path,
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        facts,
    )
    key = hashlib.sha256(repr(identity).encode()).hexdigest()
    entry = os.path.join(cachedir.cache_dir("bpf"), f"boot-{key}.bpf")
    program = read_program(entry)
    if program is None:
        from runnc_py.sandbox.bpf import compile_bpf
        from runnc_py.sandbox.policy import load_policy, resolve

        loaded = load_policy(path)
        program = compile_bpf(resolve(loaded, facts), loaded.default_action)
        store_program(entry, program)
        cachedir.prune(os.path.dirname(entry), KEEP_PROGRAMS)
    return program


def read_program(path: str | os.PathLike[str]) -> bytes | None:
    data = cachedir.read_trusted(path, BPF_MAXINSNS * INSN_SIZE + _DIGEST)
    if data is None:
        return None
    program, digest = data[:-_DIGEST], data[-_DIGEST:]
    if not program or len(program) % INSN_SIZE or hashlib.sha256(program).digest() != digest:
        return None  # torn or tampered: compile again and replace it
    return program


def store_program(path: str | os.PathLike[str], program: bytes) -> None:
    cachedir.write_atomic(path, program + hashlib.sha256(program).digest())
