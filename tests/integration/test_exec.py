"""`runnc-py exec` boots our real test guests through the launcher and the kernel's seccomp."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunCli, runnc_binary

ABIS = ["", "abi1/"]  # ABI 2 (Solo5 >= 0.8) and ABI 1 (Solo5 0.6.x/0.7.x) builds


def guest(guests: Path, name: str, abi: str = "") -> Path:
    return guests / f"{abi}{name}.spt"


def wait_for_line(proc: subprocess.Popen[bytes], needle: bytes, limit: int = 10) -> None:
    """Read the guest's stdout until NEEDLE shows up (it prints a few lines first)."""
    assert proc.stdout is not None
    seen = b""
    for _ in range(limit):
        line = proc.stdout.readline()
        seen += line
        if needle in line:
            return
        if not line:
            break
    raise AssertionError(f"guest never printed {needle!r}; got {seen!r}")


def shell_status(returncode: int) -> int:
    """subprocess reports a signal death as -N; engines and shells report 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


@pytest.mark.parametrize("abi", ABIS)
def test_hello_prints_command_line_and_exits_0(guests: Path, runnc: RunCli, abi: str) -> None:
    proc = runnc("exec", "--mem", "8", guest(guests, "hello", abi), "--", "one", "two  three")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Hello, World\nCommand line is: 'one two  three'\n"


@pytest.mark.parametrize("abi", ABIS)
def test_solo5_spt_spelling_is_accepted(guests: Path, runnc: RunCli, abi: str) -> None:
    proc = runnc("exec", "--mem=8", guest(guests, "hello", abi), "x")
    assert proc.returncode == 0, proc.stderr
    assert "Command line is: 'x'" in proc.stdout


@pytest.mark.parametrize(("token", "status"), [("exit=3", 3), ("exit=0", 0), ("exit=255", 255)])
def test_guest_exit_status_is_propagated(
    guests: Path, runnc: RunCli, token: str, status: int
) -> None:
    proc = runnc("exec", "--mem", "8", guest(guests, "hello"), token)
    assert shell_status(proc.returncode) == status, proc.stderr


@pytest.mark.parametrize("abi", ABIS)
def test_time_advances_across_a_timerfd_sleep(guests: Path, runnc: RunCli, abi: str) -> None:
    proc = runnc("exec", "--mem", "8", guest(guests, "time", abi))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "time: ok" in proc.stdout


@pytest.mark.parametrize("abi", ABIS)
def test_fault_dies_with_139(guests: Path, runnc: RunCli, abi: str) -> None:
    proc = runnc("exec", "--mem", "8", guest(guests, "fault", abi))
    assert shell_status(proc.returncode) == 139


@pytest.mark.parametrize("abi", ABIS)
@pytest.mark.parametrize("token", ["", "write2"])
def test_forbidden_syscall_is_killed_with_159(
    guests: Path, runnc: RunCli, abi: str, token: str
) -> None:
    proc = runnc("exec", "--mem", "8", guest(guests, "seccomp", abi), *([token] if token else []))
    assert shell_status(proc.returncode) == 159, proc.stdout + proc.stderr
    assert proc.stdout, "the guest should have started and printed before the forbidden call"


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    with open(path, "wb") as f:
        f.truncate(1 << 20)
    return path


@pytest.mark.parametrize("abi", ABIS)
def test_block_device_roundtrip(guests: Path, runnc: RunCli, disk: Path, abi: str) -> None:
    proc = runnc("exec", "--mem", "8", "--block", f"storage={disk}", guest(guests, "blk", abi))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "blk: ok" in proc.stdout
    assert disk.read_bytes().strip(b"\0"), "the guest's writes must reach the image file"


@pytest.mark.parametrize("token", ["oob=read", "oob=write"])
def test_out_of_bounds_block_access_is_killed(
    guests: Path, runnc: RunCli, disk: Path, token: str
) -> None:
    proc = runnc("exec", "--mem=8", f"--block:storage={disk}", guest(guests, "blk"), token)
    assert shell_status(proc.returncode) == 159, proc.stdout + proc.stderr


@pytest.mark.root
def test_many_devices_all_attached(guests: Path, netns: str, tmp_path: Path) -> None:
    """63 usable manifest entries (the ABI's maximum), every one attached for real."""
    from runnc_py.unikernel.elf import load_unikernel
    from runnc_py.unikernel.manifest import DeviceType

    image = load_unikernel(guest(guests, "many"))
    devices = image.manifest.devices()
    assert len(devices) == 63
    args: list[str] = []
    for i, d in enumerate(devices):
        if d.type == DeviceType.BLOCK_BASIC:
            img = tmp_path / f"{d.name}.img"
            with open(img, "wb") as f:
                f.truncate(4096)
            args.append(f"--block:{d.name}={img}")
        else:
            tap = f"tapm{i}"
            subprocess.run(
                ["ip", "netns", "exec", netns, "ip", "tuntap", "add", tap, "mode", "tap"],
                check=True,
            )
            args.append(f"--net:{d.name}={tap}")
    proc = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            netns,
            *runnc_binary(),
            "exec",
            "--mem=8",
            *args,
            str(guest(guests, "many")),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "63" in proc.stdout


@pytest.fixture
def running_guest(guests: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [*runnc_binary(), "exec", "--mem", "8", str(guest(guests, "time")), "sleep=30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_line(proc, b"sleeping")  # the guest is past the filter install
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.root
def test_filter_and_no_new_privs_are_in_force(running_guest: subprocess.Popen[bytes]) -> None:
    status = Path(f"/proc/{running_guest.pid}/status").read_text()
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Seccomp"].strip() == "2"
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Threads"].strip() == "1"


@pytest.mark.root
def test_guest_carries_no_host_memory(running_guest: subprocess.Popen[bytes]) -> None:
    """No interpreter, libc or host heap stays mapped: only guest memory and the trampoline."""
    maps = Path(f"/proc/{running_guest.pid}/maps").read_text().splitlines()
    named = [line for line in maps if len(line.split()) >= 6 and "[vsyscall]" not in line]
    assert named == [], named
    guest_lo = int(maps[0].split("-")[0], 16)
    assert guest_lo == 0x10000
    fd_dir = Path(f"/proc/{running_guest.pid}/fd")
    targets = {int(fd.name): os.readlink(fd) for fd in fd_dir.iterdir()}
    extra = sorted(t for fd, t in targets.items() if fd > 2)
    assert extra == ["anon_inode:[eventpoll]", "anon_inode:[timerfd]"], targets


def test_sigterm_kills_a_sleeping_guest_with_143(running_guest: subprocess.Popen[bytes]) -> None:
    running_guest.send_signal(signal.SIGTERM)
    assert shell_status(running_guest.wait(timeout=10)) == 143


# --- networking: a real tap in a network namespace this test creates --------------------------


@pytest.mark.root
def test_net_guest_answers_ping_through_a_tap(guests: Path, netns: str) -> None:
    def ns(*cmd: str) -> None:
        subprocess.run(["ip", "netns", "exec", netns, *cmd], check=True)

    ns("ip", "tuntap", "add", "tap0", "mode", "tap")
    ns("ip", "addr", "add", "10.77.0.1/24", "dev", "tap0")
    ns("ip", "link", "set", "tap0", "up")
    ns("ip", "link", "set", "lo", "up")
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            netns,
            *runnc_binary(),
            "exec",
            "--mem",
            "8",
            "--net",
            "service0=tap0",
            str(guest(guests, "net")),
            "--ipv4=10.77.0.2/24",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_line(proc, b"net: ready")
        ping = subprocess.run(
            ["ip", "netns", "exec", netns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.77.0.2"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert " 0% packet loss" in ping.stdout
    finally:
        proc.kill()
        proc.wait()


# --- bad input: one clear line, exit 1 ------------------------------------------------------


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_file(runnc: RunCli, tmp_path: Path) -> None:
    assert_one_line_error(runnc("exec", tmp_path / "nope.spt"), "nope.spt")


def test_manifest_device_not_given(guests: Path, runnc: RunCli) -> None:
    assert_one_line_error(runnc("exec", guest(guests, "blk")), "storage", "not attached")


def test_unknown_device_name(guests: Path, runnc: RunCli, disk: Path) -> None:
    proc = runnc("exec", f"--block:storage={disk}", f"--block:other={disk}", guest(guests, "blk"))
    assert_one_line_error(proc, "other")


def test_mem_too_small(guests: Path, runnc: RunCli) -> None:
    assert_one_line_error(runnc("exec", "--mem=1", guest(guests, "hello")), "--mem")


def test_command_line_too_long(guests: Path, runnc: RunCli) -> None:
    proc = runnc("exec", "--mem=8", guest(guests, "hello"), "x" * 8192)
    assert_one_line_error(proc, "8191")


def test_command_line_at_the_limit_is_accepted(guests: Path, runnc: RunCli) -> None:
    proc = runnc("exec", "--mem=8", guest(guests, "hello"), "x" * 8191)
    assert proc.returncode == 0, proc.stderr
    assert "x" * 8191 in proc.stdout


def test_unknown_option(guests: Path, runnc: RunCli) -> None:
    assert_one_line_error(runnc("exec", "--bogus", guest(guests, "hello")), "--bogus")


def test_log_gets_a_json_error_entry(runnc: RunCli, tmp_path: Path) -> None:
    import json

    log = tmp_path / "log.json"
    proc = runnc("--log", log, "--log-format", "json", "exec", tmp_path / "nope.spt")
    assert proc.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "nope.spt" in entry["msg"] and entry["time"]


# --- malformed unikernels, crafted byte by byte ------------------------------------------------


def _craft(tmp_path: Path, breakage: str) -> Path:
    from tests.unit import elfcraft as ec

    uk = ec.Unikernel.solo5(target="spt", abi_version=2)
    assert uk.text is not None and uk.abi_note is not None
    if breakage == "not-elf":
        path = tmp_path / "not-elf.spt"
        path.write_bytes(b"#!/bin/sh\necho not an ELF\n")
        return path
    if breakage == "wrong-machine":
        uk.header.machine = ec.EM_AARCH64
    elif breakage == "w+x":
        uk.text.flags = ec.PF_R | ec.PF_W | ec.PF_X
    elif breakage == "below-1mib":
        uk.text.vaddr = 0x80000
        uk.header.entry = 0x80000
    elif breakage == "entry-outside":
        uk.header.entry = 0x900000
    elif breakage == "hvt-target":
        uk.abi_note.desc = ec.abi_desc("hvt", 2)
    elif breakage == "abi-version":
        uk.abi_note.desc = ec.abi_desc("spt", 3)
    elif breakage == "truncated":
        uk.truncate = 300
    return uk.write(tmp_path / f"{breakage}.spt")


@pytest.mark.parametrize(
    ("breakage", "needle"),
    [
        ("not-elf", "ELF"),
        ("wrong-machine", "machine"),
        ("w+x", "writable and executable"),
        ("below-1mib", "0x100000"),
        ("entry-outside", "entry"),
        ("hvt-target", "hvt"),
        ("abi-version", "version"),
        ("truncated", "truncated"),
    ],
)
def test_malformed_unikernel_is_refused_in_one_line(
    runnc: RunCli, tmp_path: Path, breakage: str, needle: str
) -> None:
    path = _craft(tmp_path, breakage)
    proc = runnc("exec", "--monitor=spt", "--mem=8", path)
    assert_one_line_error(proc, str(path))
    assert needle.lower() in proc.stderr.lower(), proc.stderr


def test_crafted_valid_unikernel_is_accepted(runnc: RunCli, tmp_path: Path) -> None:
    """The control for the cases above: unbroken, it boots (and faults on its `hlt`: 139)."""
    proc = runnc("exec", "--mem=8", _craft(tmp_path, "none"))
    assert shell_status(proc.returncode) == 139, proc.stderr


# --- monitor selection: --monitor auto|spt|hvt -----------------------------------------------


@pytest.mark.kvm
@pytest.mark.parametrize("monitor", ["auto", "hvt"])
def test_hvt_unikernel_runs_under_our_kvm_monitor(
    guests: Path, runnc: RunCli, monitor: str
) -> None:
    proc = runnc("exec", f"--monitor={monitor}", "--mem=8", guests / "hvt" / "hello.hvt", "a", "b")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Hello, World\nCommand line is: 'a b'\n"


@pytest.mark.parametrize(
    ("monitor", "path", "needle"),
    [
        ("spt", "hvt/hello.hvt", "built for hvt, cannot run it under spt"),
        ("hvt", "hello.spt", "built for spt, cannot run it under hvt"),
        ("qemu", "hello.spt", "unknown monitor"),
    ],
)
def test_monitor_must_match_the_binary(
    guests: Path, runnc: RunCli, monitor: str, path: str, needle: str
) -> None:
    assert_one_line_error(runnc("exec", f"--monitor={monitor}", guests / path), needle)
