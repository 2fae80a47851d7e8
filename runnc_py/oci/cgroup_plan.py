"""Container cgroups, the pure part: from `linux.cgroupsPath` + `linux.resources` to a plan.

`plan_cgroup` turns the spec into a `CgroupPlan`: the cgroup's path plus, for cgroup v1 *and*
v2, the ordered list of writes (controller, dir, file, value). Both versions are planned
because which one a host runs is a fact of the host, found only when `Cgroup.create` runs
(runnc_py.oci.cgroups, the effectful shell); so the plan stays pure and is unit-tested
without root.

Where the cgroup goes (`linux.cgroupsPath`), the same in every hierarchy:
- absent: `/runnc-py/<id>`;
- absolute `/a/b`: `/a/b` below each hierarchy root (what runc and the engines expect:
  Docker sends `/docker/<id>`, containerd `/default/<id>`);
- relative `a/b`: `/runnc-py/a/b`. runc puts relative paths under its *own* cgroup; we use a
  fixed parent so the result does not depend on which cgroup the caller happens to sit in;
- systemd form `slice:prefix:name` (recognised always, required with `--systemd-cgroup`):
  `/<expanded slice>/<prefix>-<name>.scope`, e.g. `system.slice:docker:abc` ->
  `/system.slice/docker-abc.scope`. We create it as plain cgroupfs dirs and never talk to
  systemd over D-Bus (our hosts have no systemd); the path is the one systemd would use.

Resources applied: memory limit/swap/reservation, pids limit, cpu shares/quota/period,
cpuset cpus/mems, hugepage limits. Not applied: `devices` (a unikernel only reaches the host
through the fds we open for it and its seccomp filter), blockIO, network, rdma, unified.
Values follow runc: 0 means "unset" for the cpu fields; -1 means unlimited; pids.limit <= 0 is
unlimited (writing 0 to pids.max would forbid every fork).
"""

from __future__ import annotations

import posixpath

from runnc_py.errors import RunncError
from runnc_py.mountinfo import unescape
from runnc_py.record import FrozenRecord
from runnc_py.strictnum import INT64_MAX, INT64_MIN, json_int

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

CGROUP_ROOT = "/sys/fs/cgroup"
DEFAULT_PARENT = "/runnc-py"
SYSTEMD_DEFAULT_SLICE = "system.slice"
SYSTEMD_DEFAULT_PREFIX = "runnc-py"

# v1 hierarchies a container joins when they are mounted. We join more than we write limits
# to so accounting (cpuacct, blkio) and `ps` see the whole container, as runc does; the
# devices hierarchy is joined with the parent's (inherited) rules.
V1_JOIN = ("blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory", "pids")

# runc's bounds: the kernel silently clamps cpu.shares, so reject what it would change.
CPU_SHARES_MIN, CPU_SHARES_MAX = 2, 262144
CPU_PERIOD_MIN, CPU_PERIOD_MAX = 1000, 1_000_000  # µs, kernel limits for cfs_period_us
CPU_QUOTA_MIN = 1000  # µs, the kernel refuses a smaller cfs_quota_us

# Checked with str methods, not `re` (create's import budget, docs/boot-path.md).
# ASCII digits only: str.isdigit alone would also take other Unicode digits, which int() then
# takes. At most 6 digits per CPU/node number (the kernel's NR_CPUS tops out at 8192): int()
# on an unbounded run of digits would raise ValueError past 4300 of them.
_ASCII_DIGITS = frozenset("0123456789")
# The kernel's pids.max takes 0..PID_MAX_LIMIT (4194304 on 64-bit); anything above is EINVAL.
PIDS_MAX = 4_194_304


# ---------------------------------------------------------------------------------------------
# Pure core: limits, paths and the writes they imply.


def _is_number(text: str, max_digits: int = 6) -> bool:
    """1..MAX_DIGITS ASCII digits."""
    return 0 < len(text) <= max_digits and _ASCII_DIGITS.issuperset(text)


def _is_cpu_list(text: str) -> bool:
    """`0-3,5`: comma-separated numbers or `lo-hi` ranges."""
    for part in text.split(","):
        lo, dash, hi = part.partition("-")
        if not _is_number(lo) or (dash and not _is_number(hi)):
            return False
    return True


def _is_page_size(text: str) -> bool:
    """`2MB`, `1GB`, `64KB`: 1-6 ASCII digits, then K, M or G, then B."""
    return text[-2:] in ("KB", "MB", "GB") and _is_number(text[:-2])


class Limits(FrozenRecord):
    """`linux.resources`, validated and normalised (None = leave the kernel default)."""

    __slots__ = (
        "cpu_period",  # µs
        "cpu_quota",  # µs per period, -1 = unlimited
        "cpu_shares",
        "cpus",  # "0-3,5"
        "hugepages",  # ((page size "2MB", bytes), ...)
        "memory_limit",  # bytes, -1 = unlimited
        "memory_reservation",  # bytes, -1 = unlimited
        "memory_swap",  # bytes of memory + swap (OCI/v1 meaning), -1 = unlimited
        "mems",
        "pids_limit",  # <= 0 = unlimited
    )
    memory_limit: int | None
    memory_swap: int | None
    memory_reservation: int | None
    pids_limit: int | None
    cpu_shares: int | None
    cpu_quota: int | None
    cpu_period: int | None
    cpus: str | None
    mems: str | None
    hugepages: tuple[tuple[str, int], ...]

    def __init__(
        self,
        memory_limit: int | None = None,
        memory_swap: int | None = None,
        memory_reservation: int | None = None,
        pids_limit: int | None = None,
        cpu_shares: int | None = None,
        cpu_quota: int | None = None,
        cpu_period: int | None = None,
        cpus: str | None = None,
        mems: str | None = None,
        hugepages: tuple[tuple[str, int], ...] = (),
    ) -> None:
        self._set(
            memory_limit=memory_limit,
            memory_swap=memory_swap,
            memory_reservation=memory_reservation,
            pids_limit=pids_limit,
            cpu_shares=cpu_shares,
            cpu_quota=cpu_quota,
            cpu_period=cpu_period,
            cpus=cpus,
            mems=mems,
            hugepages=hugepages,
        )


class CgroupWrite(FrozenRecord):
    """One value to write into one cgroup file.

    `controller` is the controller the write needs: the v1 hierarchy it goes to, or the v2
    controller that must be enabled. `dir` is relative to the hierarchy root. A `value` of
    None means "copy the parent's value if ours is empty" (v1 cpuset: a new cpuset cgroup is
    empty and refuses tasks). `source` is the JSON path named in errors. `optional` writes
    are skipped when the file or hierarchy does not exist on this host.
    """

    __slots__ = ("controller", "dir", "file", "optional", "source", "value")
    controller: str
    dir: str
    file: str
    value: str | None
    source: str
    optional: bool

    def __init__(
        self,
        controller: str,
        dir: str,
        file: str,
        value: str | None,
        source: str,
        optional: bool = False,
    ) -> None:
        self._set(
            controller=controller, dir=dir, file=file, value=value, source=source, optional=optional
        )


class CgroupPlan(FrozenRecord):
    """Where the container's cgroup goes and what to write there, for v1 and for v2."""

    __slots__ = ("limits", "path", "v1", "v2")
    path: str
    v1: tuple[CgroupWrite, ...]
    v2: tuple[CgroupWrite, ...]
    limits: Limits

    def __init__(
        self,
        path: str,
        v1: tuple[CgroupWrite, ...] = (),
        v2: tuple[CgroupWrite, ...] = (),
        limits: Limits | None = None,
    ) -> None:
        self._set(path=path, v1=v1, v2=v2, limits=Limits() if limits is None else limits)

    def writes(self, version: int) -> tuple[CgroupWrite, ...]:
        return self.v1 if version == 1 else self.v2


def plan_cgroup(
    container_id: str,
    cgroups_path: str | None,
    resources: Mapping[str, Any] | None,
    systemd: bool = False,
) -> CgroupPlan:
    """Plan the cgroup of a container from `linux.cgroupsPath` and `linux.resources`."""
    path = cgroup_path(container_id, cgroups_path, systemd)
    limits = parse_resources(resources)
    return CgroupPlan(
        path=path,
        v1=v1_writes(path, limits, structure=True),
        v2=v2_writes(path, limits),
        limits=limits,
    )


def cgroup_path(container_id: str, cgroups_path: str | None, systemd: bool = False) -> str:
    """The cgroup path below each hierarchy root (see the module docstring for the rules)."""
    _check_id(container_id)
    where = "linux.cgroupsPath"
    if cgroups_path is not None and not isinstance(cgroups_path, str):
        raise RunncError("must be a string", where=where)
    if not cgroups_path:
        if systemd:
            return _systemd_path(f"{SYSTEMD_DEFAULT_SLICE}:{SYSTEMD_DEFAULT_PREFIX}:{container_id}")
        return f"{DEFAULT_PARENT}/{container_id}"
    if _is_systemd_form(cgroups_path):
        return _systemd_path(cgroups_path)
    if systemd:
        raise RunncError(
            f'expected "slice:prefix:name" with --systemd-cgroup, got {cgroups_path!r}',
            where=where,
        )
    return _plain_path(cgroups_path, where)


def _check_id(container_id: str) -> None:
    if (
        not isinstance(container_id, str)
        or container_id in ("", ".", "..")
        or "/" in container_id
        or "\0" in container_id
    ):
        raise RunncError(f"invalid container id {container_id!r}", where="cgroup")


def _plain_path(raw: str, where: str) -> str:
    if "\0" in raw:
        raise RunncError("must not contain NUL", where=where)
    # `..` could climb out of the parent we chose (or the hierarchy): refuse, don't normalise.
    if ".." in raw.split("/"):
        raise RunncError(f"must not contain '..': {raw!r}", where=where)
    full = raw if raw.startswith("/") else f"{DEFAULT_PARENT}/{raw}"
    path = posixpath.normpath(full)
    if path.startswith("//"):  # normpath keeps a leading "//" (POSIX); it is just "/"
        path = "/" + path.lstrip("/")
    if path == "/":
        raise RunncError("must not be the root cgroup", where=where)
    return path


def _is_systemd_form(raw: str) -> bool:
    return "/" not in raw and raw.count(":") == 2


def _systemd_path(raw: str) -> str:
    """`slice:prefix:name` -> the path systemd would give that scope (or slice)."""
    where = "linux.cgroupsPath"
    slice_, prefix, name = raw.split(":")
    if not name:
        raise RunncError(f"systemd form {raw!r} has an empty name", where=where)
    parent = expand_slice(slice_ or SYSTEMD_DEFAULT_SLICE, where)
    if name.endswith(".slice"):
        unit = name  # a slice is named as is
    else:
        unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    if "/" in unit or unit in (".", ".."):
        raise RunncError(f"invalid unit name {unit!r}", where=where)
    return posixpath.join(parent, unit)


def expand_slice(slice_: str, where: str = "linux.cgroupsPath") -> str:
    """systemd's slice nesting: `a-b-c.slice` -> `/a.slice/a-b.slice/a-b-c.slice`."""
    if not slice_.endswith(".slice") or "/" in slice_:
        raise RunncError(f"invalid systemd slice {slice_!r}", where=where)
    if slice_ == "-.slice":  # the root slice
        return "/"
    stem = slice_[: -len(".slice")]
    parts = stem.split("-")
    if any(not p for p in parts):
        raise RunncError(f"invalid systemd slice {slice_!r} (empty '-' component)", where=where)
    path, acc = "", ""
    for part in parts:
        acc = f"{acc}-{part}" if acc else part
        path += f"/{acc}.slice"
    return path


def parse_resources(resources: Mapping[str, Any] | None, where: str = "linux.resources") -> Limits:
    """Validate `linux.resources`; errors name the JSON path of the bad value."""
    if resources is None:
        return Limits()
    _need_mapping(resources, where)
    memory = _section(resources, "memory", where)
    pids = _section(resources, "pids", where)
    cpu = _section(resources, "cpu", where)

    mem_where = f"{where}.memory"
    limit = _limit_or_unlimited(memory, "limit", mem_where)
    swap = _limit_or_unlimited(memory, "swap", mem_where)
    reservation = _limit_or_unlimited(memory, "reservation", mem_where)
    if swap is not None and swap > 0:
        if limit is None or limit == -1:
            raise RunncError(
                f"needs {mem_where}.limit (swap limits memory + swap)", where=f"{mem_where}.swap"
            )
        if swap < limit:
            raise RunncError(
                f"must be >= memory.limit ({limit}): it limits memory + swap",
                where=f"{mem_where}.swap",
            )

    pids_limit = _int(pids, "limit", f"{where}.pids")
    if pids_limit is not None and pids_limit > PIDS_MAX:
        raise RunncError(
            f"must be at most {PIDS_MAX} (the kernel's PID_MAX_LIMIT), or <= 0 for unlimited",
            where=f"{where}.pids.limit",
        )

    cpu_where = f"{where}.cpu"
    shares = _int(cpu, "shares", cpu_where) or None
    if shares is not None and not CPU_SHARES_MIN <= shares <= CPU_SHARES_MAX:
        raise RunncError(
            f"must be between {CPU_SHARES_MIN} and {CPU_SHARES_MAX}", where=f"{cpu_where}.shares"
        )
    quota = _int(cpu, "quota", cpu_where) or None
    if quota is not None and quota != -1 and quota < CPU_QUOTA_MIN:
        raise RunncError(
            f"must be >= {CPU_QUOTA_MIN} (µs) or -1 (unlimited)", where=f"{cpu_where}.quota"
        )
    period = _int(cpu, "period", cpu_where) or None
    if period is not None and not CPU_PERIOD_MIN <= period <= CPU_PERIOD_MAX:
        raise RunncError(
            f"must be between {CPU_PERIOD_MIN} and {CPU_PERIOD_MAX} (µs)",
            where=f"{cpu_where}.period",
        )
    cpus = _cpu_list(cpu, "cpus", cpu_where)
    mems = _cpu_list(cpu, "mems", cpu_where)

    return Limits(
        memory_limit=limit,
        memory_swap=swap,
        memory_reservation=reservation,
        pids_limit=pids_limit,
        cpu_shares=shares,
        cpu_quota=quota,
        cpu_period=period,
        cpus=cpus,
        mems=mems,
        hugepages=_hugepages(resources, where),
    )


def _need_mapping(obj: object, where: str) -> None:
    if not isinstance(obj, dict):  # a JSON object
        raise RunncError("must be an object", where=where)


def _section(resources: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = resources.get(key)
    if value is None:
        return {}
    _need_mapping(value, f"{where}.{key}")
    return value


def _int(obj: Mapping[str, Any], key: str, where: str) -> int | None:
    """An int64 (the runtime spec's type for every limit here), None when absent.

    Bounded because the kernel parses these files with a wrapping strtoull: 2**64+5 written to
    memory.limit_in_bytes would become a 5-byte limit.
    """
    value = obj.get(key)
    if value is None:
        return None
    return json_int(value, where=f"{where}.{key}", low=INT64_MIN, high=INT64_MAX)


def _limit_or_unlimited(obj: Mapping[str, Any], key: str, where: str) -> int | None:
    value = _int(obj, key, where)
    if value is not None and value != -1 and value <= 0:
        raise RunncError("must be > 0 or -1 (unlimited)", where=f"{where}.{key}")
    return value


def _cpu_list(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _is_cpu_list(value.strip()):
        raise RunncError(f"must be a list like '0-3,5', got {value!r}", where=f"{where}.{key}")
    for part in value.strip().split(","):
        lo, _, hi = part.partition("-")
        if hi and int(hi) < int(lo):
            raise RunncError(f"range {part!r} is reversed", where=f"{where}.{key}")
    return value.strip()


def _hugepages(resources: Mapping[str, Any], where: str) -> tuple[tuple[str, int], ...]:
    entries = resources.get("hugepageLimits")
    if entries is None:
        return ()
    where = f"{where}.hugepageLimits"
    if not isinstance(entries, list):
        raise RunncError("must be an array", where=where)
    out: list[tuple[str, int]] = []
    for i, entry in enumerate(entries):
        at = f"{where}[{i}]"
        _need_mapping(entry, at)
        size = entry.get("pageSize")
        if not isinstance(size, str) or not _is_page_size(size):
            raise RunncError(f"must be like '2MB' or '1GB', got {size!r}", where=f"{at}.pageSize")
        limit = _int(entry, "limit", at)
        if limit is None or limit < 0:
            raise RunncError("must be an integer >= 0", where=f"{at}.limit")
        out.append((size, limit))
    return tuple(out)


def levels(path: str) -> list[str]:
    """Every cgroup from the top down to `path`: `/a/b` -> [`/a`, `/a/b`]."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def cpu_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000], runc's linear map."""
    return 1 + ((shares - 2) * 9999) // 262142


def v2_swap_max(limit: int | None, swap: int) -> str:
    """OCI swap is memory + swap (v1 memsw); v2 memory.swap.max is the swap part alone."""
    if swap == -1:
        return "max"
    assert limit is not None and limit > 0  # parse_resources guarantees it
    return str(swap - limit)


def _unlimited(value: int, word: str) -> str:
    return word if value == -1 else str(value)


def v1_writes(path: str, limits: Limits, *, structure: bool) -> tuple[CgroupWrite, ...]:
    """The writes for cgroup v1 hierarchies. `structure` adds what a new cgroup needs."""
    res = "linux.resources"
    out: list[CgroupWrite] = []
    if structure:
        # Every new cpuset cgroup starts with empty cpus/mems and refuses tasks until both are
        # set, at every level we create: inherit them from the parent, top down.
        for level in levels(path):
            for f in ("cpuset.cpus", "cpuset.mems"):
                out.append(CgroupWrite("cpuset", level, f, None, "linux.cgroupsPath", True))

    def add(controller: str, f: str, value: str, source: str, optional: bool = False) -> None:
        out.append(CgroupWrite(controller, path, f, value, source, optional))

    lim = limits
    if lim.memory_reservation is not None:
        add(
            "memory",
            "memory.soft_limit_in_bytes",
            str(lim.memory_reservation),
            f"{res}.memory.reservation",
        )
    if lim.memory_limit is not None:
        add("memory", "memory.limit_in_bytes", str(lim.memory_limit), f"{res}.memory.limit")
    if lim.memory_swap is not None:
        # Without swap accounting the file is absent: "unlimited" then needs no write.
        add(
            "memory",
            "memory.memsw.limit_in_bytes",
            str(lim.memory_swap),
            f"{res}.memory.swap",
            optional=lim.memory_swap == -1,
        )
    if lim.pids_limit is not None:
        value = str(lim.pids_limit) if lim.pids_limit > 0 else "max"
        add("pids", "pids.max", value, f"{res}.pids.limit")
    if lim.cpu_shares is not None:
        add("cpu", "cpu.shares", str(lim.cpu_shares), f"{res}.cpu.shares")
    if lim.cpu_period is not None:
        add("cpu", "cpu.cfs_period_us", str(lim.cpu_period), f"{res}.cpu.period")
    if lim.cpu_quota is not None:
        add("cpu", "cpu.cfs_quota_us", str(lim.cpu_quota), f"{res}.cpu.quota")
    if lim.cpus is not None:
        add("cpuset", "cpuset.cpus", lim.cpus, f"{res}.cpu.cpus")
    if lim.mems is not None:
        add("cpuset", "cpuset.mems", lim.mems, f"{res}.cpu.mems")
    for i, (size, limit) in enumerate(lim.hugepages):
        add("hugetlb", f"hugetlb.{size}.limit_in_bytes", str(limit), f"{res}.hugepageLimits[{i}]")
    return tuple(out)


def v2_writes(path: str, limits: Limits) -> tuple[CgroupWrite, ...]:
    """The writes for the cgroup v2 unified tree, including enabling controllers above us."""
    res = "linux.resources"
    leaf: list[CgroupWrite] = []

    def add(controller: str, f: str, value: str, source: str, optional: bool = False) -> None:
        leaf.append(CgroupWrite(controller, path, f, value, source, optional))

    lim = limits
    if lim.memory_reservation is not None:
        add(
            "memory",
            "memory.low",
            _unlimited(lim.memory_reservation, "max"),
            f"{res}.memory.reservation",
        )
    if lim.memory_limit is not None:
        add("memory", "memory.max", _unlimited(lim.memory_limit, "max"), f"{res}.memory.limit")
    if lim.memory_swap is not None:
        add(
            "memory",
            "memory.swap.max",
            v2_swap_max(lim.memory_limit, lim.memory_swap),
            f"{res}.memory.swap",
            optional=lim.memory_swap == -1,
        )
    if lim.pids_limit is not None:
        value = str(lim.pids_limit) if lim.pids_limit > 0 else "max"
        add("pids", "pids.max", value, f"{res}.pids.limit")
    if lim.cpu_shares is not None:
        add("cpu", "cpu.weight", str(cpu_weight(lim.cpu_shares)), f"{res}.cpu.shares")
    if lim.cpu_quota is not None or lim.cpu_period is not None:
        quota = "max" if lim.cpu_quota in (None, -1) else str(lim.cpu_quota)
        value = quota if lim.cpu_period is None else f"{quota} {lim.cpu_period}"
        source = f"{res}.cpu.quota" if lim.cpu_quota is not None else f"{res}.cpu.period"
        add("cpu", "cpu.max", value, source)
    if lim.cpus is not None:
        add("cpuset", "cpuset.cpus", lim.cpus, f"{res}.cpu.cpus")
    if lim.mems is not None:
        add("cpuset", "cpuset.mems", lim.mems, f"{res}.cpu.mems")
    for i, (size, limit) in enumerate(lim.hugepages):
        add("hugetlb", f"hugetlb.{size}.max", str(limit), f"{res}.hugepageLimits[{i}]")

    # v2 controllers work top-down: each one must be enabled in cgroup.subtree_control of
    # every ancestor before its files appear in our cgroup.
    needed = required_controllers(leaf)
    enable = [
        CgroupWrite(c, parent, "cgroup.subtree_control", f"+{c}", needed[c])
        for parent in ["/", *levels(path)[:-1]]
        for c in sorted(needed)
    ]
    return (*enable, *leaf)


def required_controllers(writes: Iterable[CgroupWrite]) -> dict[str, str]:
    """Controller -> JSON path of the first non-optional write that needs it."""
    needed: dict[str, str] = {}
    for w in writes:
        if not w.optional:
            needed.setdefault(w.controller, w.source)
    return needed


def parse_v1_mounts(mountinfo: str) -> dict[str, str]:
    """Controller -> mount point of each cgroup v1 hierarchy, from /proc/self/mountinfo text.

    Co-mounted controllers (`cpu,cpuacct`) map to the same mount point.
    """
    mounts: dict[str, str] = {}
    for line in mountinfo.splitlines():
        pre, sep, post = line.partition(" - ")
        if not sep:
            continue
        fields, tail = pre.split(), post.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] != "cgroup":
            continue
        mount_point = unescape(fields[4])
        for opt in tail[2].split(","):
            if opt in V1_JOIN:
                mounts.setdefault(opt, mount_point)
    return mounts


