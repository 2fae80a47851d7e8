"""From a launch request to a running guest: validate, open devices, compile the filter, boot.

`check` validates without side effects (used by `create` to fail early), `prepare` does
everything that can still fail with a clear message (and cleans up after itself when it does),
and `boot` hands the prepared plan to the C launcher, which turns this very process into the
guest. Callers may drop privileges between `prepare` and `boot`: the devices are open by then.
"""

from __future__ import annotations

import os
import sys

from runnc_py.errors import RunncError
from runnc_py.monitor.devices import OpenBlock, OpenNet, open_block, open_net
from runnc_py.record import FrozenRecord, Record
from runnc_py.unikernel.cache import load_unikernel_cached
from runnc_py.unikernel.elf import Target

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, NoReturn, TypeAlias

    from runnc_py.monitor.hvt import PreparedHvt
    from runnc_py.sandbox.facts import DeviceFacts
    from runnc_py.unikernel.elf import UnikernelImage

    Prepared: TypeAlias = "PreparedBoot | PreparedHvt"

DEFAULT_MEM_MB = 512  # solo5-spt's default
CMDLINE_MAX = 8191  # bytes, without the terminating NUL (SPT_CMDLINE_SIZE - 1)
SPT_ABI_VERSIONS = (1, 2)  # Solo5 0.6.x/0.7.x and >= 0.8: same boot info and memory map
# Room the guest needs above its image for a stack and a minimal heap; less than this and the
# guest would fault before printing anything, so we refuse up front.
MIN_FREE_BYTES = 256 * 1024
MONITORS = ("auto", "spt", "hvt")


def close_quietly(fds: list[int]) -> None:
    for fd in fds:
        try:  # noqa: SIM105 (contextlib costs the boot path ~2 ms)
            os.close(fd)
        except OSError:
            pass


class LaunchRequest(FrozenRecord):
    """What to boot and with what: the one input of check/prepare (`replace` derives others)."""

    __slots__ = (
        *("unikernel", "args", "mem_mb", "nets", "net_macs", "blocks", "block_sector_sizes"),
        *("policy", "monitor", "x_exec_heap", "unikernel_fd", "block_fds"),
    )
    unikernel: str
    args: tuple[str, ...]
    mem_mb: int | None
    nets: Mapping[str, str]
    net_macs: Mapping[str, str]
    blocks: Mapping[str, str]
    block_sector_sizes: Mapping[str, int]
    policy: str | None
    monitor: str
    x_exec_heap: bool
    # Files already open (the OCI path opens rootfs paths once, oci/rootpath.py): then the
    # paths above only name them in messages and are never opened again.
    unikernel_fd: int | None
    block_fds: Mapping[str, int]

    def __init__(
        self,
        unikernel: str,
        args: tuple[str, ...] = (),
        mem_mb: int | None = None,
        nets: Mapping[str, str] | None = None,
        net_macs: Mapping[str, str] | None = None,
        blocks: Mapping[str, str] | None = None,
        block_sector_sizes: Mapping[str, int] | None = None,
        policy: str | None = None,
        monitor: str = "auto",
        x_exec_heap: bool = False,
        unikernel_fd: int | None = None,
        block_fds: Mapping[str, int] | None = None,
    ) -> None:
        self._set(
            unikernel=unikernel,
            args=args,
            mem_mb=mem_mb,
            nets={} if nets is None else nets,
            net_macs={} if net_macs is None else net_macs,
            blocks={} if blocks is None else blocks,
            block_sector_sizes={} if block_sector_sizes is None else block_sector_sizes,
            policy=policy,
            monitor=monitor,
            x_exec_heap=x_exec_heap,
            unikernel_fd=unikernel_fd,
            block_fds={} if block_fds is None else block_fds,
        )

    def unikernel_source(self) -> str:
        """What to open to read the unikernel: its open fd when there is one."""
        if self.unikernel_fd is None:
            return self.unikernel
        return f"/proc/self/fd/{self.unikernel_fd}"


class StartGate(FrozenRecord):
    """Hold a prepared guest at its last step until someone says start (oci/init.py).

    Once nothing can fail any more, the launcher writes "ok" to READY_FD and waits for "go"
    on GO_FD (the creator's lock-step); then it sheds the host (the interpreter included)
    and, from the trampoline, waits for one byte on the fifo FIFO_FD, closes it, installs
    the filter and jumps. FIFO_PATH reopens the fifo when a writer left without writing. The
    hvt monitor does the same from its run loop (monitor/hvt.py).
    """

    __slots__ = ("fifo_fd", "fifo_path", "go_fd", "ready_fd")
    ready_fd: int
    go_fd: int
    fifo_fd: int
    fifo_path: str

    def __init__(self, ready_fd: int, go_fd: int, fifo_fd: int, fifo_path: str) -> None:
        self._set(ready_fd=ready_fd, go_fd=go_fd, fifo_fd=fifo_fd, fifo_path=fifo_path)


class PreparedBoot(Record):
    """An spt boot ready to go: every fd open, the filter compiled."""

    __slots__ = (
        *("image", "mem_size", "cmdline", "manifest", "bpf", "elf_fd", "epollfd", "timerfd"),
        *("devices", "x_exec_heap"),
    )
    image: UnikernelImage
    mem_size: int
    cmdline: bytes
    manifest: bytes
    bpf: bytes
    elf_fd: int
    epollfd: int
    timerfd: int
    devices: GuestDevices
    x_exec_heap: bool

    def __init__(
        self,
        *,
        image: UnikernelImage,
        mem_size: int,
        cmdline: bytes,
        manifest: bytes,
        bpf: bytes,
        elf_fd: int,
        epollfd: int,
        timerfd: int,
        devices: GuestDevices,
        x_exec_heap: bool,
    ) -> None:
        self.image = image
        self.mem_size = mem_size
        self.cmdline = cmdline
        self.manifest = manifest
        self.bpf = bpf
        self.elf_fd = elf_fd
        self.epollfd = epollfd
        self.timerfd = timerfd
        self.devices = devices
        self.x_exec_heap = x_exec_heap

    def fds(self) -> list[int]:
        """Every fd the guest keeps (the ELF fd is closed by the launcher after loading)."""
        return [self.epollfd, self.timerfd, *self.devices.fds()]

    def close(self) -> None:
        self.devices.close()
        close_quietly([self.elf_fd, self.epollfd, self.timerfd])


def guest_cmdline(args: tuple[str, ...] | list[str]) -> bytes:
    """The command line solo5-spt builds: the arguments joined by single spaces."""
    cmdline = " ".join(args).encode()
    if len(cmdline) > CMDLINE_MAX:
        raise RunncError(
            f"guest command line is {len(cmdline)} bytes, the limit is {CMDLINE_MAX}",
            where="arguments",
        )
    if b"\0" in cmdline:
        raise RunncError("guest command line contains a NUL byte", where="arguments")
    return cmdline


def memory_size(image: UnikernelImage, mem_mb: int | None) -> int:
    mb = DEFAULT_MEM_MB if mem_mb is None else mem_mb
    if mb <= 1:
        raise RunncError(f"guest memory must be more than 1 MiB, got {mb}", where="--mem")
    size = mb << 20
    if image.kernel_end + MIN_FREE_BYTES > size:
        need = -(-(image.kernel_end + MIN_FREE_BYTES) // (1 << 20))
        raise RunncError(
            f"{mb} MiB is too small for {image.path} (needs at least {need} MiB)", where="--mem"
        )
    return size


def select_monitor(requested: str, image: UnikernelImage) -> str:
    """`auto`: spt binaries under spt, hvt binaries under hvt; an explicit choice must match."""
    if requested not in MONITORS:
        raise RunncError(f"unknown monitor {requested!r} (auto, spt, hvt)", where="--monitor")
    built_for = "spt" if image.target == Target.SPT else "hvt"
    if requested != "auto" and requested != built_for:
        raise RunncError(
            f"{image.path} is built for {built_for}, cannot run it under {requested}",
            where="--monitor",
        )
    if built_for == "hvt":
        from runnc_py.monitor.hvt import check_image, kvm_problem

        problem = kvm_problem()
        if problem is not None:
            raise RunncError(f"hvt unikernels need KVM: {problem}", where=image.path)
        check_image(image)
        return built_for
    if image.abi_version not in SPT_ABI_VERSIONS:
        raise RunncError(
            f"unsupported spt ABI version {image.abi_version} (supported: 1, 2)", where=image.path
        )
    return built_for


def check_devices(image: UnikernelImage, req: LaunchRequest) -> None:
    """Every manifest device attached, every attachment named in the manifest, kinds matching."""
    from runnc_py.unikernel.manifest import DeviceType

    manifest = image.manifest
    for flag, names, kind in (
        ("--net", req.nets, DeviceType.NET_BASIC),
        ("--block", req.blocks, DeviceType.BLOCK_BASIC),
    ):
        for name in names:
            entry = manifest.find(name)
            if entry is None:
                known = ", ".join(e.name for e in manifest.devices()) or "none"
                raise RunncError(
                    f"{image.path} has no device {name!r} (its devices: {known})",
                    where=f"{flag}:{name}",
                )
            if entry.type != kind:
                raise RunncError(
                    f"device {name!r} of {image.path} is not a {flag[2:]} device",
                    where=f"{flag}:{name}",
                )
    for name in req.net_macs:
        if name not in req.nets:
            raise RunncError(f"MAC given for unattached device {name!r}", where=f"--net-mac:{name}")
    for name in req.block_sector_sizes:
        if name not in req.blocks:
            raise RunncError(
                f"sector size given for unattached device {name!r}",
                where=f"--block-sector-size:{name}",
            )
    attached = {*req.nets, *req.blocks}
    missing = [e.name for e in manifest.devices() if e.name not in attached]
    if missing:
        flags = []
        for name in missing:
            entry = manifest.find(name)
            kind = "net" if entry is not None and entry.type == DeviceType.NET_BASIC else "block"
            flags.append(f"--{kind}:{name}=...")
        raise RunncError(
            f"device(s) {', '.join(missing)} declared by the unikernel but not attached; "
            f"give {' '.join(flags)}",
            where=image.path,
        )


def load_image(req: LaunchRequest) -> UnikernelImage:
    """The validated unikernel REQ names, read from its fd when it has one."""
    source = req.unikernel_source()
    image = load_unikernel_cached(source)
    if source != req.unikernel:
        image = image.replace(path=req.unikernel)  # messages name the file, not the fd
    return image


_FILTER_MODULES = ("runnc_py.sandbox.facts", "runnc_py.sandbox.locate", "runnc_py.sandbox.programs")


def boot_modules(req: LaunchRequest) -> tuple[str, ...]:
    """The modules prepare() and boot() import for REQ's monitor. A created container's init
    imports them while it waits for the parent's "go", so what follows the hooks holds only
    work that must follow them."""
    if select_monitor(req.monitor, load_image(req)) == "hvt":
        return ("runnc_py._hvt", "runnc_py.monitor.hvt", *_FILTER_MODULES)
    return ("runnc_py._launcher", *_FILTER_MODULES)


def check(req: LaunchRequest) -> UnikernelImage:
    """Validate the request without opening devices; returns the validated image."""

    image = load_image(req)
    if select_monitor(req.monitor, image) == "hvt":
        from runnc_py.monitor.hvt import hvt_memory_size

        hvt_memory_size(image, req.mem_mb)
    else:
        memory_size(image, req.mem_mb)
    guest_cmdline(req.args)
    check_devices(image, req)
    return image


class GuestDevices(Record):
    """The host side of a guest's manifest devices, opened in the process that boots it."""

    __slots__ = ("blocks", "nets", "owned")
    nets: list[OpenNet]
    blocks: list[OpenBlock]
    owned: list[int]  # fds we opened (not `@FD` ones we were given)

    def __init__(
        self,
        nets: list[OpenNet] | None = None,
        blocks: list[OpenBlock] | None = None,
        owned: list[int] | None = None,
    ) -> None:
        self.nets = [] if nets is None else nets
        self.blocks = [] if blocks is None else blocks
        self.owned = [] if owned is None else owned

    def fds(self) -> list[int]:
        return [*(n.fd for n in self.nets), *(b.fd for b in self.blocks)]

    def close(self) -> None:
        close_quietly(self.owned)

    def manifest(self, image: UnikernelImage) -> bytes:
        """The manifest as the guest must see it: every attached entry filled in."""
        from runnc_py.unikernel.manifest import BlockAttachment, NetAttachment, fill_manifest

        attached: dict[str, BlockAttachment | NetAttachment] = {
            **{n.name: NetAttachment(hostfd=n.fd, mac=n.mac, mtu=n.mtu) for n in self.nets},
            **{
                b.name: BlockAttachment(hostfd=b.fd, capacity=b.capacity, block_size=b.block_size)
                for b in self.blocks
            },
        }
        return fill_manifest(image.manifest, attached, where=image.path)

    def policy_facts(self) -> tuple[DeviceFacts, ...]:
        from runnc_py.sandbox.facts import DeviceFacts

        return (
            *(DeviceFacts(kind="net", name=n.name, hostfd=n.fd) for n in self.nets),
            *(
                DeviceFacts(
                    kind="block",
                    name=b.name,
                    hostfd=b.fd,
                    capacity=b.capacity,
                    block_size=b.block_size,
                )
                for b in self.blocks
            ),
        )


def open_devices(req: LaunchRequest) -> GuestDevices:
    """Open every device REQ attaches; on failure nothing stays open."""
    devices = GuestDevices()
    try:
        for name, spec in req.nets.items():
            net = open_net(name, spec, req.net_macs.get(name))
            if not spec.startswith("@"):
                devices.owned.append(net.fd)
            devices.nets.append(net)
        for name, path in req.blocks.items():
            block = open_block(
                name, path, req.block_sector_sizes.get(name, 512), fd=req.block_fds.get(name)
            )
            devices.owned.append(block.fd)
            devices.blocks.append(block)
    except BaseException:
        devices.close()
        raise
    return devices


def prepare(req: LaunchRequest) -> Prepared:
    """Validate, open the guest's fds and compile its filter. Nothing is left open on failure."""
    image = check(req)
    if image.target == Target.HVT:
        from runnc_py.monitor.hvt import prepare_hvt

        return prepare_hvt(req)
    from runnc_py import _launcher
    from runnc_py.sandbox.facts import BootFacts
    from runnc_py.sandbox.locate import find_policy
    from runnc_py.sandbox.programs import filter_program

    policy = find_policy(req.policy or "spt")  # a missing policy fails before any open
    mem_size = memory_size(image, req.mem_mb)
    cmdline = guest_cmdline(req.args)
    devices = open_devices(req)
    opened: list[int] = []
    try:
        elf_fd = os.open(req.unikernel_source(), os.O_RDONLY | os.O_CLOEXEC)
        opened.append(elf_fd)
        fds = _launcher.ffi.new("int[2]")
        if _launcher.lib.runnc_spt_make_fds(fds, fds + 1) != 0:
            err = _launcher.ffi.errno
            raise RunncError(f"cannot create the guest's epoll/timer fds: {os.strerror(err)}")
        epollfd, timerfd = fds[0], fds[1]
        opened += [epollfd, timerfd]
        manifest = devices.manifest(image)
        facts = BootFacts(epollfd=epollfd, timerfd=timerfd, devices=devices.policy_facts())
        bpf = filter_program(policy, facts)
    except BaseException:
        devices.close()
        close_quietly(opened)
        raise
    return PreparedBoot(
        image=image,
        mem_size=mem_size,
        cmdline=cmdline,
        manifest=manifest,
        bpf=bpf,
        elf_fd=elf_fd,
        epollfd=epollfd,
        timerfd=timerfd,
        devices=devices,
        x_exec_heap=req.x_exec_heap,
    )


def image_plan_fields(
    ffi: Any, segment_type: str, address_field: str, prepared: Prepared
) -> dict[str, Any]:
    """The plan fields both C monitors take alike: the ELF, its segments, memory size, the
    filled manifest and the command line. The cdata values own their memory: keep the dict
    alive for as long as the C side may read the plan."""
    image = prepared.image
    segments = ffi.new(f"{segment_type}[]", len(image.segments))
    for i, seg in enumerate(image.segments):
        setattr(segments[i], address_field, seg.vaddr)
        segments[i].offset = seg.offset
        segments[i].filesz = seg.filesz
        segments[i].memsz = seg.memsz
        segments[i].prot = seg.prot
    return {
        "elf_fd": prepared.elf_fd,
        "mem_size": prepared.mem_size,
        "entry": image.entry,
        "kernel_end": image.kernel_end,
        "segments": segments,
        "nsegments": len(image.segments),
        "mft": ffi.new("uint8_t[]", prepared.manifest),
        "mft_size": len(prepared.manifest),
        "cmdline": ffi.new("char[]", prepared.cmdline),
    }


def boot(prepared: Prepared, *, shed_host: bool = True, gate: StartGate | None = None) -> NoReturn:
    """Become the guest (spt) or its monitor (hvt). Returns only by raising RunncError.

    GATE: wait for a start signal after shedding the host (see StartGate).
    """
    if not isinstance(prepared, PreparedBoot):
        from runnc_py.monitor.hvt import boot_hvt

        boot_hvt(prepared, gate=gate)
    from runnc_py import _launcher

    ffi, lib = _launcher.ffi, _launcher.lib
    image = prepared.image
    # Anything Python still buffers would be lost with its memory: flush it now.
    sys.stdout.flush()
    sys.stderr.flush()
    image_fields = image_plan_fields(ffi, "struct runnc_segment", "vaddr", prepared)
    keep = prepared.fds()
    keep_fds = ffi.new("int[]", keep)
    nets = prepared.devices.nets
    index = {e.name: e.index for e in image.manifest.devices()}
    watch_fds = ffi.new("int[]", [n.fd for n in nets])
    watch_tokens = ffi.new("uint64_t[]", [index[n.name] for n in nets])
    bpf = ffi.new("uint8_t[]", prepared.bpf)
    fifo_path = ffi.NULL if gate is None else ffi.new("char[]", gate.fifo_path.encode())
    plan = ffi.new(
        "struct runnc_spt_plan *",
        {
            **image_fields,
            "epollfd": prepared.epollfd,
            "timerfd": prepared.timerfd,
            "watch_fds": watch_fds,
            "watch_tokens": watch_tokens,
            "nwatch": len(nets),
            "bpf": bpf,
            "bpf_size": len(prepared.bpf),
            "keep_fds": keep_fds,
            "nkeep": len(keep),
            "exec_heap": int(prepared.x_exec_heap),
            "shed_host": int(shed_host),
            "ready_fd": -1 if gate is None else gate.ready_fd,
            "go_fd": -1 if gate is None else gate.go_fd,
            "start_fifo_fd": -1 if gate is None else gate.fifo_fd,
            "start_fifo_path": fifo_path,
        },
    )
    err = ffi.new("char[512]")
    lib.runnc_spt_boot(plan, err, len(err))
    prepared.close()
    raise RunncError(ffi.string(err).decode(errors="replace"), where=image.path)


def boot_unprivileged(prepared: Prepared) -> NoReturn:
    """`runnc-py exec`: drop every capability and leave the caller's cwd (as a container's
    init does, oci/security.py), then boot. The devices are open by then."""
    from runnc_py.oci.security import drop_capabilities

    try:
        drop_capabilities()
    except BaseException:
        prepared.close()
        raise
    boot(prepared)


def launch(req: LaunchRequest) -> NoReturn:
    boot_unprivileged(prepare(req))
