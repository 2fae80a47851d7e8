"""Our freestanding spt test guests (csrc/guests/) have the shape Solo5 tenders accept.

The session fixture `guests` builds every guest for both ABI versions with build.py's
`build_guests`; each binary is then read with pyelftools and checked the way solo5-spt's loader
reads it: an x86_64 ET_EXEC, PT_LOAD segments page-aligned at >= 0x100000 and never W+X, and the
Solo5 notes each at the start of its own PT_NOTE segment, with the descriptor's internal
alignment pad (ABI1: none, MFT1: 4 bytes) where Solo5's NOTE_ALIGN puts it. No root needed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import NoteSegment, Segment

BLOCK, NET, RESERVED = 1, 2, 1 << 30
ABI1_NOTE_TYPE = 0x31494241
MFT1_NOTE_TYPE = 0x3154464D
SPT_TARGET = 2
PAGE = 0x1000
PF_X, PF_W = 1, 2

# Every guest and the devices its manifest declares (entry 0, the reserved one, not listed).
DEVICES: dict[str, list[tuple[str, int]]] = {
    "hello": [],
    "time": [],
    "seccomp": [],
    "fault": [],
    "blk": [("storage", BLOCK)],
    "net": [("service0", NET)],
    "lklcmd": [("rootfs", BLOCK), ("tap", NET)],
    "rootfs": [("rootfs", BLOCK)],
    "many": [(f"blk{i}", BLOCK) for i in range(32)] + [(f"net{i}", NET) for i in range(31)],
}
ABIS = {2: "", 1: "abi1"}  # ABI1 note abi_version -> output subdirectory
CASES = [(name, abi) for name in DEVICES for abi in ABIS]

NHDR_SIZE = 20  # Elf64_Nhdr (12) + "Solo5\0" padded to 8
ENTRY = struct.Struct("<68sI16sQ?7x")  # struct mft_entry: 104 bytes
assert ENTRY.size == 104


@dataclass(frozen=True)
class Note:
    namesz: int
    name: bytes
    type: int
    desc: bytes


def _path(guests: Path, name: str, abi: int) -> Path:
    return guests / ABIS[abi] / f"{name}.spt"


def _segments(elf: ELFFile, p_type: str) -> list[Segment]:
    return [s for s in elf.iter_segments() if s.header.p_type == p_type]


def _first_note(data: bytes) -> Note:
    """solo5-spt's rule: only the note at the start of a PT_NOTE segment is looked at."""
    namesz, descsz, ntype = struct.unpack_from("<III", data)
    name = data[12 : 12 + 8]
    return Note(namesz, name, ntype, data[NHDR_SIZE : NHDR_SIZE + descsz])


def _solo5_note(path: Path, note_type: int) -> Note:
    with path.open("rb") as f:
        elf = ELFFile(f)
        found = [
            note
            for seg in _segments(elf, "PT_NOTE")
            if (note := _first_note(seg.data())).type == note_type
        ]
        # pyelftools' own note walker must see the same descriptor bytes.
        walked = [
            n["n_descdata"]
            for seg in _segments(elf, "PT_NOTE")
            if isinstance(seg, NoteSegment)
            for n in seg.iter_notes()
            if n["n_name"] == "Solo5" and n["n_type"] == note_type
        ]
    assert len(found) == 1, f"{path.name}: want one PT_NOTE starting with note {note_type:#x}"
    assert walked == [found[0].desc]
    return found[0]


def test_every_guest_is_built_for_both_abis(build_module, guests: Path) -> None:  # type: ignore[no-untyped-def]
    assert {p.stem for p in build_module.guest_sources()} == set(DEVICES), (
        "a guest was added or removed: update DEVICES here and csrc/guests/README.md"
    )
    for name, abi in CASES:
        assert _path(guests, name, abi).is_file()


@pytest.mark.parametrize(("name", "abi"), CASES)
def test_elf_header_is_x86_64_exec(guests: Path, name: str, abi: int) -> None:
    with _path(guests, name, abi).open("rb") as f:
        elf = ELFFile(f)
        assert elf.elfclass == 64 and elf.little_endian
        assert elf.header.e_type == "ET_EXEC"
        assert elf.header.e_machine == "EM_X86_64"
        entry = elf.header.e_entry
        text = [
            s
            for s in _segments(elf, "PT_LOAD")
            if s.header.p_flags & PF_X
            and s.header.p_vaddr <= entry < s.header.p_vaddr + s.header.p_memsz
        ]
        assert len(text) == 1, f"entry {entry:#x} is not inside an executable PT_LOAD"
        interp = _segments(elf, "PT_INTERP")
        assert [s.get_interp_name() for s in interp] == ["/nonexistent/solo5/"]


@pytest.mark.parametrize(("name", "abi"), CASES)
def test_load_segments_page_aligned_high_never_wx(guests: Path, name: str, abi: int) -> None:
    with _path(guests, name, abi).open("rb") as f:
        loads = [s.header for s in _segments(ELFFile(f), "PT_LOAD")]
    assert loads, "no PT_LOAD"
    previous_end = 0
    for h in loads:
        start, end = h.p_vaddr, -(-(h.p_vaddr + h.p_memsz) // PAGE) * PAGE
        assert start >= 0x100000, f"PT_LOAD at {start:#x} is below 0x100000"
        assert start % PAGE == 0 and h.p_align == PAGE and h.p_offset % PAGE == 0
        assert h.p_filesz <= h.p_memsz
        assert not (h.p_flags & PF_W and h.p_flags & PF_X), f"PT_LOAD at {start:#x} is W+X"
        # Solo5 loaders demand ascending, non-overlapping segments (after page rounding).
        assert start >= previous_end
        previous_end = end
    assert [h.p_flags for h in loads] == [5, 4, 6], "expected R+X text, R rodata, R+W data"


@pytest.mark.parametrize(("name", "abi"), CASES)
def test_abi1_note_names_spt_and_the_built_abi_version(guests: Path, name: str, abi: int) -> None:
    note = _solo5_note(_path(guests, name, abi), ABI1_NOTE_TYPE)
    assert note.namesz == 6 and note.name == b"Solo5\0\0\0"
    # struct abi1_info is 4-aligned: no pad, 16 bytes (target, version, 2 reserved words).
    assert struct.unpack("<IIII", note.desc) == (SPT_TARGET, abi, 0, 0)


@pytest.mark.parametrize(("name", "abi"), CASES)
def test_mft1_note_declares_the_guest_devices(guests: Path, name: str, abi: int) -> None:
    note = _solo5_note(_path(guests, name, abi), MFT1_NOTE_TYPE)
    assert note.namesz == 6 and note.name == b"Solo5\0\0\0"
    # struct mft is 8-aligned, so its body starts 4 bytes into the descriptor (MFT1_NOTE_ALIGN).
    pad, body = note.desc[:4], note.desc[4:]
    assert pad == b"\0" * 4
    version, entries = struct.unpack_from("<II", body)
    assert version == 1
    assert entries == len(DEVICES[name]) + 1 <= 64
    assert len(body) == 8 + entries * ENTRY.size, "solo5 checks the exact manifest size"

    declared = []
    for i in range(entries):
        raw_name, dev_type, union, hostfd_or_data, attached = ENTRY.unpack_from(body, 8 + i * 104)
        assert raw_name[-1] == 0, "name[67] must be NUL"
        # The tender fills these in; in the binary they must be zero (solo5 rejects attached).
        assert (union, hostfd_or_data, attached) == (b"\0" * 16, 0, False)
        declared.append((raw_name.rstrip(b"\0").decode(), dev_type))
    assert declared[0] == ("", RESERVED)
    assert declared[1:] == DEVICES[name]


@pytest.mark.parametrize(("name", "abi"), CASES)
def test_notes_are_inside_the_read_only_load_segment(guests: Path, name: str, abi: int) -> None:
    """The runtime compares the tender's manifest copy with the note it was linked with."""
    with _path(guests, name, abi).open("rb") as f:
        elf = ELFFile(f)
        loads = _segments(elf, "PT_LOAD")
        for note in _segments(elf, "PT_NOTE"):
            vaddr, size = note.header.p_vaddr, note.header.p_filesz
            holders = [
                s.header.p_flags
                for s in loads
                if s.header.p_vaddr <= vaddr
                and vaddr + size <= s.header.p_vaddr + s.header.p_filesz
            ]
            assert holders == [4], f"PT_NOTE at {vaddr:#x} is not in the R-only PT_LOAD"
