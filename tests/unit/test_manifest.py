"""Manifest parsing, validation and filling (runnc_py.unikernel.manifest). No root needed."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from runnc_py.errors import RunncError
from runnc_py.unikernel import manifest as m
from runnc_py.unikernel.manifest import (
    MFT_ENTRY_SIZE,
    BlockAttachment,
    DeviceType,
    Manifest,
    ManifestEntry,
    NetAttachment,
    fill_manifest,
    missing_devices,
    parse_manifest,
)
from tests.unit import elfcraft as ec

WHERE = "/images/app.spt"
DEVICES = [("rootfs", ec.BLOCK_BASIC), ("service", ec.NET_BASIC), ("data", ec.BLOCK_BASIC)]


def parsed(devices=DEVICES) -> Manifest:
    return parse_manifest(ec.mft_desc(devices), WHERE)


# --------------------------------------------------------------------------------------------
# parsing


def test_parse_valid_manifest():
    desc = ec.mft_desc(DEVICES)
    mft = parse_manifest(desc, WHERE)
    assert mft.version == 1
    assert mft.entries == (
        ManifestEntry(0, "", DeviceType.RESERVED_FIRST),
        ManifestEntry(1, "rootfs", DeviceType.BLOCK_BASIC),
        ManifestEntry(2, "service", DeviceType.NET_BASIC),
        ManifestEntry(3, "data", DeviceType.BLOCK_BASIC),
    )
    # raw is the struct mft: the descriptor without its 4-byte alignment pad.
    assert mft.raw == desc[4:]
    assert len(mft.raw) == 8 + 4 * MFT_ENTRY_SIZE
    assert [e.name for e in mft.devices()] == ["rootfs", "service", "data"]
    assert mft.find("service") == ManifestEntry(2, "service", 2)
    assert mft.find("nope") is None
    assert mft.find("") is None  # the reserved entry is never a device


def test_parse_manifest_without_devices():
    mft = parse_manifest(ec.mft_desc([]), WHERE)
    assert mft.devices() == ()
    assert len(mft.entries) == 1


def test_parse_63_devices_is_the_maximum():
    devices = [(f"d{i}", ec.BLOCK_BASIC) for i in range(63)]
    assert len(parse_manifest(ec.mft_desc(devices), WHERE).devices()) == 63


def test_name_of_67_characters_is_accepted():
    name = "n" * 67
    assert parsed([(name, ec.NET_BASIC)]).find(name) is not None


def _entry_bytes_with_name(name_field: bytes) -> bytes:
    """An MFT1 descriptor whose entry 1 has NAME_FIELD (68 bytes) as its raw name."""
    desc = bytearray(ec.mft_desc([("x", ec.BLOCK_BASIC)]))
    base = 4 + 8 + MFT_ENTRY_SIZE
    desc[base : base + 68] = name_field
    return bytes(desc)


def _set_u32(desc: bytes, offset: int, value: int) -> bytes:
    out = bytearray(desc)
    struct.pack_into("<I", out, offset, value)
    return bytes(out)


ENTRY1 = 4 + 8 + MFT_ENTRY_SIZE  # offset of entry 1 in the descriptor

INVALID = [
    ("too-short", b"\0" * 11, "too short"),
    ("too-large", b"\0" * (4 + 8 + 65 * MFT_ENTRY_SIZE), "more than the 6668"),
    ("version-2", ec.mft_desc(DEVICES, version=2), "manifest version 2"),
    ("version-0", ec.mft_desc(DEVICES, version=0), "manifest version 0"),
    ("65-entries", ec.mft_desc([], count=65), "65 entries, at most 64"),
    ("no-entries", ec.mft_desc([], reserved=False), "no entries"),
    ("count-too-big", ec.mft_desc(DEVICES, count=5), "declares 5 entries"),
    ("count-too-small", ec.mft_desc(DEVICES, count=2), "declares 2 entries"),
    ("trailing-bytes", ec.mft_desc(DEVICES, extra=b"\0" * 8), "declares 4 entries"),
    (
        "entry0-not-reserved",
        ec.mft_desc([("disk", ec.BLOCK_BASIC)], reserved=False),
        "entry 0 must be the reserved entry",
    ),
    (
        "entry0-named",
        bytes(4) + struct.pack("<II", 1, 1) + ec.mft_entry("x", ec.RESERVED_FIRST),
        "entry 0 must be the reserved entry",
    ),
    ("name-not-terminated", _entry_bytes_with_name(b"a" * 68), "not NUL-terminated"),
    ("name-not-ascii", _entry_bytes_with_name(b"caf\xc3\xa9".ljust(68, b"\0")), "not ASCII"),
    ("name-empty", _entry_bytes_with_name(bytes(68)), "empty name"),
    ("name-space", _entry_bytes_with_name(b"my disk".ljust(68, b"\0")), "characters outside"),
    ("name-equals", _entry_bytes_with_name(b"a=b".ljust(68, b"\0")), "characters outside"),
    (
        "duplicate-name",
        ec.mft_desc([("net", ec.NET_BASIC), ("net", ec.BLOCK_BASIC)]),
        "'net' is declared twice",
    ),
    ("unknown-type-3", _set_u32(ec.mft_desc(DEVICES), ENTRY1 + 68, 3), "unknown type 0x3"),
    ("unknown-type-0", _set_u32(ec.mft_desc(DEVICES), ENTRY1 + 68, 0), "unknown type 0x0"),
    (
        "unknown-type-high",
        _set_u32(ec.mft_desc(DEVICES), ENTRY1 + 68, 0x40000001),
        "unknown type 0x40000001",
    ),
    (
        "pre-attached",
        bytes(4)
        + struct.pack("<II", 1, 2)
        + ec.mft_entry("", ec.RESERVED_FIRST)
        # attached=True on a device entry: the toolchain never sets it
        + ec.mft_entry("disk", ec.BLOCK_BASIC, attached=True),
        "already marked attached",
    ),
]


@pytest.mark.parametrize(("desc", "needle"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_manifest_is_refused(desc: bytes, needle: str):
    with pytest.raises(RunncError) as info:
        parse_manifest(desc, WHERE)
    line = info.value.line()
    assert needle in line
    assert line.startswith(WHERE + ": ")
    assert "\n" not in line


def test_reserved_entries_beyond_zero_are_not_devices():
    desc = (
        bytes(4)
        + struct.pack("<II", 1, 3)
        + ec.mft_entry("", ec.RESERVED_FIRST)
        + ec.mft_entry("", ec.RESERVED_FIRST)
        + ec.mft_entry("disk", ec.BLOCK_BASIC)
    )
    mft = parse_manifest(desc, WHERE)
    assert [e.index for e in mft.devices()] == [2]


# --------------------------------------------------------------------------------------------
# filling


def _entry(buf: bytes, index: int) -> bytes:
    return buf[8 + index * MFT_ENTRY_SIZE : 8 + (index + 1) * MFT_ENTRY_SIZE]


def test_fill_manifest_layout_field_by_field():
    mft = parsed()
    mac = bytes.fromhex("02420a000002")
    out = fill_manifest(
        mft,
        {
            "rootfs": BlockAttachment(hostfd=7, capacity=64 * 1024 * 1024, block_size=512),
            "service": NetAttachment(hostfd=9, mac=mac, mtu=1500),
            "data": BlockAttachment(hostfd=2**31 - 1, capacity=2**64 - 4096, block_size=4096),
        },
    )
    assert len(out) == len(mft.raw)
    assert out[:8] == mft.raw[:8]  # version, entries untouched
    assert _entry(out, 0) == _entry(mft.raw, 0)  # reserved entry untouched

    rootfs = _entry(out, 1)
    assert rootfs[:68] == b"rootfs".ljust(68, b"\0")
    assert struct.unpack_from("<I", rootfs, 68) == (1,)
    assert struct.unpack_from("<Q", rootfs, 72) == (64 * 1024 * 1024,)
    assert struct.unpack_from("<H", rootfs, 80) == (512,)
    assert rootfs[82:88] == bytes(6)  # rest of the union
    assert struct.unpack_from("<i", rootfs, 88) == (7,)
    assert rootfs[92:96] == bytes(4)  # upper half of the hostfd/data union
    assert rootfs[96] == 1
    assert rootfs[97:104] == bytes(7)  # struct padding

    service = _entry(out, 2)
    assert struct.unpack_from("<I", service, 68) == (2,)
    assert service[72:78] == mac
    assert struct.unpack_from("<H", service, 78) == (1500,)
    assert service[80:88] == bytes(8)
    assert struct.unpack_from("<i", service, 88) == (9,)
    assert service[96] == 1

    data = _entry(out, 3)
    assert struct.unpack_from("<QH", data, 72) == (2**64 - 4096, 4096)
    assert struct.unpack_from("<i", data, 88) == (2**31 - 1,)


def test_fill_manifest_leaves_unattached_entries_unattached():
    mft = parsed()
    out = fill_manifest(mft, {"service": NetAttachment(3, b"\x02" * 6, 9000)})
    assert _entry(out, 1)[96] == 0
    assert _entry(out, 1) == _entry(mft.raw, 1)
    assert _entry(out, 2)[96] == 1
    assert fill_manifest(mft, {}) == mft.raw
    assert [e.name for e in missing_devices(mft, {"service": None})] == ["rootfs", "data"]


def test_fill_manifest_clears_leftover_union_bytes():
    desc = (
        bytes(4)
        + struct.pack("<II", 1, 2)
        + ec.mft_entry("", ec.RESERVED_FIRST)
        + ec.mft_entry("disk", ec.BLOCK_BASIC, union=b"\xff" * 16, hostfd=-1)
    )
    mft = parse_manifest(desc, WHERE)
    out = fill_manifest(mft, {})
    assert _entry(out, 1)[72:96] == bytes(24)


BAD_FILLS = [
    ("unknown-name", {"nic": NetAttachment(3, bytes(6), 1500)}, "no device named 'nic'"),
    ("block-for-net", {"service": BlockAttachment(3, 4096, 512)}, "not a block device"),
    ("net-for-block", {"rootfs": NetAttachment(3, bytes(6), 1500)}, "not a network device"),
    ("short-mac", {"service": NetAttachment(3, bytes(5), 1500)}, "6 bytes, got 5"),
    ("mtu-too-big", {"service": NetAttachment(3, bytes(6), 70000)}, "MTU 70000"),
    ("block-size-zero", {"rootfs": BlockAttachment(3, 4096, 0)}, "block size 0"),
    ("block-size-big", {"rootfs": BlockAttachment(3, 4096, 65536)}, "block size 65536"),
    ("capacity-negative", {"rootfs": BlockAttachment(3, -1, 512)}, "capacity -1"),
    ("capacity-2-64", {"rootfs": BlockAttachment(3, 2**64, 512)}, "capacity"),
    ("fd-negative", {"rootfs": BlockAttachment(-1, 4096, 512)}, "host fd -1"),
    ("fd-too-big", {"rootfs": BlockAttachment(2**31, 4096, 512)}, "host fd"),
]


@pytest.mark.parametrize(
    ("attached", "needle"), [c[1:] for c in BAD_FILLS], ids=[c[0] for c in BAD_FILLS]
)
def test_fill_manifest_refuses_bad_attachments(attached, needle):
    with pytest.raises(RunncError) as info:
        fill_manifest(parsed(), attached, where="container abc")
    assert needle in info.value.line()
    assert info.value.line().startswith("container abc: ")


def test_unknown_name_error_lists_declared_devices():
    with pytest.raises(RunncError, match=r"declared: rootfs, service, data"):
        fill_manifest(parsed(), {"x": BlockAttachment(3, 4096, 512)})


# --------------------------------------------------------------------------------------------
# the layout constants against a real C compiler


LAYOUT_C = r"""
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
/* The Solo5 manifest ABI (mft_abi.h) restated from its documented layout. */
struct entry {
    char name[68];
    uint32_t type;
    union { struct { uint64_t capacity; uint16_t block_size; } blk;
            struct { uint8_t mac[6]; uint16_t mtu; } net; } u;
    union { int hostfd; void *data; } b;
    bool attached;
};
struct mft { uint32_t version; uint32_t entries; struct entry e[]; };
struct nhdr { uint32_t namesz, descsz, type; char name[8]; };
struct note { struct nhdr h; struct mft m; };
int main(void) {
    printf("%zu %zu %zu %zu %zu %zu %zu %zu %zu %zu\n", sizeof(struct entry),
           offsetof(struct entry, type), offsetof(struct entry, u),
           offsetof(struct entry, u.net.mtu), offsetof(struct entry, u.blk.block_size),
           offsetof(struct entry, b), offsetof(struct entry, attached),
           offsetof(struct mft, e), offsetof(struct note, m) - sizeof(struct nhdr),
           sizeof(struct nhdr));
    return 0;
}
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_layout_constants_match_the_c_compiler(tmp_path: Path):
    src = tmp_path / "layout.c"
    src.write_text(LAYOUT_C)
    exe = tmp_path / "layout"
    subprocess.run(["gcc", "-std=gnu11", "-o", str(exe), str(src)], check=True)
    values = [
        int(v)
        for v in subprocess.run(
            [str(exe)], check=True, capture_output=True, text=True
        ).stdout.split()
    ]
    assert values == [
        m.MFT_ENTRY_SIZE,  # 104
        m._TYPE_AT,  # 68
        m._UNION_AT,  # 72
        78,  # net mtu, written by fill_manifest with "<6sH" at 72
        80,  # block_size, written with "<QH" at 72
        m._HOSTFD_AT,  # 88
        m._ATTACHED_AT,  # 96
        m.MFT_HEADER_SIZE,  # 8
        m.MFT_NOTE_PAD,  # 4
        20,  # note header + "Solo5\0" padded: where every Solo5 descriptor starts
    ]
