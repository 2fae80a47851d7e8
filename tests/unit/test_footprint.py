"""runnc_py.monitor.footprint on smaps text: mappings, guest memory told apart by its size."""

from __future__ import annotations

import pytest

from runnc_py.monitor.footprint import Footprint, Mapping, guest_window, parse_smaps, vm_rss

KIB = 1024


def smaps(*entries: tuple[int, int, str, int]) -> str:
    """smaps text for (lo, hi, name, rss kB) entries, with the lines around Rss kept."""
    out = []
    for lo, hi, name, rss in entries:
        out += [
            f"{lo:x}-{hi:x} rw-p 00000000 00:00 0 {name}".rstrip(),
            f"Size:   {(hi - lo) // KIB} kB",
            f"Rss:    {rss} kB",
            "Pss:    0 kB",
            "VmFlags: rd wr mr mw me",
        ]
    return "\n".join(out) + "\n"


# A running monitor: guest memory of 8 MiB split by a read-only range, the loop's region
# right below it, kvm_run, vsyscall.
GUEST = 0x7F0000000000
RUNNING = smaps(
    (GUEST - 0x6000, GUEST - 0x4000, "", 8),  # loop image
    (GUEST - 0x4000, GUEST, "", 8),  # args + stack, adjacent to guest memory
    (GUEST, GUEST + 0x100000, "", 36),
    (GUEST + 0x100000, GUEST + 0x102000, "", 8),
    (GUEST + 0x102000, GUEST + 0x800000, "", 12),
    (0x7F1000000000, 0x7F1000003000, "anon_inode:kvm-vcpu:0", 8),
    (0xFFFFFFFFFF600000, 0xFFFFFFFFFF601000, "[vsyscall]", 0),
)


def test_parse_smaps_reads_ranges_names_and_rss() -> None:
    maps = parse_smaps(RUNNING)
    assert len(maps) == 7
    assert maps[5] == Mapping(0x7F1000000000, 0x7F1000003000, "anon_inode:kvm-vcpu:0", 8 * KIB)
    assert maps[0].size == 0x2000


def test_guest_window_is_the_run_of_exactly_the_guest_size() -> None:
    guest = guest_window(parse_smaps(RUNNING), 8 << 20)
    assert [m.lo for m in guest] == [GUEST, GUEST + 0x100000, GUEST + 0x102000]


def test_guest_window_must_be_unique() -> None:
    twice = smaps((0x10000000, 0x10800000, "", 0), (0x20000000, 0x20800000, "", 0))
    with pytest.raises(ValueError, match="2 windows"):
        guest_window(parse_smaps(twice), 8 << 20)
    with pytest.raises(ValueError, match="0 windows"):
        guest_window(parse_smaps(RUNNING), 4 << 20)


def test_overhead_is_rss_beyond_the_guest() -> None:
    maps = parse_smaps(RUNNING)
    guest = guest_window(maps, 8 << 20)
    fp = Footprint(80 * KIB, guest, [m for m in maps if m not in guest])
    assert fp.guest_rss == 56 * KIB
    assert fp.overhead == 24 * KIB
    assert "anon_inode:kvm-vcpu:0" in fp.names


def test_vm_rss() -> None:
    assert vm_rss("Name:\tx\nVmRSS:\t     76 kB\n") == 76 * KIB
    with pytest.raises(ValueError):
        vm_rss("Name:\tx\n")
