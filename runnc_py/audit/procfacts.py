"""What /proc tells about a live process besides its filters: status, fds, mappings,
namespaces and cgroup. Read-only; every fact is a plain value for the report."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from runnc_py.errors import RunncError

STATUS_KEYS = ("Name", "State", "Uid", "Gid", "Seccomp", "Seccomp_filters", "NoNewPrivs",
               "CapEff", "CapPrm", "CapBnd", "CapAmb", "Threads")
NAMESPACES = ("mnt", "net", "pid", "user", "uts", "ipc", "cgroup", "time")


@dataclass(frozen=True)
class OpenFd:
    fd: int
    target: str
    kind: str  # epoll | timerfd | tap | kvm | kvm-vcpu | kvm-vm | file | block-dev | pipe ...
    size: int | None = None  # regular files and block devices
    iface: str | None = None  # tap: the interface behind it (fdinfo "iff")


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    perms: str
    path: str


@dataclass
class ProcessFacts:
    pid: int
    status: dict[str, str] = field(default_factory=dict)
    fds: list[OpenFd] = field(default_factory=list)
    maps: list[Mapping] = field(default_factory=list)
    namespaces: dict[str, str] = field(default_factory=dict)
    shared_namespaces: list[str] = field(default_factory=list)  # the same as pid 1's
    cgroup: list[str] = field(default_factory=list)

    @property
    def seccomp_mode(self) -> int:
        return int(self.status.get("Seccomp", "0") or 0)

    def writable_executable(self) -> list[Mapping]:
        return [m for m in self.maps if "w" in m.perms and "x" in m.perms]

    def file_backed(self) -> list[Mapping]:
        return [m for m in self.maps if m.path.startswith("/")]

    def kind(self) -> str:
        """`hvt` when the process drives a KVM vCPU (our monitor), else `spt`."""
        return "hvt" if any(f.kind == "kvm-vcpu" for f in self.fds) else "spt"


def read(pid: int) -> ProcessFacts:
    where = f"pid {pid}"
    base = f"/proc/{pid}"
    try:
        with open(f"{base}/status") as fh:
            status_text = fh.read()
    except FileNotFoundError as exc:
        raise RunncError("no such process", where=where) from exc
    except OSError as exc:
        raise RunncError(f"cannot read its status: {exc.strerror}", where=where) from exc
    facts = ProcessFacts(pid=pid, status=_status(status_text))
    facts.fds = _fds(base)
    facts.maps = _maps(base)
    facts.namespaces, facts.shared_namespaces = _namespaces(base)
    facts.cgroup = _lines(f"{base}/cgroup")
    return facts


def _status(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in STATUS_KEYS:
            out[key] = " ".join(value.split())
    return out


def classify(target: str) -> str:
    if target == "anon_inode:[eventpoll]":
        return "epoll"
    if target == "anon_inode:[timerfd]":
        return "timerfd"
    if target.startswith("anon_inode:kvm-vcpu"):
        return "kvm-vcpu"
    if target.startswith("anon_inode:kvm-vm"):
        return "kvm-vm"
    if target == "/dev/kvm":
        return "kvm"
    if target == "/dev/net/tun":
        return "tap"
    for prefix, kind in (("pipe:", "pipe"), ("socket:", "socket"), ("anon_inode:", "anon")):
        if target.startswith(prefix):
            return kind
    if target.startswith("/dev/"):
        return "device"
    return "file"


def _fds(base: str) -> list[OpenFd]:
    out = []
    try:
        names = os.listdir(f"{base}/fd")
    except OSError:
        return out
    for name in sorted(names, key=int):
        fd = int(name)
        try:
            target = os.readlink(f"{base}/fd/{name}")
        except OSError:
            continue
        kind = classify(target)
        size = iface = None
        if kind in ("file", "device"):
            size, kind = _size(f"{base}/fd/{name}", kind)
        if kind == "tap":
            iface = _fdinfo(base, name).get("iff")
        out.append(OpenFd(fd=fd, target=target, kind=kind, size=size, iface=iface))
    return out


def _size(path: str, kind: str) -> tuple[int | None, str]:
    import stat

    try:
        st = os.stat(path)
    except OSError:
        return None, kind
    if stat.S_ISREG(st.st_mode):
        return st.st_size, "file"
    if stat.S_ISBLK(st.st_mode):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None, "block-dev"
        try:
            return os.lseek(fd, 0, os.SEEK_END), "block-dev"
        finally:
            os.close(fd)
    return None, kind


def _fdinfo(base: str, fd: str) -> dict[str, str]:
    out = {}
    for line in _lines(f"{base}/fdinfo/{fd}"):
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


def _maps(base: str) -> list[Mapping]:
    out = []
    for line in _lines(f"{base}/maps"):
        parts = line.split(None, 5)
        lo, _, hi = parts[0].partition("-")
        out.append(Mapping(int(lo, 16), int(hi, 16), parts[1], parts[5] if len(parts) > 5 else ""))
    return out


def _namespaces(base: str) -> tuple[dict[str, str], list[str]]:
    mine, shared = {}, []
    for ns in NAMESPACES:
        try:
            mine[ns] = os.readlink(f"{base}/ns/{ns}")
        except OSError:
            continue
        try:
            if os.readlink(f"/proc/1/ns/{ns}") == mine[ns]:
                shared.append(ns)
        except OSError:
            pass
    return mine, shared


def _lines(path: str) -> list[str]:
    try:
        with open(path) as fh:
            return fh.read().splitlines()
    except OSError:
        return []
