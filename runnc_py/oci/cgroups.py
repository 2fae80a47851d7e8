"""Container cgroups, the effectful shell: the host's layout and the cgroup handle.

`Cgroup` mkdirs, writes the planned limits (runnc_py.oci.cgroup_plan), adds a pid, freezes,
updates and removes. It is JSON-serialisable so later commands (`pause`, `update`, `delete`)
rebuild it from the state dir.
"""

from __future__ import annotations

import errno
import os
import time

from runnc_py.errors import RunncError
from runnc_py.oci.cgroup_plan import (
    CGROUP_ROOT,
    DEFAULT_PARENT,
    CgroupPlan,
    CgroupWrite,
    levels,
    parse_resources,
    parse_v1_mounts,
    required_controllers,
    v1_writes,
    v2_writes,
)
from runnc_py.record import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

_FREEZE_TIMEOUT = 2.0  # s; a freezer that has not settled by then is reported, not waited on
_RMDIR_TIMEOUT = 1.0  # s; killed tasks leave the cgroup asynchronously, give them this long


class CgroupLayout(FrozenRecord):
    """Which cgroup version the host runs and where: v1 controller -> mount point, or v2
    with the single unified mount under the key ""."""

    __slots__ = ("mounts", "version")
    version: int
    mounts: Mapping[str, str]

    def __init__(self, version: int, mounts: Mapping[str, str]) -> None:
        self._set(version=version, mounts=mounts)

    @classmethod
    def unified(cls, mount: str = CGROUP_ROOT) -> CgroupLayout:
        return cls(2, {"": mount})

    @classmethod
    def detect(cls, root: str = CGROUP_ROOT) -> CgroupLayout:
        """v2 when `root` is a cgroup2 mount (it has cgroup.controllers), else the v1 mounts.

        A hybrid host (v1 controllers + an empty v2 tree at `root`/unified) counts as v1:
        the limits live in the v1 hierarchies.
        """
        if os.path.exists(os.path.join(root, "cgroup.controllers")):
            return cls.unified(root)
        try:
            with open("/proc/self/mountinfo", encoding="utf-8") as f:
                mounts = parse_v1_mounts(f.read())
        except OSError as exc:
            raise RunncError(f"cannot read mounts: {exc.strerror}", where="cgroup") from exc
        if not mounts:
            raise RunncError(f"no cgroup v1 or v2 hierarchy mounted under {root}", where="cgroup")
        return cls(1, mounts)


class Cgroup:
    """One container's cgroup on this host: the same path in each hierarchy (v1) or in the
    unified tree (v2). `created` lists the directories we made, so `remove` takes away what
    we added and nothing the engine or another container owns."""

    def __init__(
        self,
        version: int,
        path: str,
        mounts: Mapping[str, str],
        created: Sequence[str] = (),
    ) -> None:
        self.version = version
        self.path = path
        self.mounts = dict(mounts)
        self.created = list(created)

    def __repr__(self) -> str:
        return f"Cgroup(version={self.version}, path={self.path!r})"

    # -- construction / persistence

    @classmethod
    def create(cls, plan: CgroupPlan, *, layout: CgroupLayout | None = None) -> Cgroup:
        """Make the cgroup's directories and write the planned limits.

        On failure nothing we created is left behind.
        """
        layout = layout or CgroupLayout.detect()
        cg = cls(layout.version, plan.path, layout.mounts)
        writes = plan.writes(layout.version)
        cg._check_controllers(writes)
        try:
            cg._mkdirs()
            cg._apply(writes)
        except BaseException:
            # Keep the original error: a failing cleanup must not mask why create failed.
            try:  # noqa: SIM105 (contextlib costs create ~1 ms)
                cg.remove()
            except (RunncError, OSError):
                pass
            raise
        return cg

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": self.path,
            "mounts": dict(self.mounts),
            "created": list(self.created),
        }

    @classmethod
    def from_record(cls, d: Mapping[str, Any], layout: CgroupLayout) -> Cgroup:
        """The handle for a cgroup recorded in state.json, rebuilt on the mounts detected now
        (docs/state.md, rule 5): the recorded mounts are never used, the path must be plain,
        and `created` keeps only directories on those mounts above the path. So a tampered
        record cannot make `kill --all` read pids, or `delete` rmdir, outside our cgroups."""
        recorded = cls.from_json(d)
        where = "state: cgroup"
        path = recorded.path
        if recorded.version != layout.version:
            raise RunncError(
                f"recorded for cgroup v{recorded.version}, the host runs v{layout.version}",
                where=where,
            )
        if os.path.normpath(path) != path or "/../" in f"{path}/" or path.startswith("//"):
            raise RunncError(f"corrupt cgroup entry (path {path!r} is not plain)", where=where)
        ancestors = {cls._dir(m, p) for m in layout.mounts.values() for p in _ancestors(path)}
        created = [c for c in recorded.created if c in ancestors]
        return cls(layout.version, path, layout.mounts, created)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Cgroup:
        where = "state: cgroup"
        if not isinstance(d, dict):  # a JSON object
            raise RunncError("corrupt cgroup entry (not an object)", where=where)
        version, path = d.get("version"), d.get("path")
        mounts, created = d.get("mounts"), d.get("created", [])
        if version not in (1, 2) or isinstance(version, bool):
            raise RunncError(f"corrupt cgroup entry (version {version!r})", where=where)
        if not isinstance(path, str) or not path.startswith("/") or path == "/":
            raise RunncError(f"corrupt cgroup entry (path {path!r})", where=where)
        if (
            not isinstance(mounts, dict)
            or not mounts
            or not all(
                isinstance(k, str) and isinstance(v, str) and v.startswith("/")
                for k, v in mounts.items()
            )
        ):
            raise RunncError("corrupt cgroup entry (mounts)", where=where)
        if not isinstance(created, list) or not all(isinstance(c, str) for c in created):
            raise RunncError("corrupt cgroup entry (created)", where=where)
        return cls(version, path, mounts, created)

    # -- directories

    def dirs(self) -> list[str]:
        """The container's cgroup directory in each distinct hierarchy."""
        return sorted({self._dir(m, self.path) for m in self.mounts.values()})

    def dir(self, controller: str = "") -> str | None:
        """This cgroup's directory for a v1 controller (v2: the one directory)."""
        mount = self.mounts.get("" if self.version == 2 else controller)
        return None if mount is None else self._dir(mount, self.path)

    @staticmethod
    def _dir(mount: str, rel: str) -> str:
        return os.path.join(mount, rel.lstrip("/")) if rel != "/" else mount

    def _mkdirs(self) -> None:
        for mount in sorted(set(self.mounts.values())):
            # A sibling container's `remove` may rmdir a shared parent between our two mkdirs
            # (it is empty for that instant): start over a few times before giving up.
            for attempt in range(5):
                try:
                    for level in levels(self.path):
                        target = self._dir(mount, level)
                        try:
                            os.mkdir(target, 0o755)
                        except FileExistsError:
                            continue
                        self.created.append(target)
                    break
                except FileNotFoundError as exc:
                    if attempt == 4:
                        raise RunncError(
                            "cannot create cgroup: a parent keeps disappearing or the "
                            "hierarchy is gone",
                            where=exc.filename or mount,
                        ) from exc
                except OSError as exc:
                    raise RunncError(
                        f"cannot create cgroup: {exc.strerror}", where=exc.filename or mount
                    ) from exc

    # -- writes

    def _check_controllers(self, writes: Iterable[CgroupWrite]) -> None:
        needed = required_controllers(writes)
        if self.version == 1:
            for controller, source in needed.items():
                if controller not in self.mounts:
                    raise RunncError(
                        f"needs the cgroup v1 '{controller}' hierarchy, which is not mounted",
                        where=source,
                    )
            return
        mount = self.mounts[""]
        available = _read(os.path.join(mount, "cgroup.controllers")).split()
        for controller, source in needed.items():
            if controller not in available:
                raise RunncError(
                    f"needs the cgroup v2 '{controller}' controller, not available in {mount} "
                    f"(cgroup.controllers: {' '.join(available) or 'empty'})",
                    where=source,
                )

    def _apply(self, writes: Iterable[CgroupWrite]) -> None:
        # The kernel checks some values against others (v1 memsw >= memory, quota vs period,
        # a child cpuset within its parent's); the right order depends on the current values.
        # Rather than read them first, write in plan order and retry what the kernel refused
        # with EINVAL/EBUSY once the rest is in place.
        deferred: list[tuple[CgroupWrite, OSError]] = []
        for w in writes:
            try:
                self._write_one(w)
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.EBUSY):
                    raise self._write_error(w, exc) from exc
                deferred.append((w, exc))
        for w, _ in deferred:
            try:
                self._write_one(w)
            except OSError as exc:
                raise self._write_error(w, exc) from exc

    def _target(self, w: CgroupWrite) -> str | None:
        mount = self.mounts.get("" if self.version == 2 else w.controller)
        return None if mount is None else os.path.join(self._dir(mount, w.dir), w.file)

    def _write_one(self, w: CgroupWrite) -> None:
        target = self._target(w)
        if target is None:
            if w.optional:
                return
            raise RunncError(
                f"needs the cgroup '{w.controller}' controller, which is not available",
                where=w.source,
            )
        if w.optional and not os.path.exists(target):
            return
        value = w.value
        if value is None:  # inherit from the parent when ours is empty
            if _read(target).strip():
                return
            parent = os.path.join(os.path.dirname(os.path.dirname(target)), w.file)
            value = _read(parent).strip()
        _write(target, value)

    def _write_error(self, w: CgroupWrite, exc: OSError) -> RunncError:
        value = "the parent's value" if w.value is None else repr(w.value)
        return RunncError(
            f"cannot write {value} to {self._target(w)}: {exc.strerror}", where=w.source
        )

    def update(self, resources: Mapping[str, Any], *, where: str = "linux.resources") -> None:
        """Apply new limits to the live cgroup (`runnc-py update --resources -`)."""
        limits = parse_resources(resources, where)
        if self.version == 1:
            writes = v1_writes(self.path, limits, structure=False)
        else:
            writes = v2_writes(self.path, limits)
        self._check_controllers(writes)
        self._apply(writes)

    # -- processes

    def add(self, pid: int) -> None:
        """Move process `pid` (and its threads) into the cgroup in every hierarchy."""
        for d in self.dirs():
            try:
                _write(os.path.join(d, "cgroup.procs"), str(pid))
            except ProcessLookupError as exc:
                raise RunncError("no such process", where=f"cgroup add pid {pid}") from exc
            except OSError as exc:
                raise RunncError(
                    f"cannot add pid {pid}: {exc.strerror}", where=os.path.join(d, "cgroup.procs")
                ) from exc

    def pids(self) -> list[int]:
        """Every process in the cgroup and its sub-cgroups, sorted."""
        top = self.dir("pids") or self.dir("freezer") or self.dir("memory") or self.dirs()[0]
        found: set[int] = set()
        for d, _subdirs, _files in os.walk(top):
            try:
                text = _read(os.path.join(d, "cgroup.procs"))
            except FileNotFoundError:
                continue  # removed under us
            found.update(int(p) for p in text.split())
        return sorted(found)

    def signal(self, signum: int) -> None:
        """Send SIGNUM to every process in the cgroup (`kill --all`). Each pid read from
        cgroup.procs is pinned by a pidfd and re-checked to be inside before the signal, so a
        pid that left and was recycled in between is not hit."""
        import _signal

        for pid in self.pids():
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            try:
                if in_cgroup(pid, self.path):
                    _signal.pidfd_send_signal(fd, signum)
            except ProcessLookupError:
                pass
            finally:
                os.close(fd)

    # -- freezer

    def freeze(self) -> None:
        """Stop every task in the cgroup; returns once the kernel reports them frozen."""
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def is_frozen(self) -> bool:
        try:
            if self.version == 1:
                return _read(self._freezer_file()).strip() == "FROZEN"
            return self._v2_events().get("frozen") == "1"
        except OSError as exc:
            raise RunncError(
                f"cannot read the freezer state: {exc.strerror}", where=exc.filename or "cgroup"
            ) from exc

    def _freezer_file(self) -> str:
        d = self.dir("freezer")
        if d is None:
            raise RunncError("the cgroup v1 freezer hierarchy is not mounted", where="cgroup")
        return os.path.join(d, "freezer.state")

    def _v2_events(self) -> dict[str, str]:
        text = _read(os.path.join(self.mounts[""], self.path.lstrip("/"), "cgroup.events"))
        return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)

    def _set_frozen(self, frozen: bool) -> None:
        if self.version == 1:
            target, value = self._freezer_file(), ("FROZEN" if frozen else "THAWED")
        else:
            d = self.dir()
            assert d is not None
            target, value = os.path.join(d, "cgroup.freeze"), ("1" if frozen else "0")
        deadline = time.monotonic() + _FREEZE_TIMEOUT
        delay = 0.001
        while True:
            # v1 may sit in FREEZING while a task is in an uninterruptible wait; writing
            # FROZEN again retries the tasks that were missed (what runc does).
            try:
                _write(target, value)
            except OSError as exc:
                raise RunncError(f"cannot write {value}: {exc.strerror}", where=target) from exc
            if self.is_frozen() == frozen:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        if frozen:
            _write(target, "THAWED" if self.version == 1 else "0")  # don't leave it half frozen
        state = "frozen" if self.is_frozen() else "not frozen"
        raise RunncError(
            f"cgroup did not {'freeze' if frozen else 'thaw'} within {_FREEZE_TIMEOUT:g} s "
            f"(now {state})",
            where=target,
        )

    # -- removal

    def remove(self) -> None:
        """Remove the cgroup's directories; idempotent. The caller kills the tasks first.

        Empty parents go too when they are ours: the ones this cgroup created and our
        default parent /runnc-py (other runnc-py calls retry a mkdir that races with this).
        A parent someone else made (an engine's /docker) stays, as with runc: a runtime that
        does not retry could be mkdir-ing inside it right now. A busy parent always stays.
        """
        for d in self.dirs():
            self._rmtree(d)
        parents = set(self.created) - set(self.dirs())
        if self.path.startswith(DEFAULT_PARENT + "/"):
            parents.update(self._dir(m, DEFAULT_PARENT) for m in self.mounts.values())
        for d in sorted(parents, key=lambda p: p.count("/"), reverse=True):
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    raise RunncError(f"cannot remove: {exc.strerror}", where=d) from exc

    def _rmtree(self, top: str) -> None:
        if not os.path.isdir(top):
            return
        # Bottom-up: a cgroup with child cgroups cannot be removed. The files inside are
        # kernel interfaces and go away with rmdir.
        for d, _subdirs, _files in os.walk(top, topdown=False):
            deadline = time.monotonic() + _RMDIR_TIMEOUT
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        left = _procs(d)
                        detail = f"still holds pids {left}" if left else exc.strerror
                        raise RunncError(f"cannot remove cgroup: {detail}", where=d) from exc
                    time.sleep(0.01)  # killed tasks are still leaving


def _ancestors(path: str) -> list[str]:
    """The proper ancestors of a cgroup path, without the root: /a/b/c -> [/a, /a/b]."""
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def in_cgroup(pid: int, path: str) -> bool:
    """True if PID is in cgroup PATH or below it, by /proc/PID/cgroup (any hierarchy)."""
    try:
        text = _read(f"/proc/{pid}/cgroup")
    except OSError:
        return False
    for line in text.splitlines():
        member = line.split(":", 2)[-1]
        if member == path or member.startswith(path + "/"):
            return True
    return False


def _procs(d: str) -> list[int]:
    try:
        return [int(p) for p in _read(os.path.join(d, "cgroup.procs")).split()]
    except OSError:
        return []


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _write(path: str, value: str) -> None:
    # cgroup files take one value per write(2); open without O_CREAT so a typo is ENOENT.
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)
