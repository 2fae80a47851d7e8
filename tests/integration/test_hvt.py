"""Our hvt monitor (csrc/hvt/, runnc_py.monitor.hvt) boots our real hvt test guests in KVM.

Each boot runs `prepare_hvt` + `boot_hvt` in a fresh Python subprocess (the process becomes the
monitor and exits with the guest's status) under the default `hvt` seccomp policy unless a
test says otherwise. Needs root and a usable /dev/kvm; the memory-size checks need neither.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

ABIS = ["", "abi1/"]  # ABI 2 (Solo5 >= 0.8) and ABI 1 (Solo5 0.6.x/0.7.x) builds

# Runs one boot described by a JSON argument, and reports a RunncError as the CLI does: one
# line on stderr, its status.
RUNNER = """
import json, sys
from runnc_py.errors import RunncError
from runnc_py.monitor.hvt import boot_hvt, prepare_hvt
from runnc_py.monitor.launch import LaunchRequest
spec = json.loads(sys.argv[1])
policy = spec.pop("monitor_policy", "hvt")
try:
    boot_hvt(prepare_hvt(LaunchRequest(**spec), policy=policy))
except RunncError as exc:
    print(exc.line(), file=sys.stderr)
    sys.exit(exc.status)
"""


def hvt_argv(unikernel: Path, *args: str, **spec: object) -> list[str]:
    spec = {"unikernel": str(unikernel), "args": list(args), "mem_mb": 8, **spec}
    return [sys.executable, "-c", RUNNER, json.dumps(spec)]


def run_hvt(
    unikernel: Path, *args: str, timeout: float = 20, **spec: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        hvt_argv(unikernel, *args, **spec),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def guest(guests: Path, name: str, abi: str = "") -> Path:
    return guests / "hvt" / f"{abi}{name}.hvt"


def assert_one_line_error(
    proc: subprocess.CompletedProcess[str], status: int, *needles: str
) -> None:
    assert proc.returncode == status, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


kvm = pytest.mark.kvm
root = pytest.mark.root


# --- booting ------------------------------------------------------------------------------------


@kvm
def test_kvm_probes_agree() -> None:
    from runnc_py import _hvt
    from runnc_py.monitor.hvt import kvm_problem, kvm_usable

    err = _hvt.ffi.new("char[256]")
    assert _hvt.lib.runnc_hvt_probe(err, len(err)) == 0, _hvt.ffi.string(err)
    assert kvm_problem() is None
    assert kvm_usable()


@kvm
@pytest.mark.parametrize("abi", ABIS)
def test_hello_prints_command_line_and_exits_0(guests: Path, abi: str) -> None:
    proc = run_hvt(guest(guests, "hello", abi), "one", "two  three")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Hello, World\nCommand line is: 'one two  three'\n"
    assert proc.stderr == ""


@kvm
@pytest.mark.parametrize(("token", "status"), [("exit=3", 3), ("exit=0", 0), ("exit=255", 255)])
def test_halt_status_is_the_exit_status(guests: Path, token: str, status: int) -> None:
    proc = run_hvt(guest(guests, "hello"), token)
    assert proc.returncode == status, proc.stderr
    assert "Hello, World" in proc.stdout


@kvm
def test_hello_runs_without_a_seccomp_filter(guests: Path) -> None:
    proc = run_hvt(guest(guests, "hello"), "nofilter", monitor_policy=None)
    assert proc.returncode == 0, proc.stderr
    assert "Command line is: 'nofilter'" in proc.stdout


@kvm
def test_command_line_at_the_limit(guests: Path) -> None:
    proc = run_hvt(guest(guests, "hello"), "x" * 8191)
    assert proc.returncode == 0, proc.stderr
    assert "'" + "x" * 8191 + "'" in proc.stdout


@kvm
@pytest.mark.parametrize("abi", ABIS)
def test_walltime_poll_and_tsc(guests: Path, abi: str) -> None:
    proc = run_hvt(guest(guests, "time", abi))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "time: ok" in proc.stdout


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    with open(path, "wb") as f:
        f.truncate(1 << 20)
    return path


@kvm
@pytest.mark.parametrize("sector", [512, 4096])
def test_block_device_roundtrip(guests: Path, disk: Path, sector: int) -> None:
    proc = run_hvt(
        guest(guests, "blk"), blocks={"storage": str(disk)}, block_sector_sizes={"storage": sector}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"block_size={sector}" in proc.stdout and "blk: ok" in proc.stdout
    data = disk.read_bytes()
    assert data[:sector] == bytes((i * 7 + 1) & 0xFF for i in range(sector)), "first sector"
    assert data[-sector:].strip(b"\0"), "the last sector must reach the image file"


# --- guest faults: 139 and one line on stderr ---------------------------------------------------


@kvm
@pytest.mark.parametrize(
    ("word", "needle"),
    [
        ("ud2", "triple fault"),
        ("outside", "triple fault"),
        ("wrtext", "read-only memory at 0x100000"),
        ("port", "I/O port 0x80"),
        ("badarg", "puts hypercall with its argument at 0xfffffff0"),
        ("hlt", "hlt without the halt hypercall"),
    ],
)
def test_guest_fault_exits_139_with_one_line(guests: Path, word: str, needle: str) -> None:
    proc = run_hvt(guest(guests, "fault"), word)
    assert proc.stdout == f"fault: {word}\n", "the guest must run up to its fault"
    assert_one_line_error(proc, 139, "hvt: guest fault:", needle, "rip=0x")


@kvm
def test_bad_device_handle_is_einval_not_a_fault(guests: Path) -> None:
    proc = run_hvt(guest(guests, "fault"), "badhandle")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ret=2" in proc.stdout  # SOLO5_R_EINVAL


# --- the monitor's sandbox ----------------------------------------------------------------------


@pytest.fixture
def sleeping_guest(guests: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        hvt_argv(guest(guests, "time"), "ms=20000"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed from inside the guest: the filter is on
        assert line == "time: waiting 20000 ms\n", line + (
            proc.stderr.read() if proc.stderr else ""
        )
        yield proc
    finally:
        proc.kill()
        proc.wait()


@root
@kvm
def test_monitor_runs_filtered_with_only_its_fds(sleeping_guest: subprocess.Popen[str]) -> None:
    status = Path(f"/proc/{sleeping_guest.pid}/status").read_text()
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Seccomp"].strip() == "2"
    assert fields["NoNewPrivs"].strip() == "1"
    fd_dir = Path(f"/proc/{sleeping_guest.pid}/fd")
    targets = sorted(os.readlink(fd) for fd in fd_dir.iterdir() if int(fd.name) > 2)
    assert targets == sorted(
        [
            "/dev/kvm",
            "anon_inode:kvm-vm",
            "anon_inode:kvm-vcpu:0",
            "anon_inode:[eventpoll]",
            "anon_inode:[timerfd]",
        ]
    ), targets


@root
@kvm
def test_sigterm_ends_the_monitor_with_143(sleeping_guest: subprocess.Popen[str]) -> None:
    sleeping_guest.send_signal(signal.SIGTERM)
    assert sleeping_guest.wait(timeout=10) == -signal.SIGTERM  # 143 in a shell


@kvm
def test_leaving_the_policy_is_killed_with_sigsys(guests: Path, tmp_path: Path) -> None:
    """A policy without write(STDOUT): the first puts hypercall must end the monitor."""
    policy = tmp_path / "no-console.toml"
    policy.write_text(
        'name = "no-console"\n'
        'description = "the hvt run loop minus the console"\n'
        '[default]\naction = "kill_process"\nwhy = "test"\n'
        '[[rules]]\nsyscall = "ioctl"\nwhy = "run"\n'
        '[[rules.args]]\nindex = 0\nop = "eq"\nvalue = "vcpufd"\nwhy = "vcpu"\n'
        '[[rules.args]]\nindex = 1\nop = "eq"\nvalue = "KVM_RUN"\nwhy = "run only"\n'
        '[[rules]]\nsyscall = "exit_group"\nwhy = "halt"\n'
    )
    proc = run_hvt(guest(guests, "hello"), monitor_policy=str(policy))
    assert proc.returncode == -signal.SIGSYS, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""


# --- bad input: one clear line, status 1, nothing started ---------------------------------------


@kvm
def test_spt_binary_is_refused(guests: Path) -> None:
    assert_one_line_error(run_hvt(guests / "hello.spt"), 1, "built for spt", "hvt")


@kvm
def test_missing_block_device(guests: Path) -> None:
    assert_one_line_error(run_hvt(guest(guests, "blk")), 1, "storage", "not attached")


@kvm
def test_memory_too_small(guests: Path) -> None:
    assert_one_line_error(run_hvt(guest(guests, "hello"), mem_mb=1), 1, "--mem", "2 to 4096")


@kvm
def test_unknown_policy(guests: Path) -> None:
    proc = run_hvt(guest(guests, "hello"), monitor_policy="no-such-policy")
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "no-such-policy" in proc.stderr and proc.stdout == ""


@kvm
@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("mem_size", 3 << 20, "multiple of 2 MiB"),
        ("mem_size", 8 << 30, "multiple of 2 MiB"),
        ("entry", 0x1000, "entry point 0x1000"),
        ("seg_paddr", 0x7FF000, "segment 0"),
        ("cmdline", b"x" * 8192, "command line"),
        ("epollfd", -1, "epoll"),
        ("block_index", 64, "block device 0"),
    ],
)
def test_malformed_plan_is_refused_before_any_vm(
    guests: Path, field: str, value: object, needle: str
) -> None:
    """The C side's own checks: a bad plan gets NULL and one line, never a VM."""
    from runnc_py import _hvt
    from runnc_py.unikernel.elf import load_unikernel

    ffi, lib = _hvt.ffi, _hvt.lib
    image = load_unikernel(guest(guests, "hello"))
    seg = image.segments[0]
    segments = ffi.new("struct runnc_hvt_segment[1]")
    segments[0] = {
        "paddr": value if field == "seg_paddr" else seg.vaddr,
        "offset": seg.offset,
        "filesz": seg.filesz,
        "memsz": 0x2000,
        "prot": seg.prot,
    }
    blocks = ffi.new(
        "struct runnc_hvt_block[1]", [{"index": 1, "fd": 0, "capacity": 4096, "block_size": 512}]
    )
    if field == "block_index":
        blocks[0].index = value
    mft = ffi.new("uint8_t[]", image.manifest.raw)
    cmdline = ffi.new("char[]", value if field == "cmdline" else b"ok")
    plan = ffi.new(
        "struct runnc_hvt_plan *",
        {
            "elf_fd": -1,
            "mem_size": value if field == "mem_size" else 8 << 20,
            "entry": value if field == "entry" else image.entry,
            "kernel_end": image.kernel_end,
            "segments": segments,
            "nsegments": 1,
            "mft": mft,
            "mft_size": len(image.manifest.raw),
            "cmdline": cmdline,
            "blocks": blocks,
            "nblocks": 1 if field == "block_index" else 0,
            "epollfd": value if field == "epollfd" else 100,
            "timerfd": 101,
        },
    )
    err = ffi.new("char[512]")
    assert lib.runnc_hvt_create(plan, err, len(err)) == ffi.NULL
    message = ffi.string(err).decode()
    assert needle in message and "\n" not in message, message


# --- pure checks: no root, no KVM -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("mem_mb", "expected"), [(None, 512 << 20), (2, 2 << 20), (7, 6 << 20), (4096, 4096 << 20)]
)
def test_memory_is_rounded_down_to_2mib_pages(
    guests: Path, mem_mb: int | None, expected: int
) -> None:
    from runnc_py.monitor.hvt import hvt_memory_size
    from runnc_py.unikernel.elf import load_unikernel

    assert hvt_memory_size(load_unikernel(guest(guests, "hello")), mem_mb) == expected


@pytest.mark.parametrize("mem_mb", [0, 1, 4097])
def test_memory_out_of_range(guests: Path, mem_mb: int) -> None:
    from runnc_py.errors import RunncError
    from runnc_py.monitor.hvt import hvt_memory_size
    from runnc_py.unikernel.elf import load_unikernel

    with pytest.raises(RunncError, match="2 to 4096 MiB"):
        hvt_memory_size(load_unikernel(guest(guests, "hello")), mem_mb)


# --- networking: a real tap in a network namespace this test creates ------------------------------


@root
@kvm
def test_net_guest_answers_ping_through_a_tap(guests: Path, netns: str) -> None:
    def ns(*cmd: str) -> None:
        subprocess.run(["ip", "netns", "exec", netns, *cmd], check=True)

    ns("ip", "tuntap", "add", "tap0", "mode", "tap")
    ns("ip", "addr", "add", "10.78.0.1/24", "dev", "tap0")
    ns("ip", "link", "set", "tap0", "up")
    argv = hvt_argv(
        guest(guests, "net"),
        "--ipv4=10.78.0.2",
        "pings=3",
        nets={"service0": "tap0"},
        net_macs={"service0": "02:00:0a:4e:00:02"},
    )
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert re.fullmatch(r"net: ready mac=02:00:0a:4e:00:02\n", line), line
        ping = subprocess.run(
            ["ip", "netns", "exec", netns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.78.0.2"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert " 0% packet loss" in ping.stdout
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
        proc.wait()
