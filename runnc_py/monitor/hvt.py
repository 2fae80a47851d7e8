"""Run a Solo5 *hvt* unikernel under our own small KVM monitor (csrc/hvt/, `runnc_py._hvt`).

Same shape as the spt path in `launch.py`: `check_hvt` validates without side effects,
`prepare_hvt` opens everything that can still fail with a clear message (and closes it again
when something does) and creates the VM, `boot_hvt` runs the guest in this very process: its C
run loop unmaps the interpreter and everything else of the host first, confines itself with
the hvt seccomp policy and serves the guest until the process exits with the guest's status:

    the guest's halt status & 0xff   solo5_exit(status)
    139                              the guest crashed (triple fault, write to its text, ...)
    1                                the monitor failed (KVM error, host cannot emulate)
    159                              the monitor left its seccomp policy (SIGSYS)
    128 + n                          killed by signal n (SIGTERM: 143)

Anything but a guest exit also leaves one line `hvt: ...` on stderr. See docs/hvt.md.
"""

from __future__ import annotations

import fcntl
import os
import sys

from runnc_py.errors import RunncError
from runnc_py.monitor.launch import close_quietly
from runnc_py.record import Record

TYPE_CHECKING = False  # the boot path imports no typing (runnc_py/record.py says why)
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from runnc_py.monitor.devices import OpenBlock, OpenNet
    from runnc_py.monitor.launch import GuestDevices, LaunchRequest, StartGate
    from runnc_py.unikernel.elf import UnikernelImage

HVT_ABI_VERSIONS = (1, 2)  # Solo5 0.6.x/0.7.x and >= 0.8: same boot protocol and hypercalls
DEFAULT_MEM_MB = 512  # solo5-hvt's default
PAGE_2M = 2 << 20  # guest memory is mapped with 2 MiB pages: sizes are rounded down to them
MAX_MEM_MB = 4096  # hypercall arguments are 32-bit guest-physical addresses
DEFAULT_POLICY = "hvt"
EXIT_FAULT = 139
EXIT_MONITOR = 1

# linux/kvm.h: _IO(KVMIO = 0xAE, nr)
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_API_VERSION = 12


def kvm_problem() -> str | None:
    """Why KVM cannot run hvt guests here, or None if it can.

    Opens /dev/kvm, checks the API version and creates (and drops) a VM, as solo5-hvt does
    first thing. Pure Python (no extension import): cheap enough for `--monitor auto`.
    """
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return f"cannot open /dev/kvm: {exc.strerror}"
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION, 0)
        if version != KVM_API_VERSION:
            return f"/dev/kvm speaks API version {version}, need {KVM_API_VERSION}"
        os.close(fcntl.ioctl(fd, KVM_CREATE_VM, 0))
    except OSError as exc:
        return f"/dev/kvm cannot create a VM: {exc.strerror}"
    finally:
        os.close(fd)
    return None


def kvm_usable() -> bool:
    """True if /dev/kvm opens, speaks API version 12 and creates a VM."""
    return kvm_problem() is None


def hvt_memory_size(image: UnikernelImage, mem_mb: int | None) -> int:
    """Guest memory in bytes: MB rounded down to 2 MiB pages (as solo5-hvt does), at most 4 GiB."""
    from runnc_py.monitor.launch import MIN_FREE_BYTES

    mb = DEFAULT_MEM_MB if mem_mb is None else mem_mb
    if not 2 <= mb <= MAX_MEM_MB:
        raise RunncError(f"hvt guest memory must be 2 to {MAX_MEM_MB} MiB, got {mb}", where="--mem")
    size = (mb << 20) // PAGE_2M * PAGE_2M
    if image.kernel_end + MIN_FREE_BYTES > size:
        need = -(-(image.kernel_end + MIN_FREE_BYTES) // PAGE_2M) * 2
        raise RunncError(
            f"{mb} MiB is too small for {image.path} (needs at least {need} MiB)", where="--mem"
        )
    return size


def check_image(image: UnikernelImage) -> None:
    """An hvt binary of an ABI version our monitor speaks, for this host's machine."""
    from runnc_py.unikernel.elf import Target

    if image.target != Target.HVT:
        raise RunncError(
            f"{image.path} is built for spt, cannot run it under hvt", where="--monitor"
        )
    if image.abi_version not in HVT_ABI_VERSIONS:
        raise RunncError(
            f"unsupported hvt ABI version {image.abi_version} (supported: 1, 2)", where=image.path
        )
    if image.machine != "x86_64":
        raise RunncError(
            f"the hvt monitor runs x86_64 guests only, not {image.machine}", where=image.path
        )


def check_hvt(req: LaunchRequest) -> UnikernelImage:
    """Validate REQ for the hvt monitor without opening devices; returns the image."""
    from runnc_py.monitor.launch import check_devices, guest_cmdline, load_image

    image = load_image(req)
    check_image(image)
    hvt_memory_size(image, req.mem_mb)
    guest_cmdline(req.args)
    check_devices(image, req)
    return image


class PreparedHvt(Record):
    """Everything `boot_hvt` needs; the fds are this process's and the guest's."""

    __slots__ = (
        *("image", "mem_size", "cmdline", "manifest", "elf_fd", "epollfd", "timerfd"),
        *("devices", "policy", "vm", "program", "keepalive"),
    )
    image: UnikernelImage
    mem_size: int
    cmdline: bytes
    manifest: bytes
    elf_fd: int
    epollfd: int
    timerfd: int
    devices: GuestDevices
    policy: str | None  # policy name or path; None = no seccomp filter
    # Set by _create_vm: the VM (a C handle), the run loop's compiled filter, and the cffi
    # objects the C side points into, which must live as long as the VM.
    vm: Any
    program: bytes
    keepalive: list[Any]

    def __init__(
        self,
        *,
        image: UnikernelImage,
        mem_size: int,
        cmdline: bytes,
        manifest: bytes,
        elf_fd: int,
        epollfd: int,
        timerfd: int,
        devices: GuestDevices,
        policy: str | None,
    ) -> None:
        self.image, self.mem_size, self.cmdline, self.manifest = image, mem_size, cmdline, manifest
        self.elf_fd, self.epollfd, self.timerfd = elf_fd, epollfd, timerfd
        self.devices, self.policy = devices, policy
        self.vm, self.program, self.keepalive = None, b"", []

    @property
    def nets(self) -> list[OpenNet]:
        return self.devices.nets

    @property
    def blocks(self) -> list[OpenBlock]:
        return self.devices.blocks

    def fds(self) -> list[int]:
        return [self.epollfd, self.timerfd, *self.devices.fds()]

    def close(self) -> None:
        if self.vm is not None:
            from runnc_py import _hvt

            _hvt.lib.runnc_hvt_destroy(self.vm)
            self.vm = None
        self.devices.close()
        close_quietly([self.elf_fd, self.epollfd, self.timerfd])


def prepare_hvt(req: LaunchRequest, *, policy: str | None = DEFAULT_POLICY) -> PreparedHvt:
    """Validate REQ, open its devices and the poll fds, create the VM and compile the run
    loop's filter. Nothing is left open on failure.

    POLICY is the seccomp policy for the monitor's run loop (`req.policy` wins if set);
    None runs without a filter.
    """
    from runnc_py import _hvt
    from runnc_py.monitor.launch import guest_cmdline, open_devices
    from runnc_py.sandbox.locate import find_policy

    image = check_hvt(req)
    policy = req.policy or policy
    if policy is not None:
        # A missing policy fails before anything is opened; a broken one when it is compiled
        # (from its cache after the first boot), and everything opened is closed again.
        find_policy(policy)
    mem_size = hvt_memory_size(image, req.mem_mb)
    cmdline = guest_cmdline(req.args)
    devices = open_devices(req)
    opened: list[int] = []
    try:
        elf_fd = os.open(req.unikernel_source(), os.O_RDONLY | os.O_CLOEXEC)
        opened.append(elf_fd)
        fds = _hvt.ffi.new("int[2]")
        if _hvt.lib.runnc_hvt_make_fds(fds, fds + 1) != 0:
            raise RunncError(
                f"cannot create the monitor's epoll/timer fds: {os.strerror(_hvt.ffi.errno)}"
            )
        epollfd, timerfd = fds[0], fds[1]
        opened += [epollfd, timerfd]
        manifest = devices.manifest(image)
    except BaseException:
        devices.close()
        close_quietly(opened)
        raise
    prepared = PreparedHvt(
        image=image,
        mem_size=mem_size,
        cmdline=cmdline,
        manifest=manifest,
        elf_fd=elf_fd,
        epollfd=epollfd,
        timerfd=timerfd,
        devices=devices,
        policy=policy,
    )
    try:
        _create_vm(prepared)
    except BaseException:
        prepared.close()
        raise
    return prepared


def _monitor_filter(prepared: PreparedHvt, vcpufd: int) -> bytes:
    """The compiled seccomp program of the monitor's run loop, for these fds and devices."""
    from runnc_py.sandbox.facts import BootFacts
    from runnc_py.sandbox.programs import filter_program

    assert prepared.policy is not None
    facts = BootFacts(
        epollfd=prepared.epollfd,
        timerfd=prepared.timerfd,
        vcpufd=vcpufd,
        devices=prepared.devices.policy_facts(),
    )
    return filter_program(prepared.policy, facts)


def _create_vm(prepared: PreparedHvt) -> None:
    """Create the VM, lay out the guest and compile the run loop's filter.

    Part of preparing, not of booting: opening /dev/kvm and reading the policy need the
    privileges an OCI init drops between `prepare` and `boot`, and KVM ties a VM to the process
    that made it, so the process that prepares is the one that runs the guest.
    """
    from runnc_py import _hvt
    from runnc_py.monitor.launch import image_plan_fields

    ffi, lib = _hvt.ffi, _hvt.lib
    image = prepared.image
    # Solo5 hvt guests are linked identity-mapped: guest-physical = the ELF's vaddr.
    image_fields = image_plan_fields(ffi, "struct runnc_hvt_segment", "paddr", prepared)
    index = {e.name: e.index for e in image.manifest.devices()}
    blocks = ffi.new("struct runnc_hvt_block[]", len(prepared.blocks))
    for i, b in enumerate(prepared.blocks):
        blocks[i] = {
            "index": index[b.name],
            "fd": b.fd,
            "capacity": b.capacity,
            "block_size": b.block_size,
        }
    nets = ffi.new("struct runnc_hvt_net[]", len(prepared.nets))
    for i, n in enumerate(prepared.nets):
        nets[i] = {"index": index[n.name], "fd": n.fd}
    plan = ffi.new(
        "struct runnc_hvt_plan *",
        {
            **image_fields,
            "blocks": blocks,
            "nblocks": len(prepared.blocks),
            "nets": nets,
            "nnets": len(prepared.nets),
            "epollfd": prepared.epollfd,
            "timerfd": prepared.timerfd,
        },
    )
    prepared.keepalive = [image_fields, blocks, nets, plan]
    err = ffi.new("char[512]")
    vm = lib.runnc_hvt_create(plan, err, len(err))
    if vm == ffi.NULL:
        raise RunncError(ffi.string(err).decode(errors="replace"), where=image.path)
    prepared.vm = vm
    vcpufd = lib.runnc_hvt_vcpufd(vm)
    prepared.program = b"" if prepared.policy is None else _monitor_filter(prepared, vcpufd)
    os.close(prepared.elf_fd)  # loaded: the guest never reads its own file
    prepared.elf_fd = -1


def boot_hvt(
    prepared: PreparedHvt, *, close_fds: bool = True, gate: StartGate | None = None
) -> NoReturn:
    """Become the hvt monitor of PREPARED's guest; the process exits with the guest's status.

    The interpreter does not survive this: the C run loop unmaps it before the guest runs
    (docs/hvt.md, "The run loop"). Returns only by raising RunncError, when the monitor could
    not start (nothing of the guest ran then; PREPARED's fds are closed). CLOSE_FDS closes
    every other fd above 2 before the guest starts, as the spt launcher does. GATE holds the
    guest until `start`, as for spt (launch.StartGate), waiting in the run loop with the
    interpreter already unmapped.
    """
    from runnc_py import _hvt

    ffi, lib = _hvt.ffi, _hvt.lib
    bpf = prepared.program
    program = ffi.new("uint8_t[]", bpf) if bpf else ffi.NULL
    err = ffi.new("char[512]")
    c_gate = ffi.NULL
    if gate is not None:
        fifo_path = ffi.new("char[]", gate.fifo_path.encode())
        c_gate = ffi.new(
            "struct runnc_hvt_gate *",
            {
                "ready_fd": gate.ready_fd,
                "go_fd": gate.go_fd,
                "fifo_fd": gate.fifo_fd,
                "fifo_path": fifo_path,
            },
        )
    # Python's buffers would never be flushed: the C loop unmaps them and ends the process.
    sys.stdout.flush()
    sys.stderr.flush()
    lib.runnc_hvt_run(prepared.vm, program, len(bpf), int(close_fds), c_gate, err, len(err))
    prepared.close()
    raise RunncError(ffi.string(err).decode(errors="replace"), where=prepared.image.path)


def launch_hvt(req: LaunchRequest) -> NoReturn:
    """check + prepare + boot: run REQ's hvt unikernel in this process."""
    boot_hvt(prepare_hvt(req))
