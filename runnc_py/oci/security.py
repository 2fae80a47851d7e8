"""Process security for the container's init: user, groups, rlimits, no capabilities, NNP.

`plan_process_security` validates the OCI `process` object into a `ProcessSecurity` (pure);
`apply_process_security` applies it in the init process right before the guest boots.

Capabilities: `process.capabilities` is ignored on purpose. Whatever the engine asks for (Docker
sends its default 14), a unikernel needs none once the runtime has opened its devices: the guest
reaches the host only through those fds, under a seccomp filter that allows a handful of
syscalls on them. So every set is emptied (bounding, ambient, inheritable, permitted,
effective) and nothing is kept across the uid change.

`no_new_privileges` is always True, whatever `process.noNewPrivileges` says: the launcher
installs its seccomp filter without CAP_SYS_ADMIN, which the kernel only allows under
NO_NEW_PRIVS, and a unikernel never execs a setuid binary that could want it off.
"""

from __future__ import annotations

import errno
import os
import resource

from runnc_py.errors import RunncError
from runnc_py.record import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# OCI rlimit names -> Linux resource numbers. Python's `resource` lacks a few (RLIMIT_LOCKS);
# the fallbacks are the asm-generic numbers that x86_64 and aarch64 use.
_GENERIC_RLIMITS = (
    "RLIMIT_CPU",
    "RLIMIT_FSIZE",
    "RLIMIT_DATA",
    "RLIMIT_STACK",
    "RLIMIT_CORE",
    "RLIMIT_RSS",
    "RLIMIT_NPROC",
    "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",
    "RLIMIT_AS",
    "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
)
RLIMITS: dict[str, int] = {
    name: getattr(resource, name, number) for number, name in enumerate(_GENERIC_RLIMITS)
}
RLIMIT_NAMES: dict[int, str] = {v: k for k, v in RLIMITS.items()}

U64_MAX = 2**64 - 1  # OCI (and the kernel ABI) spell "unlimited" as the all-ones u64
ID_MAX = 2**32 - 2  # (uid_t)-1 means "unchanged" to setresuid, so it is not a valid id

CAP_SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")  # as /proc/PID/status names them
CAP_SETPCAP = 8  # needed to drop from the bounding set

# prctl(2) options python-prctl does not wrap.
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4


class ProcessSecurity(FrozenRecord):
    """What the init process becomes before the guest runs."""

    __slots__ = (
        *("uid", "gid", "additional_gids", "rlimits", "no_new_privileges", "umask"),
        "oom_score_adj",
    )
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    # (resource, soft, hard); unlimited is resource.RLIM_INFINITY, ready for setrlimit.
    rlimits: tuple[tuple[int, int, int], ...]
    no_new_privileges: bool
    umask: int | None
    oom_score_adj: int | None

    def __init__(
        self,
        uid: int = 0,
        gid: int = 0,
        additional_gids: tuple[int, ...] = (),
        rlimits: tuple[tuple[int, int, int], ...] = (),
        no_new_privileges: bool = True,
        umask: int | None = None,
        oom_score_adj: int | None = None,
    ) -> None:
        self._set(
            uid=uid,
            gid=gid,
            additional_gids=additional_gids,
            rlimits=rlimits,
            no_new_privileges=no_new_privileges,
            umask=umask,
            oom_score_adj=oom_score_adj,
        )


def plan_process_security(process: Mapping[str, Any]) -> ProcessSecurity:
    """Validate the OCI `process` object; errors name the JSON path of the bad value."""
    # JSON objects are dicts: no collections.abc, whose import costs create ~1.4 ms.
    if not isinstance(process, dict):
        raise RunncError("must be an object", where="process")
    user = process.get("user") or {}
    if not isinstance(user, dict):
        raise RunncError("must be an object", where="process.user")
    uid = _id(user.get("uid", 0), "process.user.uid")
    gid = _id(user.get("gid", 0), "process.user.gid")
    gids_raw = user.get("additionalGids") or []
    if not isinstance(gids_raw, list):
        raise RunncError("must be an array", where="process.user.additionalGids")
    gids = tuple(
        dict.fromkeys(_id(g, f"process.user.additionalGids[{i}]") for i, g in enumerate(gids_raw))
    )
    umask = user.get("umask")
    if umask is not None:
        umask = _bounded(umask, 0, 0o777, "process.user.umask")
    oom = process.get("oomScoreAdj")
    if oom is not None:
        oom = _bounded(oom, -1000, 1000, "process.oomScoreAdj")
    nnp = process.get("noNewPrivileges")
    if nnp is not None and not isinstance(nnp, bool):
        raise RunncError(f"must be true or false, got {nnp!r}", where="process.noNewPrivileges")
    return ProcessSecurity(
        uid=uid,
        gid=gid,
        additional_gids=gids,
        rlimits=_rlimits(process.get("rlimits")),
        no_new_privileges=True,  # see the module docstring
        umask=umask,
        oom_score_adj=oom,
    )


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RunncError(f"must be an integer, got {value!r}", where=where)
    return value


def _bounded(value: Any, lo: int, hi: int, where: str) -> int:
    number = _int(value, where)
    if not lo <= number <= hi:
        raise RunncError(f"must be between {lo} and {hi}, got {number}", where=where)
    return number


def _id(value: Any, where: str) -> int:
    return _bounded(value, 0, ID_MAX, where)


def _rlimits(raw: Any) -> tuple[tuple[int, int, int], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise RunncError("must be an array", where="process.rlimits")
    seen: set[str] = set()
    out: list[tuple[int, int, int]] = []
    for i, entry in enumerate(raw):
        at = f"process.rlimits[{i}]"
        if not isinstance(entry, dict):
            raise RunncError("must be an object", where=at)
        name = entry.get("type")
        if name not in RLIMITS:
            raise RunncError(f"unknown rlimit type {name!r}", where=f"{at}.type")
        if name in seen:
            raise RunncError(f"{name} is set twice", where=f"{at}.type")
        seen.add(name)
        soft = _bounded(entry.get("soft"), 0, U64_MAX, f"{at}.soft")
        hard = _bounded(entry.get("hard"), 0, U64_MAX, f"{at}.hard")
        if soft > hard:
            raise RunncError(f"soft limit {soft} is above the hard limit {hard}", where=at)
        out.append((RLIMITS[name], _kernel_limit(soft), _kernel_limit(hard)))
    return tuple(out)


def _kernel_limit(value: int) -> int:
    return resource.RLIM_INFINITY if value == U64_MAX else value


# What apply_process_security imports (python-prctl: only the init process pays for it).
MODULES = ("ctypes", "prctl")


def apply_process_security(sec: ProcessSecurity) -> None:
    """Become `sec` for good: limits, groups, ids, then no capabilities and NO_NEW_PRIVS.

    Order matters: raising rlimits, oom_score_adj, setgroups/setresgid/setresuid and dropping
    the bounding set all need capabilities we are about to lose, so they come first; the
    capability sets are emptied last, and the result is checked against /proc/self/status.
    """
    # Import everything now: after the uid change the interpreter's own files may be
    # unreadable (e.g. a Python installed under /root), so no import may happen later.
    import ctypes

    import prctl

    libc = ctypes.CDLL(None, use_errno=True)

    if sec.umask is not None:
        os.umask(sec.umask)
    if sec.oom_score_adj is not None:
        _step("set oom_score_adj", "process.oomScoreAdj", _write_oom, sec.oom_score_adj)
    for res, soft, hard in sec.rlimits:
        name = RLIMIT_NAMES.get(res, str(res))
        _step(
            f"set {name} to {_show_limit(soft)}:{_show_limit(hard)}",
            "process.rlimits",
            resource.setrlimit,
            res,
            (soft, hard),
        )
    _step("drop the capability bounding set", "process", _drop_bounding_set, prctl, libc)
    # Keep-caps off: the kernel then clears permitted/effective/ambient on the uid change.
    _step("clear PR_SET_KEEPCAPS", "process", prctl.set_keepcaps, False)
    _step(
        f"set groups {list(sec.additional_gids)}",
        "process.user.additionalGids",
        os.setgroups,
        list(sec.additional_gids),
    )
    _step(f"set gid {sec.gid}", "process.user.gid", os.setresgid, sec.gid, sec.gid, sec.gid)
    _step(f"set uid {sec.uid}", "process.user.uid", os.setresuid, sec.uid, sec.uid, sec.uid)
    _clear_capability_sets(prctl, libc, sec.no_new_privileges)
    # The guest must not keep a handle on the engine's working directory (a bundle, a
    # state dir): its cwd is pinned for as long as the guest lives.
    _step("change directory to /", "process", os.chdir, "/")
    problems = status_problems(_read_proc("/proc/self/status"), sec)
    if problems:
        raise RunncError(
            "still " + ", ".join(problems) + " after dropping privileges", where="process"
        )


def drop_capabilities() -> None:
    """`runnc-py exec`: the caller's uid and groups stay, every capability goes, NO_NEW_PRIVS
    is set and the working directory is `/`: the guest holds what a container's does
    (apply_process_security) but for the ids, which `exec` does not change.

    The bounding set is emptied when we may (CAP_SETPCAP); a caller without it has no
    capabilities to lose, and NO_NEW_PRIVS keeps it from gaining any.
    """
    import prctl

    # No ctypes here unless needed (~2 ms of every `exec`): libc's prctl is only for what
    # python-prctl cannot do, see _drop_bounding_set and _clear_capability_sets.
    before = parse_status(_read_proc("/proc/self/status"))
    drop_bounding = int(before.get("CapEff", "0"), 16) >> CAP_SETPCAP & 1 == 1
    if drop_bounding:
        _step("drop the capability bounding set", "exec", _drop_bounding_set, prctl, None)
    _clear_capability_sets(prctl, None, True, where="exec")
    _step("change directory to /", "exec", os.chdir, "/")
    after = parse_status(_read_proc("/proc/self/status"))
    keys = CAP_SETS if drop_bounding else tuple(k for k in CAP_SETS if k != "CapBnd")
    problems = _capability_problems(after, keys)
    if problems:
        raise RunncError("still " + ", ".join(problems) + " after dropping them", where="exec")


def _clear_capability_sets(
    prctl: Any, libc: Any | None, no_new_privileges: bool, where: str = "process"
) -> None:
    """Empty the permitted, effective, inheritable and ambient sets; set NO_NEW_PRIVS.

    LIBC None: load it only if the ambient set is still not empty. The kernel clears an
    ambient capability as soon as it leaves permitted or inheritable, so after the capset
    below it normally is; the explicit clear stays for kernels that behave otherwise.
    """
    # uid 0 keeps its capabilities across setresuid: empty every set explicitly. One capset
    # call, because effective must stay a subset of permitted at every step.
    _step(
        "clear the capability sets",
        where,
        prctl.set_caps,
        (prctl.ALL_CAPS, (prctl.CAP_EFFECTIVE, prctl.CAP_PERMITTED, prctl.CAP_INHERITABLE), False),
    )
    if libc is None and _ambient_left():
        libc = _libc()
    if libc is not None:
        _step("clear the ambient capabilities", where, _clear_ambient, libc)
    if no_new_privileges:
        _step("set NO_NEW_PRIVS", where, prctl.set_no_new_privs, True)


def _step(what: str, where: str, fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RunncError(f"cannot {what}: {reason}", where=where) from exc


def _read_proc(path: str) -> str:
    # Bytes + the built-in UTF-8 decoder: a text-mode open may import a codec module, and
    # after the uid change the interpreter's files can be out of reach.
    with open(path, "rb") as f:
        return f.read().decode()


def _write_oom(value: int) -> None:
    with open("/proc/self/oom_score_adj", "wb") as f:
        f.write(str(value).encode())


def _last_cap() -> int:
    return int(_read_proc("/proc/sys/kernel/cap_last_cap"))


def _show_limit(value: int) -> str:
    return "unlimited" if value == resource.RLIM_INFINITY else str(value)


def _drop_bounding_set(prctl: Any, libc: Any | None) -> None:
    """LIBC None: load it only for a capability newer than python-prctl."""
    known = max(prctl.ALL_CAPS)
    for cap in range(_last_cap() + 1):
        if cap <= known:
            prctl.capbset_drop(cap)
        else:  # a capability newer than python-prctl: ask the kernel directly
            libc = libc if libc is not None else _libc()
            _libc_prctl(libc, _PR_CAPBSET_DROP, cap)


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _ambient_left() -> bool:
    return int(parse_status(_read_proc("/proc/self/status")).get("CapAmb", "0"), 16) != 0


def _clear_ambient(libc: Any) -> None:
    try:
        _libc_prctl(libc, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: kernel < 4.3 has no ambient set, nothing to clear
            raise


def _libc_prctl(libc: Any, option: int, arg2: int) -> None:
    import ctypes  # already loaded by apply_process_security: no file access here

    zero = ctypes.c_ulong(0)
    if libc.prctl(option, ctypes.c_ulong(arg2), zero, zero, zero) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def parse_status(text: str) -> dict[str, str]:
    """The `Key:\tvalue` lines of /proc/<pid>/status."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key] = value.strip()
    return out


def _capability_problems(status: Mapping[str, str], keys: tuple[str, ...]) -> list[str]:
    return [f"{key}={status[key]}" for key in keys if int(status.get(key, "0"), 16) != 0]


def status_problems(text: str, sec: ProcessSecurity) -> list[str]:
    """What in /proc/self/status disagrees with `sec` (empty when all is as planned)."""
    status = parse_status(text)
    problems = _capability_problems(status, CAP_SETS)
    if sec.no_new_privileges and status.get("NoNewPrivs", "1") != "1":
        problems.append("NoNewPrivs=0")
    uids = set(status.get("Uid", "").split())
    if uids != {str(sec.uid)}:
        problems.append(f"Uid={status.get('Uid')}")
    gids = set(status.get("Gid", "").split())
    if gids != {str(sec.gid)}:
        problems.append(f"Gid={status.get('Gid')}")
    groups = {int(g) for g in status.get("Groups", "").split()}
    if groups != set(sec.additional_gids):
        problems.append(f"Groups={status.get('Groups')}")
    return problems
