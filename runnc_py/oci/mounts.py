"""config.json `mounts` for a unikernel: what reaches the guest, what is refused.

A unikernel has no view of the host's filesystem: a mount cannot be made for it. Rules (for
users in docs/engines.md):

* The files the engine manages for every container, bind-mounted onto `/etc/resolv.conf`,
  `/etc/hosts` and `/etc/hostname`, are *written into the container's own ext4 image* when
  the guest gets one (an LKL guest: runnc_py.oci.autodev), with debugfs and without mounting
  anything. A guest without a root filesystem has nowhere to read them from; its network
  configuration still takes DNS from the engine's resolv.conf (autodev.engine_resolv_conf),
  else from the rootfs's own, read inside the rootfs (autodev.rootfs_resolv_conf).
* Other bind mounts the engine adds for its own plumbing (podman's `/run/.containerenv`, the
  shm of a pod, Kubernetes' termination log and service-account token, ...) carry nothing a
  unikernel could use and are left out.
* Any other bind mount (`docker run -v`, a volume, a CRI mount) would silently not be there:
  `create` refuses it with one line naming the mount, unless the annotation
  `org.runnc-py.mounts=ignore` says the guest does without it.
* Kernel filesystems (proc, sysfs, tmpfs, devpts, mqueue, cgroup) are not bind mounts and are
  ignored: a Solo5 guest has no such thing, an LKL guest mounts its own.

`plan_mounts` is pure (reads the spec only); `write_engine_files` runs debugfs on the image.
"""

from __future__ import annotations

import os

from runnc_py.errors import RunncError

# Nothing heavier than os on `create`'s path (no dataclasses, typing or collections.abc:
# see runnc_py/record.py and tests/unit/test_import_budget.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

PREFIX = "org.runnc-py."  # runnc_py.oci.plan.PREFIX (not imported: plan imports this module)
MOUNTS_KEY = PREFIX + "mounts"
MOUNTS_MODES = ("refuse", "ignore")
ENGINE_FILES = ("/etc/resolv.conf", "/etc/hosts", "/etc/hostname")
# Bind mounts engines add to every container for their own use, never the user's data.
ENGINE_PLUMBING = (
    "/dev/shm",  # podman's and a CRI pod's shared memory
    "/dev/termination-log",  # kubelet
    "/run/.containerenv",  # podman
    "/run/secrets",  # podman's mounts.conf
    "/var/run/secrets/kubernetes.io/serviceaccount",  # kubelet's token for every pod
    "/sbin/docker-init",  # docker run --init (its args[0] is then no unikernel anyway)
)
BIND_OPTIONS = ("bind", "rbind")


class EngineFile:
    """A file the engine manages, to be written into the guest's root filesystem image."""

    __slots__ = ("destination", "source")

    def __init__(self, source: str, destination: str) -> None:
        self.source = source  # host path (the engine's per-container copy)
        self.destination = destination  # absolute path inside the image: one of ENGINE_FILES

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EngineFile):
            return NotImplemented
        return (self.source, self.destination) == (other.source, other.destination)

    def __hash__(self) -> int:
        return hash((self.source, self.destination))

    def __repr__(self) -> str:
        return f"EngineFile({self.source!r}, {self.destination!r})"


def is_bind(mount: Mapping[str, object]) -> bool:
    options = mount.get("options") or ()
    return mount.get("type") == "bind" or (
        isinstance(options, (list, tuple)) and any(o in BIND_OPTIONS for o in options)
    )


def _mode(annotations: Mapping[str, str]) -> str:
    mode = annotations.get(MOUNTS_KEY, "refuse")
    if mode not in MOUNTS_MODES:
        raise RunncError(
            f"unknown mode {mode!r} (known: {', '.join(MOUNTS_MODES)})",
            where=f"annotation {MOUNTS_KEY}",
        )
    return mode


def plan_mounts(mounts: Sequence[object], annotations: Mapping[str, str]) -> tuple[EngineFile, ...]:
    """The engine files among MOUNTS (last mount of a destination wins, as the kernel's
    stacking would); refuses a bind mount the guest cannot see (module docstring). Pure."""
    refuse = _mode(annotations) == "refuse"
    files: dict[str, EngineFile] = {}
    for i, mount in enumerate(mounts):
        if not isinstance(mount, dict) or not is_bind(mount):  # config.json: JSON objects
            continue
        destination = os.path.normpath(str(mount.get("destination") or "/"))
        source = mount.get("source")
        if destination in ENGINE_FILES:
            if isinstance(source, str) and os.path.isabs(source):
                files[destination] = EngineFile(source, destination)
            continue
        if destination in ENGINE_PLUMBING or not refuse:
            continue
        raise RunncError(
            f"bind mount {source} -> {destination} cannot reach a unikernel (it has no host "
            f"filesystem); drop the mount, or set annotation {MOUNTS_KEY}=ignore",
            where=f"config.json: mounts[{i}]",
        )
    return tuple(files.values())


def _quote(path: str) -> str:
    from runnc_py.rootfs.paths import debugfs_quote

    return debugfs_quote(path, where=path)


def debugfs_commands(files: Sequence[EngineFile], rootfs: str) -> str:
    """debugfs commands writing FILES into an image made from the directory ROOTFS. Pure but
    for looking at ROOTFS: the image holds the same tree, so what exists there exists in it."""
    lines: list[str] = []
    made: set[str] = set()
    for f in files:
        parent, name = os.path.split(f.destination)
        host_parent = os.path.join(rootfs, parent.lstrip("/"))
        if os.path.islink(host_parent) or (
            os.path.lexists(host_parent) and not os.path.isdir(host_parent)
        ):
            raise RunncError(
                f"{parent} in the rootfs is not a directory: cannot place {f.destination}",
                where=f"mount {f.destination}",
            )
        if not os.path.lexists(host_parent) and parent not in made:
            lines.append(f"mkdir {_quote(parent)}")
            made.add(parent)
        lines.append(f"cd {_quote(parent)}")
        if os.path.lexists(os.path.join(host_parent, name)):
            lines.append(f"rm {_quote(name)}")
        lines.append(f"write {_quote(f.source)} {_quote(name)}")
    return "\n".join(lines) + "\n"


def write_engine_files(image: str, files: Sequence[EngineFile], rootfs: str) -> None:
    """Write FILES into the ext4 IMAGE (the container's own copy of ROOTFS), no mount."""
    if not files:
        return
    import subprocess  # only here: `create` of a guest without a rootfs never needs it

    for f in files:
        if not os.path.isfile(f.source):
            raise RunncError("the engine's file is missing", where=f"mount {f.destination}")
    try:
        done = subprocess.run(
            ["debugfs", "-w", "-f", "-", image],
            input=debugfs_commands(files, rootfs),
            capture_output=True,
            text=True,
            errors="replace",
        )
    except FileNotFoundError:
        raise RunncError("debugfs not found (apt-get install e2fsprogs)", where=image) from None
    # debugfs exits 0 whatever its commands did; every stderr line but its banner is a failure.
    errors = [
        line
        for line in done.stderr.splitlines()
        if line.strip() and not line.startswith("debugfs ")
    ]
    if done.returncode != 0 or errors:
        raise RunncError(
            f"cannot write the engine's files into the rootfs image: "
            f"{errors[0] if errors else f'debugfs exit {done.returncode}'}",
            where=image,
        )
