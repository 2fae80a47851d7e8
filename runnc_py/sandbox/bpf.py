"""Resolved rules -> the raw `struct sock_filter[]` the kernel loads, with a compiled-filter cache.

libseccomp (through pyseccomp) does the compiling: it emits the architecture check first,
sends foreign-ABI and x32 syscalls to the bad-arch action and orders the comparisons. Importing
pyseccomp costs ~10 ms (it forks `ldconfig -p` to find the library), more than the compile
itself, and a boot with the same fds and devices always yields the same program. So programs
are cached by content: key = sha256 of the rules' semantics (not their `why`), the default
action, libseccomp's version and the architecture; a hit reads one small file and never
imports pyseccomp.

Cache location: `bpf/` under runnc_py.cachedir's root. A cached program is a security
boundary: besides cachedir's ownership checks, its trailing sha256 must match; anything else
means "compile again".
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from runnc_py import cachedir
from runnc_py.errors import RunncError
from runnc_py.sandbox import libseccomp
from runnc_py.sandbox.policy import ACTION_ALLOW, ACTIONS, ResolvedRule, action_value
from runnc_py.sandbox.programs import BPF_MAXINSNS, INSN_SIZE, read_program, store_program

CACHE_FORMAT = 1  # bump whenever _compile changes what it emits for the same rules

_compiles = 0  # how many programs pyseccomp built in this process (tests check cache hits)


def compile_count() -> int:
    return _compiles


def cache_dir() -> Path:
    return Path(cachedir.cache_dir("bpf"))


def cache_key(rules: Sequence[ResolvedRule], default_action: str) -> str:
    """sha256 over everything that changes the program, and nothing that does not (`why`)."""
    semantic = tuple(
        (r.syscall, tuple((c.index, c.op, c.value, c.mask) for c in r.conds)) for r in rules
    )
    text = repr((CACHE_FORMAT, os.uname().machine, libseccomp.version(), default_action, semantic))
    return hashlib.sha256(text.encode()).hexdigest()


def compile_bpf(
    rules: Sequence[ResolvedRule],
    default_action: str,
    *,
    cache: bool = True,
    directory: str | os.PathLike[str] | None = None,
) -> bytes:
    """The seccomp program allowing RULES, DEFAULT_ACTION for the rest (multiple of 8 bytes)."""
    action = action_value(default_action)
    if not cache:
        return _compile(rules, action)
    folder = Path(directory) if directory is not None else cache_dir()
    path = folder / f"{cache_key(rules, default_action)}.bpf"
    cached = read_program(path)
    if cached is not None:
        return cached
    program = _compile(rules, action)
    store_program(path, program)
    return program


def _compile(rules: Sequence[ResolvedRule], action: int) -> bytes:
    global _compiles
    import pyseccomp  # costly import, only on a cache miss

    ops = {
        "eq": pyseccomp.EQ,
        "ne": pyseccomp.NE,
        "lt": pyseccomp.LT,
        "le": pyseccomp.LE,
        "gt": pyseccomp.GT,
        "ge": pyseccomp.GE,
    }
    try:
        filt = pyseccomp.SyscallFilter(action)
        # A syscall from another ABI (i386 int 0x80 is checked by arch, x32 by number) is never
        # a guest's legitimate request, whatever the default: kill the process outright. (The
        # libseccomp default for it would be kill_thread.)
        filt.set_attr(pyseccomp.Attr.ACT_BADARCH, ACTIONS["kill_process"])
    except OSError as exc:
        raise RunncError(f"libseccomp refused default action {action:#x}: {exc.strerror}") from exc
    for rule in rules:
        args = [
            pyseccomp.Arg(c.index, pyseccomp.MASKED_EQ, c.mask, c.value)
            if c.op == "masked_eq"
            else pyseccomp.Arg(c.index, ops[c.op], c.value)
            for c in rule.conds
        ]
        try:
            filt.add_rule(ACTION_ALLOW, rule.syscall, *args)
        except OSError as exc:
            who = f" (device {rule.device})" if rule.device else ""
            raise RunncError(
                f"libseccomp refused the rule for {rule.syscall}{who}: {exc.strerror}"
            ) from exc
    fd = os.memfd_create("runnc-py-bpf", os.MFD_CLOEXEC)
    try:
        with open(fd, "rb", closefd=False) as handle:
            filt.export_bpf(handle)
        program = os.pread(fd, os.fstat(fd).st_size, 0)
    except OSError as exc:
        raise RunncError(f"cannot export the seccomp program: {exc.strerror}") from exc
    finally:
        os.close(fd)
    _compiles += 1
    count = len(program) // INSN_SIZE
    if not program or len(program) % INSN_SIZE:
        raise RunncError(f"libseccomp exported a malformed program of {len(program)} bytes")
    if count > BPF_MAXINSNS:
        raise RunncError(
            f"seccomp program has {count} instructions, the kernel takes {BPF_MAXINSNS}"
        )
    return program
