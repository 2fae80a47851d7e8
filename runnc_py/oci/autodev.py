"""Devices `create` attaches by itself: the container's root filesystem and its network.

Rules (for users in docs/oci.md):

* **rootfs**: with `org.runnc-py.rootfs=ext4`, or when the unikernel's manifest declares a
  block device named `org.runnc-py.rootfs.device` (default `rootfs`, the LKL convention) that
  no `org.runnc-py.block.NAME` annotation attaches, `create` makes an ext4 image of the
  bundle's rootfs (through the content cache, runnc_py.rootfs) and attaches the container's
  own copy as that device. `org.runnc-py.rootfs=none` turns the automatic case off. The copy
  lives on the cache's filesystem (`<cache root>/containers/`), never under /run (tmpfs: RAM,
  and no reflinks) and never in the bundle (it may be a read-only overlay).
* **network**: the manifest's network devices that no `org.runnc-py.net.NAME` attaches get the
  container namespace's interfaces, wired by the init once the engine's hooks have set the
  namespace up (runnc_py.net.handover). The guest's configuration kind is
  `org.runnc-py.net.config`, else `lkl-json` for an LKL image (its manifest has a block device
  `rootfs`), else `solo5-cmdline`.

`plan_auto_devices` is pure and runs before anything exists on the host; `build_rootfs` runs
in `create` before the init is forked; `wire_network` runs in the init.
"""

from __future__ import annotations

import os

from runnc_py.errors import RunncError
from runnc_py.oci.plan import PREFIX
from runnc_py.record import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from runnc_py.monitor.launch import LaunchRequest
    from runnc_py.net.cmdline import GuestLine
    from runnc_py.oci.mounts import EngineFile
    from runnc_py.oci.plan import UnikernelPlan
    from runnc_py.oci.spec import Spec
    from runnc_py.rootfs import ImageInfo
    from runnc_py.unikernel.manifest import Manifest

NET_CONFIG_KEY = PREFIX + "net.config"  # runnc_py.net.config.CONFIG_ANNOTATION (not imported)
CMDLINE_KEY = PREFIX + "cmdline"
ROOTFS_KEY = PREFIX + "rootfs"
ROOTFS_DEVICE_KEY = PREFIX + "rootfs.device"
ROOTFS_MODES = ("ext4", "none")
DEFAULT_ROOTFS_DEVICE = "rootfs"  # what LKL mounts as /
LKL_ROOTFS_DEVICE = "rootfs"
CONTAINERS_DIR = "containers"  # below the cache root: the per-container rootfs copies
# Stands in for a tap the init has not made yet, so `create` can check the whole request
# (every manifest device attached) before forking. Never opened: the init replaces it.
PENDING_TAP = "(wired at create)"
RESOLV_CONF = "/etc/resolv.conf"


class AutoDevices(FrozenRecord):
    """What `create` attaches besides the annotations' devices."""

    __slots__ = ("net_kind", "nets", "rootfs_device", "rootfs_headroom", "rootfs_size")
    rootfs_device: str | None  # block device to get the rootfs image
    rootfs_size: int | None
    rootfs_headroom: int | None
    nets: tuple[str, ...]  # network devices to wire in the init, manifest order
    net_kind: str  # guest configuration when wiring happens

    def __init__(
        self,
        rootfs_device: str | None = None,
        rootfs_size: int | None = None,
        rootfs_headroom: int | None = None,
        nets: tuple[str, ...] = (),
        net_kind: str = "none",
    ) -> None:
        self._set(
            rootfs_device=rootfs_device,
            rootfs_size=rootfs_size,
            rootfs_headroom=rootfs_headroom,
            nets=nets,
            net_kind=net_kind,
        )

    def with_rootfs(self, req: LaunchRequest, image: str | None) -> LaunchRequest:
        if self.rootfs_device is None or image is None:
            return req
        return req.replace(blocks={**req.blocks, self.rootfs_device: image})

    def check_request(self, req: LaunchRequest) -> LaunchRequest:
        """REQ with the still-unwired network devices attached to placeholders (for check)."""
        if not self.nets:
            return req
        return req.replace(nets={**req.nets, **dict.fromkeys(self.nets, PENDING_TAP)})


def plan_auto_devices(
    annotations: Mapping[str, str], manifest: Manifest, req: LaunchRequest
) -> AutoDevices:
    """Which devices `create` attaches itself (see the module docstring). Pure.

    Imports what a case needs only when it arises: most containers have neither.
    """
    from runnc_py.net.handover import free_net_devices
    from runnc_py.unikernel.manifest import DeviceType

    mode = annotations.get(ROOTFS_KEY)
    if mode is not None and mode not in ROOTFS_MODES:
        raise RunncError(
            f"unknown rootfs kind {mode!r} (known: {', '.join(ROOTFS_MODES)})",
            where=f"annotation {ROOTFS_KEY}",
        )
    device = annotations.get(ROOTFS_DEVICE_KEY, DEFAULT_ROOTFS_DEVICE)
    entry = manifest.find(device)
    rootfs: str | None = None
    if mode == "ext4":
        where = (
            f"annotation {ROOTFS_DEVICE_KEY}"
            if ROOTFS_DEVICE_KEY in annotations
            else (f"annotation {ROOTFS_KEY}")
        )
        if entry is None or entry.type != DeviceType.BLOCK_BASIC:
            blocks = [e.name for e in manifest.devices() if e.type == DeviceType.BLOCK_BASIC]
            raise RunncError(
                f"the unikernel has no block device {device!r} for the rootfs "
                f"(its block devices: {', '.join(blocks) or 'none'})",
                where=where,
            )
        if device in req.blocks:
            raise RunncError(
                f"block device {device!r} is attached both by {PREFIX}block.{device} and as "
                "the rootfs",
                where=where,
            )
        rootfs = device
    elif (
        mode is None
        and entry is not None
        and entry.type == DeviceType.BLOCK_BASIC
        and device not in req.blocks
    ):
        rootfs = device
    size = headroom = None
    if rootfs is not None:
        from runnc_py.rootfs.size import sizes_from_annotations

        size, headroom = sizes_from_annotations(annotations)
    nets = free_net_devices(manifest, req.nets)
    kind = "none"
    # Checked whenever given, even if nothing gets wired: a typo must not wait for a network.
    if nets or NET_CONFIG_KEY in annotations:
        from runnc_py.net.config import config_kind

        lkl = manifest.find(LKL_ROOTFS_DEVICE)
        is_lkl = lkl is not None and lkl.type == DeviceType.BLOCK_BASIC
        kind = config_kind(annotations, "lkl-json" if is_lkl else "solo5-cmdline")
    return AutoDevices(
        rootfs_device=rootfs,
        rootfs_size=size,
        rootfs_headroom=headroom,
        nets=nets,
        net_kind=kind,
    )


# ---------------------------------------------------------------------------- rootfs


def rootfs_copy_path(state_root: str, container_id: str) -> str:
    """Where the container's own rootfs image goes: `<cache root>/containers/<name>` (the
    name: runnc_py.oci.state.rootfs_copy_name)."""
    from runnc_py import cachedir
    from runnc_py.oci.state import rootfs_copy_name

    name = rootfs_copy_name(state_root, container_id)
    return os.path.join(cachedir.cache_root(), CONTAINERS_DIR, name)


def build_rootfs(
    source: str, dest: str, auto: AutoDevices, engine_files: Sequence[EngineFile] = ()
) -> ImageInfo:
    """The container's copy of the cached image of SOURCE (the bundle rootfs) at DEST, with
    the files the engine manages written in (runnc_py.oci.mounts)."""
    from runnc_py import cachedir
    from runnc_py.rootfs import container_image

    directory = os.path.dirname(dest)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        st = os.stat(directory)
    except OSError as exc:
        raise RunncError(f"cannot create: {exc.strerror}", where=directory) from None
    # The init opens the copy as root before dropping privileges: nobody else may swap it.
    if not cachedir.trusted(st):
        raise RunncError(
            "directory of container images must be ours and not group/other-writable",
            where=directory,
        )
    info = container_image(source, dest, size=auto.rootfs_size, headroom=auto.rootfs_headroom)
    if engine_files:
        from runnc_py.oci.mounts import write_engine_files

        write_engine_files(dest, engine_files, source)
    return info


def remove_rootfs_copy(path: str, creator: int) -> None:
    """Remove a container's rootfs copy and the temp file of a `create` killed mid-copy."""
    from pathlib import Path

    from runnc_py.rootfs.copy import temp_path

    if not (path.endswith(".ext4") and os.path.basename(os.path.dirname(path)) == CONTAINERS_DIR):
        # It comes from state.json: only ever unlink what `create` could have named.
        raise RunncError("not a container rootfs image; left alone", where=path)
    for victim in (path, str(temp_path(Path(path), creator))):
        try:
            os.unlink(victim)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise RunncError(f"cannot remove: {exc.strerror}", where=victim) from None


# ---------------------------------------------------------------------------- network


class NetworkJob(FrozenRecord):
    """What the init needs to hand the container's network to the guest."""

    __slots__ = (
        "group",
        "kind",
        "line",
        "names",
        "netns",
        "owner",
        "resolv_conf",
        "rootfs",
        "state_dir",
    )
    names: tuple[str, ...]  # free manifest network devices
    kind: str
    state_dir: str  # where net.json goes
    netns: str | None  # the namespace path from config.json; None: the init's own
    resolv_conf: str | None  # the engine's (a host file); None: the rootfs's own, if any
    rootfs: str | None  # where the rootfs's own /etc/resolv.conf is looked up
    owner: int | None
    group: int | None
    line: GuestLine | None  # the guest's words before encoding (None: the request's)

    def __init__(
        self,
        names: tuple[str, ...],
        kind: str,
        state_dir: str,
        netns: str | None = None,
        resolv_conf: str | None = None,
        owner: int | None = None,
        group: int | None = None,
        line: GuestLine | None = None,
        rootfs: str | None = None,
    ) -> None:
        self._set(
            names=names,
            kind=kind,
            state_dir=state_dir,
            netns=netns,
            resolv_conf=resolv_conf,
            rootfs=rootfs,
            owner=owner,
            group=group,
            line=line,
        )


def guest_line(spec: Spec, plan: UnikernelPlan | None = None) -> GuestLine:
    """What `create` asks the guest to see (runnc_py.net.cmdline encodes it per family):
    `process.env` unless `org.runnc-py.cmdline=args` says not to. PLAN brings the annotations
    in effect (the image's settings included) and an urunc image's fixed arguments."""
    from runnc_py.net.cmdline import GuestLine
    from runnc_py.oci.plan import guest_argv

    notes = spec.annotations if plan is None else plan.annotations
    mode = notes.get(CMDLINE_KEY)
    program, args = guest_argv(spec, notes, None if plan is None else plan.fixed_args)
    env = () if mode == "args" else tuple(spec.env)
    return GuestLine(args=tuple(args), env=env, program=program, with_env=mode == "env")


def engine_resolv_conf(spec: Spec) -> str | None:
    """The resolv.conf the engine gives the container: the source of the bind mount onto
    /etc/resolv.conf (Docker and podman write their own per container), else None, and the
    init reads the rootfs's own (rootfs_resolv_conf)."""
    for mount in reversed(spec.raw.get("mounts") or ()):
        if not isinstance(mount, dict) or mount.get("destination") != RESOLV_CONF:
            continue
        source = mount.get("source")
        if isinstance(source, str) and os.path.isabs(source) and os.path.isfile(source):
            return source
    return None


def rootfs_resolv_conf(root: str) -> int | None:
    """The rootfs's /etc/resolv.conf opened for reading, resolved inside the rootfs
    (openat2, oci/rootpath.py) when it is read: a hook that swapped it for a symlink since
    `create` planned cannot lead the read out of the rootfs. None when there is none."""
    from runnc_py.oci.rootpath import open_regular_file, open_root

    try:
        root_fd = open_root(root, where=RESOLV_CONF)
    except RunncError:
        return None
    try:
        return open_regular_file(root_fd, RESOLV_CONF, os.O_RDONLY, where=RESOLV_CONF)
    except RunncError:
        return None
    finally:
        os.close(root_fd)


def network_job(
    spec: Spec,
    auto: AutoDevices,
    state_dir: str,
    owner: int,
    group: int,
    plan: UnikernelPlan | None = None,
) -> NetworkJob | None:
    if not auto.nets:
        return None
    from runnc_py.net.cmdline import guest_words

    line = guest_line(spec, plan)
    # Words the guest's parser cannot carry are refused now, before the init and its hooks
    # run; the init encodes them again with the network's configuration.
    guest_words(auto.net_kind, line)
    paths = [ns.path for ns in spec.namespaces if ns.type == "network" and ns.path]
    return NetworkJob(
        names=auto.nets,
        kind=auto.net_kind,
        state_dir=state_dir,
        netns=paths[-1] if paths else None,
        resolv_conf=engine_resolv_conf(spec),
        rootfs=spec.root_path,
        owner=owner,
        group=group,
        line=line,
    )


# What wire_network imports, net/handover.py's own lazy imports included (oci/init.py loads
# them while the init waits for "go").
NETWORK_MODULES = (
    "runnc_py.net.handover",
    "runnc_py.net.config",
    "runnc_py.net.read",
    "runnc_py.net.store",
    "runnc_py.net.wiring",
)


def wire_network(job: NetworkJob, req: LaunchRequest) -> LaunchRequest:
    """In the init (inside the container's netns): wire, record net.json, return the request.

    The record is saved before anything else can fail, so `delete` (or the failed create's
    teardown) can always unwire; if saving fails, this unwires itself.
    """
    from runnc_py.net.handover import has_interfaces

    if not has_interfaces():
        raise RunncError(
            f"the unikernel's network device(s) {', '.join(job.names)} have nothing to attach: "
            f"the container's network namespace has only lo (give the container a network, or "
            f"attach a tap with {PREFIX}net.NAME)",
            where="network",
        )
    from runnc_py.net import store
    from runnc_py.net.handover import hand_over
    from runnc_py.net.wiring import unwire

    resolv_fd = None
    if job.resolv_conf is None and job.rootfs is not None:
        resolv_fd = rootfs_resolv_conf(job.rootfs)
    try:
        handed = hand_over(
            req,
            job.names,
            kind=job.kind,
            line=job.line,
            # A path another process can open later: `delete` unwires through it.
            netns=job.netns or f"/proc/{os.getpid()}/ns/net",
            resolv_conf=job.resolv_conf if resolv_fd is None else f"/proc/self/fd/{resolv_fd}",
            owner=job.owner,
            group=job.group,
            state_dir=job.state_dir,
        )
    finally:
        if resolv_fd is not None:
            os.close(resolv_fd)
    try:
        store.save(job.state_dir, handed.record)
    except BaseException:
        if handed.record.wired is not None:
            unwire(handed.record.wired)
        raise
    return handed.request
