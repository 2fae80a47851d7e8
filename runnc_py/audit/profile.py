"""An OCI seccomp profile (a config.json's `linux.seccomp`, or a bare profile such as Docker's
default.json) compiled to BPF with libseccomp, the way runc does it.

runc's rules, kept: rules whose action equals the default are skipped (libseccomp refuses
them); conditions on the same argument twice become separate rules (OR), otherwise one rule
with all of them (AND); names libseccomp does not know are skipped (profiles list syscalls of
newer kernels). Not kept: runc's ENOSYS stub for syscalls newer than the profile. Docker's
on-disk format (`archMap`, per-rule `includes`/`excludes`) is applied for this machine's
architecture and Docker's default capability set.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from runnc_py.errors import RunncError

EPERM = 1
DOCKER_DEFAULT_CAPS = frozenset({
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
})
DOCKER_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
OPS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
       "SCMP_CMP_MASKED_EQ")


@dataclass
class CompiledProfile:
    program: bytes
    default_action: str
    rules: int
    skipped_names: list[str] = field(default_factory=list)


def load_profile(path: str) -> dict[str, Any]:
    """The seccomp object of PATH: a config.json (its linux.seccomp) or a bare profile."""
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read(16 << 20))
    except OSError as exc:
        raise RunncError(f"cannot read profile: {exc.strerror}", where=path) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunncError(f"not JSON: {exc}", where=path) from exc
    if not isinstance(data, dict):
        raise RunncError("a seccomp profile must be a JSON object", where=path)
    if "ociVersion" in data or "linux" in data:
        seccomp = (data.get("linux") or {}).get("seccomp")
        if not isinstance(seccomp, dict):
            raise RunncError("config.json has no linux.seccomp (an unconfined container)",
                             where=path)
        return seccomp
    if "defaultAction" not in data:
        raise RunncError("not an OCI seccomp profile: no defaultAction", where=path)
    return data


def compile_profile(profile: dict[str, Any], where: str) -> CompiledProfile:
    from runnc_py.audit.names import pyseccomp_module

    sc = pyseccomp_module()
    default_errno = _int(profile.get("defaultErrnoRet", EPERM), f"{where}: defaultErrnoRet")
    default = _action(sc, profile.get("defaultAction"), default_errno, f"{where}: defaultAction")
    try:
        filt = sc.SyscallFilter(default)
        for arch in _arches(profile, where):
            token = getattr(sc.Arch, arch, None)
            if token is None:
                raise RunncError(f"unknown architecture {arch!r}", where=f"{where}: architectures")
            if not filt.exist_arch(token):
                filt.add_arch(token)
    except OSError as exc:
        raise RunncError(f"libseccomp refused the profile: {exc.strerror}", where=where) from exc
    out = CompiledProfile(program=b"", default_action=str(profile.get("defaultAction")), rules=0)
    syscalls = profile.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise RunncError("syscalls must be a list", where=f"{where}: syscalls")
    for i, rule in enumerate(syscalls):
        _add_rule(sc, filt, rule, default, default_errno, f"{where}: syscalls[{i}]", out)
    out.program = _export(filt, where)
    return out


def _arches(profile: dict[str, Any], where: str) -> list[str]:
    machine = os.uname().machine
    if "archMap" in profile:  # Docker's file format
        for entry in profile.get("archMap") or []:
            arch = str(entry.get("architecture", ""))
            if arch == f"SCMP_ARCH_{machine.upper()}":
                return [arch.removeprefix("SCMP_ARCH_"),
                        *(str(a).removeprefix("SCMP_ARCH_") for a in entry.get("subArchitectures")
                          or [])]
        return []
    arches = profile.get("architectures") or []
    if not isinstance(arches, list):
        raise RunncError("architectures must be a list", where=f"{where}: architectures")
    return [str(a).removeprefix("SCMP_ARCH_") for a in arches]


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RunncError(f"must be an integer >= 0, got {value!r}", where=where)
    return value


def _action(sc: Any, name: Any, errno: int, where: str) -> int:
    table = {
        "SCMP_ACT_KILL": sc.KILL,
        "SCMP_ACT_KILL_THREAD": sc.KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS": sc.KILL_PROCESS,
        "SCMP_ACT_TRAP": sc.TRAP,
        "SCMP_ACT_ALLOW": sc.ALLOW,
        "SCMP_ACT_LOG": sc.LOG,
        "SCMP_ACT_NOTIFY": sc.NOTIFY,
    }
    if name == "SCMP_ACT_ERRNO":
        return int(sc.ERRNO(errno))
    if name == "SCMP_ACT_TRACE":
        return int(sc.TRACE(errno))
    if name not in table:
        raise RunncError(f"unknown action {name!r}", where=where)
    return int(table[name])


def _docker_applies(rule: dict[str, Any]) -> bool:
    arch = DOCKER_ARCH.get(os.uname().machine, os.uname().machine)
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if inc.get("caps") and not DOCKER_DEFAULT_CAPS & set(inc["caps"]):
        return False
    if exc.get("arches") and arch in exc["arches"]:
        return False
    return not (exc.get("caps") and DOCKER_DEFAULT_CAPS & set(exc["caps"]))


def _add_rule(sc: Any, filt: Any, rule: Any, default: int, default_errno: int, where: str,
              out: CompiledProfile) -> None:
    if not isinstance(rule, dict):
        raise RunncError("must be an object", where=where)
    if not _docker_applies(rule):
        return
    names = rule.get("names") or ([rule["name"]] if "name" in rule else [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise RunncError("names must be a list of strings", where=where)
    errno = _int(rule.get("errnoRet", default_errno), f"{where}.errnoRet")
    action = _action(sc, rule.get("action"), errno, f"{where}.action")
    if action == default:
        return
    conds = [_arg(sc, a, f"{where}.args[{j}]") for j, a in enumerate(rule.get("args") or [])]
    indexes = [c[0] for c in conds]
    groups = [[c] for c in conds] if len(set(indexes)) != len(indexes) else [conds]
    for name in names:
        if sc.resolve_syscall(sc.Arch.NATIVE, name) == -1:
            out.skipped_names.append(name)
            continue
        for group in groups or [[]]:
            try:
                filt.add_rule(action, name, *(c[1] for c in group))
            except OSError as exc:
                raise RunncError(f"libseccomp refused the rule for {name}: {exc.strerror}",
                                 where=where) from exc
            out.rules += 1


def _arg(sc: Any, arg: Any, where: str) -> tuple[int, Any]:
    if not isinstance(arg, dict):
        raise RunncError("must be an object", where=where)
    index = arg.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= 5:
        raise RunncError(f"index must be 0..5, got {index!r}", where=where)
    op = arg.get("op")
    if op not in OPS:
        raise RunncError(f"unknown op {op!r}", where=where)
    value = _int(arg.get("value", 0), f"{where}.value")
    two = _int(arg.get("valueTwo", 0), f"{where}.valueTwo")
    cmp = getattr(sc, op.removeprefix("SCMP_CMP_"))
    return index, sc.Arg(index, cmp, value, two)


def _export(filt: Any, where: str) -> bytes:
    fd = os.memfd_create("runnc-py-audit-profile", os.MFD_CLOEXEC)
    try:
        with open(fd, "rb", closefd=False) as handle:
            filt.export_bpf(handle)
        return os.pread(fd, os.fstat(fd).st_size, 0)
    except OSError as exc:
        raise RunncError(f"cannot export the compiled profile: {exc.strerror}",
                         where=where) from exc
    finally:
        os.close(fd)
