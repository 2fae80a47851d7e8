"""Container state on disk: `<root>/<id>/{state.json,lock,exec.fifo}`, and the status it implies.

This module is on the engines' hot path (`state`, `kill` run once per poll): it imports only
builtin modules (not even `json`, see fastjson.py), no dataclasses/typing at run time, and does
one read of state.json plus one read of /proc/PID/stat.

What is stored is what cannot be observed later (pid + its start time, bundle, the creation
time, the cgroup we made, the poststart/poststop hooks, the container's rootfs image copy;
the network wiring has its own net.json, see runnc_py.net.store); the status is derived on
every read:
  phase "creating" and its creator still alive     -> creating
  init pid gone (or a zombie, or a new process)    -> stopped
  phase "created" and exec.fifo still there        -> created
  marked paused by `pause`                         -> paused
  otherwise                                        -> running
The pid's start time (field 22 of /proc/PID/stat) is compared with the one recorded at
create, so a recycled pid never passes for our guest.
"""

from __future__ import annotations

import errno
import os

from runnc_py.errors import RunncError
from runnc_py.oci import fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.0.2"
STATE_FILE = "state.json"
LOCK_FILE = "lock"
FIFO_FILE = "exec.fifo"
DELEGATE_DIR = ".delegate"  # containers handed to the --delegate runtime live under here
MARKER = "runncPy"  # key in our state.json; its absence means another runtime's directory
FORMAT_VERSION = 1
ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")
MAX_ID_LEN = 255  # NAME_MAX: the ID is one directory name (bytes = chars: IDs are ASCII)

CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"


def check_id(container_id: str) -> str:
    """runc's rule for IDs (`^[\\w+.-]+$`, not `.`/`..`): they become directory names.

    Also refused: longer than NAME_MAX (mkdir would fail half-way through `create`), and
    DELEGATE_DIR, the directory where containers handed to --delegate live.
    """
    if (
        not isinstance(container_id, str)
        or not container_id
        or len(container_id) > MAX_ID_LEN
        or container_id in (".", "..")
        or not ID_CHARS.issuperset(container_id)
    ):
        shown = container_id[:61] + "..." if len(str(container_id)) > 64 else container_id
        raise RunncError(
            f"invalid container ID {shown!r} (1 to {MAX_ID_LEN} of letters, digits, _ + - .)",
            where="ID",
        )
    if container_id == DELEGATE_DIR:
        raise RunncError(
            f"invalid container ID {container_id!r}: reserved for delegated containers",
            where="ID",
        )
    return container_id


def proc_start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a live PID; None if gone or a zombie."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def pid_matches(pid: int, start: int | None) -> bool:
    """True while PID is the very process recorded with START (not a recycled pid).

    A pid recorded without its start time is never ours: it cannot be told from a recycled one.
    """
    return start is not None and proc_start_time(pid) == start


def signal_verified(pid: int, start: int | None, signum: int) -> bool:
    """Send SIGNUM to PID only if it is still the process recorded with START (docs/state.md,
    rule 4). The pidfd is opened before the start time is checked, so a pid recycled between
    the check and the signal cannot receive it. False if the process is gone (or another)."""
    import _signal  # the C half of `signal`, without the enum import

    if pid <= 0 or start is None:
        return False
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        if proc_start_time(pid) != start:
            return False
        _signal.pidfd_send_signal(fd, signum)
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)
    return True


# ---------------------------------------------------------------------------- trust


_NOT_WRITABLE_BY_OTHERS = 0o022
_STICKY = 0o1000
MAX_STATE_BYTES = 4 << 20


def _mode_problem(st: os.stat_result, *, allow_sticky: bool, owners: tuple[int, ...]) -> str:
    """Why a directory someone else could change is not to be trusted; "" if it is fine."""
    if st.st_uid not in owners:
        return f"is owned by uid {st.st_uid}"
    if st.st_mode & _NOT_WRITABLE_BY_OTHERS and not (allow_sticky and st.st_mode & _STICKY):
        return "is writable by others"
    return ""


def trusted_root(root: str) -> str:
    """The real path of --root once it is known to be ours (docs/state.md, rule 1).

    Checked: the root is a directory owned by us and not writable by group or others, and
    every ancestor is owned by root or us and not writable by others unless sticky (/tmp):
    otherwise another user could have put or swapped the state we are about to trust. A root
    that does not exist yet is returned as is: there is nothing in it to trust.
    """
    import stat

    real = os.path.realpath(root)
    try:
        st = os.lstat(real)
    except FileNotFoundError:
        return real
    except OSError as exc:
        raise RunncError(f"cannot inspect the state root: {exc.strerror}", where=real) from None
    euid = os.geteuid()
    problem = "is not a directory" if not stat.S_ISDIR(st.st_mode) else ""
    problem = problem or _mode_problem(st, allow_sticky=False, owners=(euid,))
    ancestor = real
    while not problem and ancestor != "/":
        ancestor = os.path.dirname(ancestor)
        why = _mode_problem(os.lstat(ancestor), allow_sticky=True, owners=(0, euid))
        if why:
            problem = f"is inside {ancestor}, which {why}"
    if problem:
        raise RunncError(f"refusing the state root: it {problem}", where=real)
    return real


def check_own_dir(path: str, where: str) -> None:
    """A container directory is trusted only if it is a real directory (no symlink), ours and
    not writable by others (docs/state.md, rule 2). Raises "does not exist" when missing."""
    import stat

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise RunncError("container does not exist", where=where) from None
    if stat.S_ISLNK(st.st_mode):
        problem = "is a symlink"
    elif not stat.S_ISDIR(st.st_mode):
        problem = "is not a directory"
    else:
        problem = _mode_problem(st, allow_sticky=False, owners=(os.geteuid(),))
    if problem:
        raise RunncError(f"refusing the container directory {path}: it {problem}", where=where)


def derive_status(
    phase: str, init_alive: bool, fifo_waiting: bool, paused: bool, creator_alive: bool
) -> str:
    """The OCI status from what is recorded and observed (see the module docstring). Pure."""
    if phase == CREATING:
        return CREATING if creator_alive else STOPPED
    if not init_alive:
        return STOPPED
    if phase == CREATED and fifo_waiting:
        return CREATED
    return PAUSED if paused else RUNNING


def _is_int(value: object, low: int = 0) -> bool:
    return type(value) is int and value >= low


def _process_problem(data: dict[str, Any], pid_key: str, start_key: str) -> str:
    """A recorded process: a pid >= 0 and, when it names one, its start time (rule 4)."""
    pid = data.get(pid_key, 0)
    if not _is_int(pid):
        return f"{pid_key} must be an integer >= 0"
    start = data.get(start_key)
    if pid > 0 and not _is_int(start):
        return f"{start_key} must be an integer when {pid_key} is set"
    if start is not None and not _is_int(start):
        return f"{start_key} must be an integer or null"
    return ""


def _state_problem(data: dict[str, Any]) -> str:
    """What is wrong with a state.json object (its types and ranges, docs/state.md); "" if
    nothing. Pure: every field a verb later acts on is checked here, once."""
    for key in ("id", "bundle", "rootfs", "created"):
        if not isinstance(data.get(key), str):
            return f"{key} must be a string"
    if not isinstance(data.get("owner", ""), str):
        return "owner must be a string"
    problem = _process_problem(data, "pid", "pidStart") or _process_problem(
        data, "creator", "creatorStart"
    )
    if problem:
        return problem
    if data.get("phase", CREATING) not in (CREATING, CREATED, RUNNING):
        return "phase must be creating, created or running"
    if type(data.get("paused", False)) is not bool:
        return "paused must be true or false"
    annotations = data.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        return "annotations must map strings to strings"
    hooks = data.get("hooks") or {}
    if not isinstance(hooks, dict) or not all(
        k in ("poststart", "poststop")
        and isinstance(v, list)
        and all(isinstance(h, dict) for h in v)
        for k, v in hooks.items()
    ):
        return "hooks must map poststart/poststop to lists of hooks"
    cgroup = data.get("cgroup")
    if cgroup is not None and not isinstance(cgroup, dict):
        return "cgroup must be an object or null"
    image = data.get("rootfsImage")
    if image is not None and not (isinstance(image, str) and os.path.isabs(image)):
        # `delete` unlinks this path: Store.load also checks it is the one create derives.
        return "rootfsImage must be an absolute path or null"
    return ""


class ContainerState:
    """What `create` records about one container (see the module docstring)."""

    __slots__ = (
        "annotations",
        "bundle",
        "cgroup",
        "created",
        "creator",
        "creator_start",
        "hooks",
        "id",
        "owner",
        "paused",
        "phase",
        "pid",
        "pid_start",
        "rootfs",
        "rootfs_image",
    )

    def __init__(
        self,
        id: str,
        bundle: str,
        rootfs: str,
        created: str,
        owner: str = "",
        annotations: dict[str, str] | None = None,
        pid: int = 0,
        pid_start: int | None = None,
        phase: str = CREATING,
        creator: int = 0,
        creator_start: int | None = None,
        paused: bool = False,
        cgroup: dict[str, Any] | None = None,
        hooks: dict[str, list[dict[str, Any]]] | None = None,
        rootfs_image: str | None = None,
    ) -> None:
        self.id = id
        self.bundle = bundle
        self.rootfs = rootfs
        self.created = created
        self.owner = owner
        self.annotations = annotations or {}
        self.pid = pid
        self.pid_start = pid_start
        self.phase = phase
        self.creator = creator
        self.creator_start = creator_start
        self.paused = paused
        self.cgroup = cgroup
        self.hooks = hooks or {}  # poststart/poststop, as config.json has them
        self.rootfs_image = rootfs_image  # our copy of the rootfs as an ext4 image, if any

    def to_json(self) -> dict[str, Any]:
        return {
            MARKER: FORMAT_VERSION,
            "id": self.id,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
            "annotations": self.annotations,
            "pid": self.pid,
            "pidStart": self.pid_start,
            "phase": self.phase,
            "creator": self.creator,
            "creatorStart": self.creator_start,
            "paused": self.paused,
            "cgroup": self.cgroup,
            "hooks": self.hooks,
            "rootfsImage": self.rootfs_image,
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> ContainerState:
        if not isinstance(data, dict) or MARKER not in data:
            raise RunncError("not a runnc-py container (foreign state directory)", where=where)
        if data[MARKER] != FORMAT_VERSION:
            raise RunncError(f"state format {data[MARKER]!r} is not {FORMAT_VERSION}", where=where)
        problem = _state_problem(data)
        if problem:
            raise RunncError(f"corrupt state: {problem}", where=where)
        return cls(
            id=data["id"],
            bundle=data["bundle"],
            rootfs=data["rootfs"],
            created=data["created"],
            owner=data.get("owner", ""),
            annotations=data.get("annotations") or {},
            pid=data.get("pid", 0),
            pid_start=data.get("pidStart"),
            phase=data.get("phase", CREATING),
            creator=data.get("creator", 0),
            creator_start=data.get("creatorStart"),
            paused=data.get("paused", False),
            cgroup=data.get("cgroup"),
            hooks=data.get("hooks") or {},
            rootfs_image=data.get("rootfsImage"),
        )

    # -- observation ------------------------------------------------------------------

    def init_alive(self) -> bool:
        return self.pid > 0 and pid_matches(self.pid, self.pid_start)

    def status(self, container_dir: str) -> str:
        creator_alive = self.phase == CREATING and pid_matches(self.creator, self.creator_start)
        alive = self.phase != CREATING and self.init_alive()
        fifo = (
            alive
            and self.phase == CREATED
            and os.path.exists(os.path.join(container_dir, FIFO_FILE))
        )
        return derive_status(self.phase, alive, fifo, self.paused, creator_alive)

    def oci(self, status: str) -> dict[str, Any]:
        """runc's `state` output (and the state hooks get on stdin)."""
        return {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": self.pid if status != STOPPED else 0,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
            "annotations": self.annotations,
        }


def _read_own_file(path: str, limit: int) -> bytes:
    """Read a regular file of ours (not a symlink, not writable by others) of at most LIMIT
    bytes (docs/state.md, rule 3). ValueError says why a file is refused."""
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        problem = _mode_problem(st, allow_sticky=False, owners=(os.geteuid(),))
        if problem:
            raise ValueError(f"it {problem}")
        if st.st_size > limit:
            raise ValueError(f"larger than {limit} bytes")
        chunks = []
        while data := os.read(fd, limit + 1):
            chunks.append(data)
        return b"".join(chunks)
    finally:
        os.close(fd)


def rootfs_copy_name(state_root: str, container_id: str) -> str:
    """The file name of a container's own rootfs image (in the cache's containers/ dir).

    The digest tells apart containers of one ID under two `--root`s; the ID is cut to keep the
    name within NAME_MAX (runc allows 1024-character IDs).
    """
    import hashlib

    digest = hashlib.sha256(f"{state_root}\0{container_id}".encode()).hexdigest()[:12]
    return f"{container_id[:100]}-{digest}.ext4"


class Lock:
    """An exclusive flock on `<dir>/lock`: serializes every verb on one container."""

    def __init__(self, container_dir: str) -> None:
        self.path = os.path.join(container_dir, LOCK_FILE)
        self.fd = -1

    def __enter__(self) -> Lock:
        import fcntl

        try:
            # No O_CREAT: `make_dir` creates the file; re-creating it here would race with
            # `delete` emptying the directory.
            self.fd = os.open(self.path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise RunncError(
                "container does not exist", where=os.path.basename(os.path.dirname(self.path))
            ) from None
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Store:
    """The state directory root given by --root."""

    def __init__(self, root: str) -> None:
        self.root = trusted_root(root)

    def dir(self, container_id: str) -> str:
        return os.path.join(self.root, check_id(container_id))

    def checked_dir(self, container_id: str) -> str:
        """The container's directory, once it is known to be ours (docs/state.md, rule 2)."""
        path = self.dir(container_id)
        check_own_dir(path, container_id)
        return path

    def delegate_root(self) -> str:
        return os.path.join(self.root, DELEGATE_DIR)

    def exists(self, container_id: str) -> bool:
        return os.path.lexists(self.dir(container_id))

    def make_dir(self, container_id: str) -> str:
        """Create the container's directory; refuses an ID that is taken (here or delegated)."""
        path = self.dir(container_id)
        if not os.path.isdir(self.root):
            # runc's mode: only we may look at which containers exist.
            os.makedirs(self.root, mode=0o700, exist_ok=True)
            self.root = trusted_root(self.root)
        if os.path.isdir(os.path.join(self.delegate_root(), container_id)):
            raise RunncError(
                "container with this ID already exists (delegated)", where=container_id
            )
        try:
            os.mkdir(path, 0o711)
        except FileExistsError:
            raise RunncError("container with this ID already exists", where=container_id) from None
        os.close(
            os.open(os.path.join(path, LOCK_FILE), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        )
        return path

    def load(self, container_id: str) -> ContainerState:
        path = os.path.join(self.checked_dir(container_id), STATE_FILE)
        try:
            text = _read_own_file(path, MAX_STATE_BYTES)
        except FileNotFoundError:
            raise RunncError(
                "state.json is missing (interrupted create?): `delete --force` removes it",
                where=container_id,
            ) from None
        except OSError as exc:
            raise RunncError(f"cannot read {path}: {exc.strerror}", where=container_id) from None
        except ValueError as exc:
            raise RunncError(
                f"refusing {path}: {exc}; `delete --force` removes it", where=container_id
            ) from None
        try:
            data = fastjson.loads(text)
        except (ValueError, RecursionError):  # nesting deeper than the parser's stack
            raise RunncError(
                f"corrupt state file {path}: `delete --force` removes it", where=container_id
            ) from None
        state = ContainerState.from_json(data, container_id)
        if state.id != container_id:
            raise RunncError(
                f"state file names another container ({state.id!r})", where=container_id
            )
        if state.rootfs_image is not None and os.path.basename(
            state.rootfs_image
        ) != rootfs_copy_name(self.root, container_id):
            # `delete` unlinks this path: only the one `create` derives for this container.
            raise RunncError("corrupt state: rootfsImage is not this container's", where=path)
        return state

    def save(self, state: ContainerState) -> None:
        """Atomic replace: readers see the old or the new file, never a partial one."""
        directory = self.dir(state.id)
        tmp = os.path.join(directory, f".{STATE_FILE}.{os.getpid()}")
        data = fastjson.dumps(state.to_json()).encode()
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(directory, STATE_FILE))

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(
            n for n in names if n != DELEGATE_DIR and os.path.isdir(os.path.join(self.root, n))
        )

    def remove(self, container_id: str) -> None:
        """Remove the directory and everything in it (files only: we never create subdirs)."""
        path = self.dir(container_id)
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            return
        for name in names:
            try:
                os.unlink(os.path.join(path, name))
            except IsADirectoryError:
                raise RunncError(
                    f"unexpected directory {name} in {path}", where=container_id
                ) from None
            except FileNotFoundError:
                pass
        try:
            os.rmdir(path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise RunncError(
                    f"cannot remove {path}: {exc.strerror}", where=container_id
                ) from None
