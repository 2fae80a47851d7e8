"""From a bundle's spec to what the launcher needs (`UnikernelPlan`). Reads files, changes nothing.

Rules (documented for users in docs/oci.md):
- The unikernel is `process.args[0]` (or the `org.runnc-py.unikernel` annotation), a path
  inside the rootfs resolved as if the rootfs were `/`: `..` stops at the rootfs, absolute
  symlinks restart at the rootfs, so nothing outside the rootfs can be named. It counts as a
  unikernel when it ends in `.spt`, `.hvt` or `.nabla`, or is an ELF carrying Solo5's ABI note.
- The guest command line is `process.args[1:]`; `process.env` is left out (Solo5 guests have
  no environment and Docker always injects PATH/HOSTNAME) unless `org.runnc-py.cmdline=env`
  asks for the Nabla/LKL form `K=V ... -- ARGS`.
- Guest memory: `org.runnc-py.mem` (MiB) wins; else `linux.resources.memory.limit` minus
  HOST_OVERHEAD, rounded down to whole MiB; else the monitor's default (512 MiB).
"""

from __future__ import annotations

import os
import stat
import struct

from runnc_py.errors import RunncError
from runnc_py.oci.spec import Spec
from runnc_py.record import FrozenRecord
from runnc_py.strictnum import decimal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from runnc_py.monitor.launch import LaunchRequest

PREFIX = "org.runnc-py."
UNIKERNEL_SUFFIXES = (".spt", ".hvt", ".nabla")
MIB = 1 << 20
# Host memory the guest's process needs besides guest RAM once Python is gone (page tables,
# the monitor's trampoline, kernel bookkeeping): measured ~1.4 MB for solo5-spt, rounded up
# generously so the cgroup's OOM killer never fires on a guest that stays inside its RAM.
HOST_OVERHEAD = 8 * MIB
MIN_GUEST_MB = 2
# The largest guest an spt launcher can map: guest memory starts at 64 KiB of the host process
# and must stay below where the kernel puts the process's own mappings (PIE binaries at
# ~85 TiB in x86-64's 128 TiB user space). Checked at `create`, so a typo never reaches
# `start` (whose C side takes a uint64 and would overflow beyond 2**44 MiB).
MAX_GUEST_MB = 64 << 20  # 64 TiB
MAX_SECTOR_SIZE = 1 << 20
MAX_SYMLINKS = 40  # as the kernel's path walk
CMDLINE_MODES = ("args", "env")
# Annotation keys: fixed ones, and prefixes followed by a device name.
# `net.config` and `rootfs.*` are read by net/config.py and oci/autodev.py; `net.config` is
# therefore no net device's name.
FIXED_KEYS = (
    "unikernel",
    "monitor",
    "mem",
    "cmdline",
    "exec-heap",
    "net.config",
    "rootfs",
    "rootfs.device",
    "rootfs.size",
    "rootfs.headroom",
    "mounts",  # read by oci/mounts.py
    "image",  # runnc_py.image.settings.MARK_LABEL: marks an image built by runnc-py, no setting
)
DEVICE_KEYS = ("net.", "net-mac.", "block.", "block-sector-size.")


class NotAUnikernel(RunncError):
    """The bundle's program is no unikernel: an error, or the cue to delegate (--delegate)."""


class UnikernelPlan(FrozenRecord):
    """Everything `LaunchRequest` needs, in host terms."""

    __slots__ = (
        *("unikernel", "args", "mem_mb", "nets", "net_macs", "blocks", "block_sector_sizes"),
        *("monitor", "exec_heap", "unikernel_fd", "block_fds", "annotations", "fixed_args"),
    )
    unikernel: str
    args: tuple[str, ...]
    mem_mb: int | None
    nets: Mapping[str, str]
    net_macs: Mapping[str, str]
    blocks: Mapping[str, str]
    block_sector_sizes: Mapping[str, int]
    monitor: str
    exec_heap: bool
    # Open fds of the files above, from plan_from_spec (see oci/rootpath.py): None/absent for
    # plans built by hand, which then name host paths the caller trusts.
    unikernel_fd: int | None
    block_fds: Mapping[str, int]
    # config.json's annotations over the image's own settings (/runnc-py.json, urunc's keys:
    # runnc_py.image.readback): what autodev and the mounts plan must read too.
    annotations: Mapping[str, str]
    # The guest arguments an urunc image fixes (its `cmdline`), which replace process.args.
    fixed_args: tuple[str, ...] | None

    def __init__(
        self,
        unikernel: str,
        args: tuple[str, ...] = (),
        mem_mb: int | None = None,
        nets: Mapping[str, str] | None = None,
        net_macs: Mapping[str, str] | None = None,
        blocks: Mapping[str, str] | None = None,
        block_sector_sizes: Mapping[str, int] | None = None,
        monitor: str = "auto",
        exec_heap: bool = False,
        unikernel_fd: int | None = None,
        block_fds: Mapping[str, int] | None = None,
        annotations: Mapping[str, str] | None = None,
        fixed_args: tuple[str, ...] | None = None,
    ) -> None:
        self._set(
            unikernel=unikernel,
            args=args,
            mem_mb=mem_mb,
            nets={} if nets is None else nets,
            net_macs={} if net_macs is None else net_macs,
            blocks={} if blocks is None else blocks,
            block_sector_sizes={} if block_sector_sizes is None else block_sector_sizes,
            monitor=monitor,
            exec_heap=exec_heap,
            unikernel_fd=unikernel_fd,
            block_fds={} if block_fds is None else block_fds,
            annotations={} if annotations is None else annotations,
            fixed_args=fixed_args,
        )

    def fds(self) -> list[int]:
        """The open files the plan holds: the init must keep them (oci/fds.py)."""
        return [fd for fd in (self.unikernel_fd, *self.block_fds.values()) if fd is not None]

    def close(self) -> None:
        """Close the fds the plan holds (the init keeps its own copies across fork)."""
        for fd in (self.unikernel_fd, *self.block_fds.values()):
            if fd is not None:
                try:  # noqa: SIM105 (contextlib costs create ~2 ms)
                    os.close(fd)
                except OSError:
                    pass

    def request(self) -> LaunchRequest:
        from runnc_py.monitor.launch import LaunchRequest

        return LaunchRequest(
            unikernel=self.unikernel,
            args=self.args,
            mem_mb=self.mem_mb,
            nets=dict(self.nets),
            net_macs=dict(self.net_macs),
            blocks=dict(self.blocks),
            block_sector_sizes=dict(self.block_sector_sizes),
            monitor=self.monitor,
            x_exec_heap=self.exec_heap,
            unikernel_fd=self.unikernel_fd,
            block_fds=dict(self.block_fds),
        )


# ---------------------------------------------------------------------------- paths


def resolve_in_root(root: str, path: str, *, where: str) -> str:
    """The host path of PATH inside ROOT, following symlinks as if ROOT were `/`.

    Raises RunncError when a component is missing or not a directory, or on a symlink loop.
    The result always lies inside ROOT (no `..` or symlink can climb out).
    """
    root = os.path.realpath(root)
    todo = [p for p in reversed(path.split("/")) if p not in ("", ".")]
    current: list[str] = []
    links = 0
    while todo:
        part = todo.pop()
        if part == "..":
            if current:
                current.pop()
            continue
        candidate = os.path.join(root, *current, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            raise RunncError(f"{path} not found in the rootfs {root}", where=where) from None
        except OSError as exc:
            raise RunncError(
                f"cannot resolve {path} in the rootfs: {exc.strerror}", where=where
            ) from None
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise RunncError(f"too many symbolic links resolving {path}", where=where)
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = []
            todo.extend(p for p in reversed(target.split("/")) if p not in ("", "."))
            continue
        if todo and not stat.S_ISDIR(st.st_mode):
            raise RunncError(
                f"{path}: {'/'.join([*current, part])} is not a directory", where=where
            )
        current.append(part)
    return os.path.join(root, *current)


def _in_rootfs(root: str, cwd: str, path: str, *, where: str) -> str:
    return resolve_in_root(root, path if path.startswith("/") else f"{cwd}/{path}", where=where)


# ---------------------------------------------------------------------------- unikernel sniffing

_PT_NOTE = 4
_MAX_NOTE_BYTES = 64 * 1024
_MAX_PHNUM = 64


def has_solo5_abi_note(path: str) -> bool:
    """True when PATH is a 64-bit little-endian ELF with a Solo5 ABI1 note in a PT_NOTE segment."""
    from runnc_py.unikernel.notes import ABI1_NOTE_TYPE, iter_notes

    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return False
            (phoff,) = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            if phentsize < 56 or phnum > _MAX_PHNUM:
                return False
            f.seek(phoff)
            table = f.read(phentsize * phnum)
            for i in range(phnum):
                entry = table[i * phentsize : i * phentsize + 56]
                if len(entry) < 56:
                    return False
                (p_type,) = struct.unpack_from("<I", entry, 0)
                (p_offset,) = struct.unpack_from("<Q", entry, 8)
                (p_filesz,) = struct.unpack_from("<Q", entry, 32)
                if p_type != _PT_NOTE or p_filesz > _MAX_NOTE_BYTES:
                    continue
                f.seek(p_offset)
                try:
                    if any(
                        n.is_solo5 and n.type == ABI1_NOTE_TYPE
                        for n in iter_notes(f.read(p_filesz))
                    ):
                        return True
                except ValueError:
                    continue
    except OSError:
        return False
    return False


def is_unikernel(path: str) -> bool:
    return path.endswith(UNIKERNEL_SUFFIXES) or has_solo5_abi_note(path)


# ---------------------------------------------------------------------------- memory, cmdline


def guest_mem_mb(annotation: str | None, limit: int | None) -> int | None:
    """The guest's memory in MiB (None: the monitor's default). See the module docstring."""
    if annotation is not None:
        return decimal(
            annotation,
            where=f"annotation {PREFIX}mem",
            low=MIN_GUEST_MB,
            high=MAX_GUEST_MB,
            unit="MiB",
        )
    if limit is None:
        return None
    mb = (limit - HOST_OVERHEAD) // MIB
    if mb > MAX_GUEST_MB:
        raise RunncError(
            f"{limit} bytes would give the guest more than the {MAX_GUEST_MB} MiB an spt "
            f"guest can map; set {PREFIX}mem (MiB) for the guest",
            where="config.json: linux.resources.memory.limit",
        )
    if mb < MIN_GUEST_MB:
        raise RunncError(
            f"{limit} bytes leaves {max(mb, 0)} MiB for the guest after {HOST_OVERHEAD // MIB} MiB "
            f"of host overhead; the minimum is {MIN_GUEST_MB + HOST_OVERHEAD // MIB} MiB",
            where="config.json: linux.resources.memory.limit",
        )
    return mb


def guest_args(
    args: tuple[str, ...],
    env: tuple[str, ...],
    mode: str | None,
    *,
    kind: str | None = None,
    program: str = "rumprun",
) -> tuple[str, ...]:
    """The guest's command-line words while no network is handed over (the init encodes them
    again with the network's configuration when it wires one): MODE is
    `org.runnc-py.cmdline` (None, `args` or `env`), KIND `org.runnc-py.net.config` if given.
    Without either, the arguments as solo5-spt passes them; else encoded for the guest family
    of KIND (runnc_py.net.cmdline), `env` meaning the LKL form for plain Solo5 guests."""
    if mode is not None and mode not in CMDLINE_MODES:
        raise RunncError(
            f"unknown mode {mode!r} (known: {', '.join(CMDLINE_MODES)})",
            where=f"annotation {PREFIX}cmdline",
        )
    if kind is None and mode != "env":
        return args
    from runnc_py.net.cmdline import GuestLine, guest_words
    from runnc_py.net.config import CONFIG_ANNOTATION, config_kind

    line = GuestLine(
        args=args, env=() if mode == "args" else env, program=program, with_env=mode == "env"
    )
    return guest_words(config_kind({CONFIG_ANNOTATION: kind} if kind else {}), line)


def guest_argv(
    spec: Spec, notes: Mapping[str, str] | None = None, fixed: tuple[str, ...] | None = None
) -> tuple[str, tuple[str, ...]]:
    """(program name, guest arguments) of SPEC: `process.args` without the unikernel, which
    is `args[0]` unless `org.runnc-py.unikernel` names it and `args[0]` does not repeat it.
    NOTES: the annotations in effect (the image's settings included; default the spec's);
    FIXED: arguments an urunc image fixes instead of process.args."""
    named = (spec.annotations if notes is None else notes).get(PREFIX + "unikernel")
    if fixed is not None:
        return named or spec.args[0], fixed
    if named is None:
        return spec.args[0], spec.args[1:]
    same = spec.args[0] in (named, os.path.basename(named))
    return named, spec.args[1:] if same else spec.args


# ---------------------------------------------------------------------------- annotations


def _check_keys(annotations: Mapping[str, str]) -> None:
    """Refuse unknown org.runnc-py.* keys: a typo would otherwise be silently ignored."""
    for key in annotations:
        if not key.startswith(PREFIX):
            continue
        rest = key[len(PREFIX) :]
        if rest in FIXED_KEYS:
            continue
        if any(rest.startswith(p) and len(rest) > len(p) for p in DEVICE_KEYS):
            continue
        raise RunncError(
            f"unknown runnc-py annotation {key!r} (see docs/oci.md)", where="annotations"
        )


def _devices(annotations: Mapping[str, str], prefix: str) -> dict[str, str]:
    full = PREFIX + prefix
    return {
        k[len(full) :]: v
        for k, v in annotations.items()
        if k.startswith(full) and k[len(PREFIX) :] not in FIXED_KEYS
    }


def _flag(value: str | None, key: str) -> bool:
    if value is None:
        return False
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise RunncError(f"must be true or false, got {value!r}", where=f"annotation {PREFIX}{key}")


def plan_from_spec(spec: Spec) -> UnikernelPlan:
    """The launch plan for SPEC; raises NotAUnikernel when its program is no unikernel.

    The unikernel and the block images are opened here, once (oci/rootpath.py): the plan
    holds their fds, the init inherits them, nothing opens those paths again. The caller
    closes them (`UnikernelPlan.close`); on failure nothing stays open.
    """
    from runnc_py.image.readback import effective_settings
    from runnc_py.oci.rootpath import open_root

    _check_keys(spec.annotations)
    root = spec.root_path
    if not os.path.isdir(root):
        raise RunncError(f"rootfs {root} is not a directory", where="config.json: root.path")
    cwd = spec.process.get("cwd") or "/"
    root_fd = open_root(root, where="config.json: root.path")
    opened: list[int] = []
    try:
        image = effective_settings(spec.annotations, root_fd)
        notes = image.annotations
        _check_keys(notes)
        host, unikernel_fd, args = _open_unikernel(spec, notes, root_fd, cwd)
        opened.append(unikernel_fd)
        if image.cmdline is not None:
            args = image.cmdline  # an urunc image's fixed command line
        blocks: dict[str, str] = {}
        block_fds: dict[str, int] = {}
        for name, path in _devices(notes, "block.").items():
            fd = _open_in_rootfs(
                root_fd, cwd, path, os.O_RDWR, where=f"annotation {PREFIX}block.{name}"
            )
            opened.append(fd)
            blocks[name], block_fds[name] = _host_path(fd), fd
        sector_sizes: dict[str, int] = {}
        for name, text in _devices(notes, "block-sector-size.").items():
            sector_sizes[name] = decimal(
                text,
                where=f"annotation {PREFIX}block-sector-size.{name}",
                low=1,
                high=MAX_SECTOR_SIZE,
                unit="bytes",
            )
        return UnikernelPlan(
            unikernel=host,
            args=guest_args(
                args,
                spec.env,
                notes.get(PREFIX + "cmdline"),
                kind=notes.get(PREFIX + "net.config"),
                program=guest_argv(spec, notes, image.cmdline)[0],
            ),
            mem_mb=guest_mem_mb(notes.get(PREFIX + "mem"), spec.memory_limit),
            nets=_devices(notes, "net."),
            net_macs=_devices(notes, "net-mac."),
            blocks=blocks,
            block_sector_sizes=sector_sizes,
            monitor=notes.get(PREFIX + "monitor", "auto"),
            exec_heap=_flag(notes.get(PREFIX + "exec-heap"), "exec-heap"),
            unikernel_fd=unikernel_fd,
            block_fds=block_fds,
            annotations=notes,
            fixed_args=image.cmdline,
        )
    except BaseException:
        for fd in opened:
            os.close(fd)
        raise
    finally:
        os.close(root_fd)


def _open_in_rootfs(root_fd: int, cwd: str, path: str, flags: int, *, where: str) -> int:
    from runnc_py.oci.rootpath import open_regular_file

    full = path if path.startswith("/") else f"{cwd}/{path}"
    return open_regular_file(root_fd, full, flags, where=where)


def _host_path(fd: int) -> str:
    from runnc_py.oci.rootpath import host_path

    return host_path(fd)


def _open_unikernel(
    spec: Spec, notes: Mapping[str, str], root_fd: int, cwd: str
) -> tuple[str, int, tuple[str, ...]]:
    """(host path for messages, fd open for reading, guest arguments) of the unikernel."""
    named = notes.get(PREFIX + "unikernel")
    if named is not None:
        where = f"annotation {PREFIX}unikernel"
        fd = _open_in_rootfs(root_fd, cwd, named, os.O_RDONLY, where=where)
        # `args[0]` repeating the unikernel is the program name, not a guest argument.
        same = spec.args[0] in (named, os.path.basename(named))
        return _host_path(fd), fd, spec.args[1:] if same else spec.args
    where = "config.json: process.args[0]"
    first = spec.args[0]
    try:
        fd = _open_in_rootfs(root_fd, cwd, first, os.O_RDONLY, where=where)
    except RunncError as exc:
        if first.endswith(UNIKERNEL_SUFFIXES):
            raise
        raise NotAUnikernel(f"{first!r} is not a unikernel ({exc.message})", where=where) from None
    host = _host_path(fd)
    # The suffix of the name or of the file it resolved to, else the ELF note read from the fd.
    if not (host.endswith(UNIKERNEL_SUFFIXES) or has_solo5_abi_note(f"/proc/self/fd/{fd}")):
        os.close(fd)
        raise NotAUnikernel(
            f"{first!r} is not a unikernel (no .spt/.hvt/.nabla suffix, no Solo5 ABI note)",
            where=where,
        )
    return host, fd, spec.args[1:]
