"""Syscall names and numbers per architecture, through libseccomp's resolver (pyseccomp).

pyseccomp is imported on first use (its import forks `ldconfig -p`, ~10 ms): only commands
that print names pay for it.
"""

from __future__ import annotations

import functools

from runnc_py.audit import program as bpf
from runnc_py.errors import RunncError

NATIVE = bpf.AUDIT_ARCH_X86_64
X32_TOKEN = 0x4000003E  # libseccomp's SCMP_ARCH_X32
X32_LAST = bpf.X32_SYSCALL_BIT + 0xFFFF  # beyond: not an x32 number, just a large one
SCAN_LIMIT = 1024  # syscall numbers below this are scanned for names (x86_64 ends near 460)


@functools.cache
def pyseccomp_module():  # type: ignore[no-untyped-def]
    try:
        import pyseccomp
    except (ImportError, OSError) as exc:  # pragma: no cover - a broken install
        raise RunncError(f"cannot load libseccomp through pyseccomp: {exc}") from exc
    return pyseccomp


@functools.cache
def name_of(arch: int, nr: int) -> str | None:
    """The syscall NR on ARCH (an audit token), or None. x32 numbers carry bit 30."""
    token = X32_TOKEN if arch == NATIVE and nr & bpf.X32_SYSCALL_BIT else arch
    if nr < 0 or nr > 0x7FFFFFFF:
        return None
    try:
        return pyseccomp_module().resolve_syscall(token, nr).decode()
    except (ValueError, OSError):
        return None


def label(arch: int, nr: int) -> str:
    """`write`, `x32:write`, or `#999` when libseccomp knows no name."""
    name = name_of(arch, nr)
    x32 = arch == NATIVE and nr & bpf.X32_SYSCALL_BIT and nr <= X32_LAST
    if name is None:
        return f"x32:#{nr & ~bpf.X32_SYSCALL_BIT}" if x32 else f"#{nr}"
    return f"x32:{name}" if x32 else name


@functools.cache
def number_of(name: str, arch: int = NATIVE) -> int | None:
    """NAME's number on ARCH; None for unknown names (and other arches' pseudo-numbers)."""
    number: int = pyseccomp_module().resolve_syscall(arch, name)
    return number if number >= 0 else None


@functools.cache
def known_numbers(arch: int = NATIVE) -> tuple[int, ...]:
    """Every syscall number of ARCH libseccomp names (the "all syscalls" of a report)."""
    return tuple(nr for nr in range(SCAN_LIMIT) if name_of(arch, nr) is not None)


def arch_label(token: int) -> str:
    return bpf.ARCHES.get(token, f"arch {token:#x}")
