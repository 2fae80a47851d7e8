"""The two cheap questions we ask libseccomp directly: its version and a syscall's number.

pyseccomp answers them too, but importing it runs `ctypes.util.find_library`, which forks
`ldconfig -p` (about 10 ms). dlopen of the soname is what pyseccomp ends up doing anyway, so
asking the same library through a bare ctypes handle gives the same answers for ~0.1 ms and
keeps pyseccomp off the boot path when the compiled filter is already cached.
"""

from __future__ import annotations

import ctypes
import functools

from runnc_py.errors import RunncError

SONAME = "libseccomp.so.2"


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


@functools.cache
def _lib() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(SONAME)
    except OSError as exc:
        raise RunncError(f"cannot load {SONAME}: {exc} (install libseccomp2)") from exc
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    lib.seccomp_version.argtypes = ()
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    return lib


@functools.cache
def version() -> str:
    """libseccomp's runtime version, e.g. `2.5.4` (part of the compiled-filter cache key)."""
    v = _lib().seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


@functools.cache
def syscall_number(name: str) -> int | None:
    """The native syscall number of NAME, or None when it does not exist on this architecture.

    libseccomp returns -1 for unknown names and other negative "pseudo-syscall" numbers for
    names that only exist on other architectures (e.g. `socketcall` on x86_64): a rule on
    those would silently match nothing, so both count as unknown here.
    """
    number: int = _lib().seccomp_syscall_resolve_name(name.encode())
    return number if number >= 0 else None
