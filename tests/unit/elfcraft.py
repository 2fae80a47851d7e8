"""elfcraft: build synthetic Solo5-like unikernel ELF files for tests, valid or malformed.

Pure Python, no toolchain. A `Unikernel` is a mutable description (ELF header fields, a list of
program headers with their contents); `build()` lays it out and returns the bytes. Start from a
valid image and break exactly one thing:

    from tests.unit.elfcraft import Unikernel, Seg, PF_R, PF_W, PF_X, NET_BASIC

    uk = Unikernel.solo5(target="spt", abi_version=2, devices=[("service", NET_BASIC)])
    uk.write(tmp_path / "ok.spt")                  # loads fine

    uk.text.flags = PF_R | PF_W | PF_X             # W+X text segment
    uk.header.machine = EM_AARCH64                 # wrong machine
    uk.abi_note.desc = abi_desc(target=3)          # unknown target
    uk.mft_note.desc = mft_desc([("a", 1), ("a", 1)])   # duplicate names
    uk.truncate = 200                              # cut the file

The default image (`Unikernel.solo5()`), all addresses page-aligned:

    [empty PT_LOAD at 0]  only with empty_load_at_zero=True (Solo5 >= 0.8 binaries)
    PT_INTERP             "/nonexistent/solo5/"
    text    PT_LOAD R-X   0x100000   64 bytes of code (hlt; jmp .-1), entry = 0x100000
    rodata  PT_LOAD R--   0x101000   a short string
    data    PT_LOAD RW-   0x102000   16 bytes, p_memsz 0x1800 (BSS) -> kernel_end 0x104000
    PT_NOTE               the Solo5 ABI1 note
    PT_NOTE               the Solo5 MFT1 note (reserved entry 0 + devices)

`tests` and `tests/unit` are packages, so any test imports it as `tests.unit.elfcraft`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# ELF constants (the subset unikernels use).
ET_EXEC, ET_DYN = 2, 3
EM_386, EM_X86_64, EM_AARCH64 = 3, 62, 183
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2
PT_NULL, PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE = 0, 1, 2, 3, 4
PF_X, PF_W, PF_R = 1, 2, 4
EHDR_SIZE, PHDR_SIZE = 64, 56
PAGE = 0x1000

# Solo5 constants (elf_abi.h, mft_abi.h).
SOLO5_NOTE_NAME = b"Solo5\0"
ABI1_NOTE_TYPE = 0x31494241
MFT1_NOTE_TYPE = 0x3154464D
TARGETS = {"hvt": 1, "spt": 2}
BLOCK_BASIC, NET_BASIC, RESERVED_FIRST = 1, 2, 0x40000000
MFT_ENTRY_SIZE = 104
MFT_NAME_SIZE = 68
MFT_NOTE_PAD = 4  # struct mft is 8-aligned; the descriptor starts 20 bytes into the note

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")

TEXT_CODE = bytes.fromhex("f4ebfd").ljust(64, b"\x90")  # hlt; jmp .-1; nop padding


# --------------------------------------------------------------------------------------------
# notes and manifests


def note_bytes(
    name: bytes,
    ntype: int,
    desc: bytes,
    *,
    namesz: int | None = None,
    descsz: int | None = None,
) -> bytes:
    """One ELF note with 4-byte padding; namesz/descsz override the header's sizes only."""

    def pad4(b: bytes) -> bytes:
        return b + bytes(-len(b) % 4)

    header = struct.pack(
        "<III",
        len(name) if namesz is None else namesz,
        len(desc) if descsz is None else descsz,
        ntype,
    )
    return header + pad4(name) + pad4(desc)


@dataclass
class Note:
    """A note; `desc` is the descriptor exactly as stored (MFT1: with its 4-byte pad)."""

    type: int
    desc: bytes
    name: bytes = SOLO5_NOTE_NAME
    namesz: int | None = None  # override n_namesz (default len(name))
    descsz: int | None = None  # override n_descsz (default len(desc))

    def encode(self) -> bytes:
        return note_bytes(self.name, self.type, self.desc, namesz=self.namesz, descsz=self.descsz)


def abi_desc(target: int | str = "spt", version: int = 2, *, size: int = 16) -> bytes:
    """An ABI1 descriptor: u32 target, u32 version, zero padding up to SIZE bytes."""
    target_value = TARGETS[target] if isinstance(target, str) else target
    return struct.pack("<II", target_value, version).ljust(size, b"\0")[:size]


def mft_entry(
    name: str | bytes,
    etype: int,
    *,
    attached: bool = False,
    hostfd: int = 0,
    union: bytes = b"",
) -> bytes:
    """One 104-byte struct mft_entry. A bytes NAME is stored as is (may omit the NUL)."""
    raw_name = name.encode() if isinstance(name, str) else name
    name_field = raw_name[:MFT_NAME_SIZE].ljust(MFT_NAME_SIZE, b"\0")
    entry = bytearray(MFT_ENTRY_SIZE)
    entry[0:MFT_NAME_SIZE] = name_field
    struct.pack_into("<I", entry, 68, etype)
    entry[72 : 72 + len(union[:16])] = union[:16]
    struct.pack_into("<i", entry, 88, hostfd)
    entry[96] = 1 if attached else 0
    return bytes(entry)


def mft_struct(
    devices: Iterable[tuple[str | bytes, int]] = (),
    *,
    version: int = 1,
    count: int | None = None,
    reserved: bool = True,
    extra: bytes = b"",
) -> bytes:
    """A `struct mft`: header + (reserved entry 0 unless reserved=False) + one entry per device.

    COUNT overrides the header's entry count; EXTRA is appended (for size mismatches).
    """
    entries = [mft_entry("", RESERVED_FIRST)] if reserved else []
    entries += [mft_entry(name, etype) for name, etype in devices]
    header = struct.pack("<II", version, len(entries) if count is None else count)
    return header + b"".join(entries) + extra


def mft_desc(devices: Iterable[tuple[str | bytes, int]] = (), **kwargs: object) -> bytes:
    """The MFT1 note descriptor: the 4-byte alignment pad + `mft_struct(devices, **kwargs)`."""
    return bytes(MFT_NOTE_PAD) + mft_struct(devices, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# the ELF image


@dataclass
class Header:
    """ELF header fields; None means "computed by build()"."""

    magic: bytes = b"\x7fELF"
    elfclass: int = ELFCLASS64
    data: int = ELFDATA2LSB
    ident_version: int = 1
    type: int = ET_EXEC
    machine: int = EM_X86_64
    version: int = 1
    entry: int = 0x100000
    phoff: int | None = None  # e_phoff written; the table itself always follows the header
    shoff: int = 0
    flags: int = 0
    ehsize: int = EHDR_SIZE
    phentsize: int = PHDR_SIZE
    phnum: int | None = None  # default: len(segments)
    shentsize: int = 0
    shnum: int = 0
    shstrndx: int = 0

    def encode(self, phoff: int, phnum: int) -> bytes:
        ident = (
            self.magic[:4].ljust(4, b"\0") + bytes([self.elfclass, self.data, self.ident_version])
        ).ljust(16, b"\0")
        return EHDR.pack(
            ident,
            self.type,
            self.machine,
            self.version,
            self.entry,
            phoff,
            self.shoff,
            self.flags,
            self.ehsize,
            self.phentsize,
            phnum,
            self.shentsize,
            self.shnum,
            self.shstrndx,
        )


@dataclass
class Seg:
    """A program header and the bytes it describes.

    `content` (or, for note segments, the encoded `notes`) is written into the file by build();
    `offset`, `filesz`, `memsz`, `paddr` default to what build() computes and can be forced to
    any value to describe bytes that are not there.
    """

    type: int = PT_LOAD
    flags: int = PF_R
    vaddr: int = 0
    content: bytes = b""
    notes: list[Note] | None = None
    memsz: int | None = None  # default max(filesz, len(content))
    align: int = PAGE
    offset: int | None = None
    filesz: int | None = None
    paddr: int | None = None

    def payload(self) -> bytes:
        if self.notes is not None:
            return b"".join(n.encode() for n in self.notes)
        return self.content


@dataclass
class Built:
    """build()'s result: the bytes, where the phdr table is, and where each segment's bytes are."""

    data: bytes
    phoff: int
    segment_offsets: tuple[int, ...]


@dataclass
class Unikernel:
    """A Solo5-like ELF image to build; see the module docstring."""

    header: Header = field(default_factory=Header)
    segments: list[Seg] = field(default_factory=list)
    trailer: bytes = b""  # appended after everything
    truncate: int | None = None  # cut the file to this many bytes

    # Handles on the parts Unikernel.solo5() creates (None when absent).
    text: Seg | None = None
    rodata: Seg | None = None
    data: Seg | None = None
    abi_note: Note | None = None
    mft_note: Note | None = None

    @classmethod
    def solo5(
        cls,
        target: int | str = "spt",
        abi_version: int = 2,
        devices: Sequence[tuple[str | bytes, int]] = (),
        *,
        empty_load_at_zero: bool = False,
        interp: bool = True,
        notes_in_one_segment: bool = False,
    ) -> Unikernel:
        """A valid unikernel for TARGET ("spt", "hvt" or a number) declaring DEVICES."""
        text = Seg(PT_LOAD, PF_R | PF_X, 0x100000, TEXT_CODE)
        rodata = Seg(PT_LOAD, PF_R, 0x101000, b"elfcraft rodata\0")
        data = Seg(PT_LOAD, PF_R | PF_W, 0x102000, bytes(range(16)), memsz=0x1800)
        abi = Note(ABI1_NOTE_TYPE, abi_desc(target, abi_version))
        mft = Note(MFT1_NOTE_TYPE, mft_desc(devices))
        segments: list[Seg] = []
        if empty_load_at_zero:
            segments.append(Seg(PT_LOAD, PF_R, 0, b"", memsz=0, offset=0))
        if interp:
            segments.append(Seg(PT_INTERP, PF_R, 0, b"/nonexistent/solo5/\0", align=1))
        segments += [text, rodata, data]
        if notes_in_one_segment:
            segments.append(Seg(PT_NOTE, PF_R, 0, notes=[abi, mft], align=4))
        else:
            segments.append(Seg(PT_NOTE, PF_R, 0, notes=[abi], align=4))
            segments.append(Seg(PT_NOTE, PF_R, 0, notes=[mft], align=4))
        return cls(
            header=Header(entry=text.vaddr),
            segments=segments,
            text=text,
            rodata=rodata,
            data=data,
            abi_note=abi,
            mft_note=mft,
        )

    def note_segments(self) -> list[Seg]:
        return [s for s in self.segments if s.type == PT_NOTE]

    def segment_of(self, note: Note | None) -> Seg:
        """The PT_NOTE segment holding NOTE (e.g. `uk.segment_of(uk.abi_note)`)."""
        for seg in self.segments:
            if seg.notes and any(n is note for n in seg.notes):
                return seg
        raise LookupError("note is in no segment")

    def build(self) -> Built:
        """Lay the image out: header, phdr table, then each segment's bytes in order.

        PT_LOAD bytes go at a file offset congruent to their vaddr modulo the page size (as
        linkers do); other segments' bytes are 8-aligned.
        """
        nseg = len(self.segments)
        phoff = EHDR_SIZE  # where the table is written; the header may claim otherwise
        phnum = nseg if self.header.phnum is None else self.header.phnum
        cursor = EHDR_SIZE + nseg * PHDR_SIZE
        body = bytearray(cursor)
        offsets: list[int] = []
        phdrs: list[bytes] = []
        for seg in self.segments:
            payload = seg.payload()
            if not payload:
                where = 0
            elif seg.type == PT_LOAD:
                where = _align_up(cursor, PAGE) + seg.vaddr % PAGE
            else:
                where = _align_up(cursor, 8)
            if payload:
                body.extend(bytes(where + len(payload) - len(body)))
                body[where : where + len(payload)] = payload
                cursor = where + len(payload)
            offsets.append(where)
            filesz = len(payload) if seg.filesz is None else seg.filesz
            memsz = max(filesz, len(payload)) if seg.memsz is None else seg.memsz
            phdrs.append(
                PHDR.pack(
                    seg.type,
                    seg.flags,
                    where if seg.offset is None else seg.offset,
                    seg.vaddr,
                    seg.vaddr if seg.paddr is None else seg.paddr,
                    filesz,
                    memsz,
                    seg.align,
                )
            )
        table = b"".join(phdrs)
        body[phoff : phoff + len(table)] = table
        e_phoff = phoff if self.header.phoff is None else self.header.phoff
        body[0:EHDR_SIZE] = self.header.encode(e_phoff, phnum)
        data = bytes(body) + self.trailer
        if self.truncate is not None:
            data = data[: self.truncate]
        return Built(data=data, phoff=phoff, segment_offsets=tuple(offsets))

    def to_bytes(self) -> bytes:
        return self.build().data

    def write(self, path: str | Path) -> Path:
        """Write the image to PATH (mode 0755, like a linker output) and return PATH."""
        target = Path(path)
        target.write_bytes(self.to_bytes())
        target.chmod(0o755)
        return target


def _align_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align
