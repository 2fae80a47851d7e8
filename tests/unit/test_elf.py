"""Unikernel ELF loading and validation (runnc_py.unikernel.elf) and `runnc-py inspect`.

Synthetic images come from tests.unit.elfcraft (one defect each); real ones from gcc: a tiny
image built here and the project's own test guests (the session `guests` fixture). No root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from elftools.elf.elffile import ELFFile

from runnc_py.cli import cli
from runnc_py.errors import RunncError
from runnc_py.unikernel.elf import (
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    SUPPORTED_ABI,
    Segment,
    Target,
    UnikernelImage,
    load_unikernel,
    looks_like_unikernel,
)
from runnc_py.unikernel.manifest import DeviceType
from tests.unit import elfcraft as ec

DEVICES = [("rootfs", ec.BLOCK_BASIC), ("service", ec.NET_BASIC)]

# The segments of elfcraft's default image, as load_unikernel must report them.
DEFAULT_SEGMENTS = (
    Segment(vaddr=0x100000, offset=0x1000, filesz=64, memsz=64, flags=ec.PF_R | ec.PF_X),
    Segment(vaddr=0x101000, offset=0x2000, filesz=16, memsz=16, flags=ec.PF_R),
    Segment(vaddr=0x102000, offset=0x3000, filesz=16, memsz=0x1800, flags=ec.PF_R | ec.PF_W),
)


def write(tmp_path: Path, uk: ec.Unikernel, name: str = "app.spt") -> Path:
    return uk.write(tmp_path / name)


# --------------------------------------------------------------------------------------------
# valid images


@pytest.mark.parametrize("abi_version", [1, 2])
@pytest.mark.parametrize("target", [Target.SPT, Target.HVT])
def test_valid_image_every_target_and_abi(tmp_path: Path, target: Target, abi_version: int):
    path = write(tmp_path, ec.Unikernel.solo5(int(target), abi_version, DEVICES))
    image = load_unikernel(path)
    assert image == UnikernelImage(
        path=str(path),
        target=target,
        abi_version=abi_version,
        entry=0x100000,
        kernel_end=0x104000,  # data at 0x102000 + 0x1800 BSS, rounded up to its 4 KiB p_align
        segments=DEFAULT_SEGMENTS,
        manifest=image.manifest,
        machine="x86_64",
    )
    assert [(e.index, e.name, e.type) for e in image.manifest.devices()] == [
        (1, "rootfs", DeviceType.BLOCK_BASIC),
        (2, "service", DeviceType.NET_BASIC),
    ]
    assert image.manifest.raw == ec.mft_struct(DEVICES)
    assert abi_version in SUPPORTED_ABI[target]


def test_empty_load_at_zero_is_skipped(tmp_path: Path):
    image = load_unikernel(write(tmp_path, ec.Unikernel.solo5(empty_load_at_zero=True)))
    assert image.segments == DEFAULT_SEGMENTS
    assert image.kernel_end == 0x104000


def test_notes_may_share_one_pt_note_segment(tmp_path: Path):
    uk = ec.Unikernel.solo5(devices=DEVICES, notes_in_one_segment=True)
    image = load_unikernel(write(tmp_path, uk))
    assert [e.name for e in image.manifest.devices()] == ["rootfs", "service"]


def test_foreign_notes_and_segments_are_ignored(tmp_path: Path):
    uk = ec.Unikernel.solo5(interp=False)
    build_id = ec.Note(3, bytes(20), name=b"GNU\0")  # NT_GNU_BUILD_ID
    # A GNU note first in a segment, a Solo5 note of another type, a PT_GNU_STACK, a PT_TLS.
    uk.segments[-1].notes.insert(0, build_id)  # type: ignore[union-attr]
    uk.segments.append(ec.Seg(ec.PT_NOTE, ec.PF_R, notes=[ec.Note(0x31534F4E, bytes(4))]))
    uk.segments.append(ec.Seg(0x6474E551, ec.PF_R | ec.PF_W, align=16))
    uk.segments.append(ec.Seg(7, ec.PF_R, 0x102010, b"", memsz=8, align=8))
    image = load_unikernel(write(tmp_path, uk))
    assert image.segments == DEFAULT_SEGMENTS


def test_kernel_end_rounds_up_to_p_align(tmp_path: Path):
    uk = ec.Unikernel.solo5()
    uk.segments = [s for s in uk.segments if s not in (uk.rodata, uk.data)]
    assert uk.text is not None
    uk.text.vaddr = 0x200000
    uk.text.align = 0x200000
    uk.header.entry = 0x200010
    image = load_unikernel(write(tmp_path, uk))
    assert image.kernel_end == 0x400000
    assert image.entry == 0x200010


def test_bss_only_segment_counts_towards_kernel_end(tmp_path: Path):
    # solo5 skips PT_LOADs with p_filesz == 0; we map them, so the heap cannot overlap them.
    uk = ec.Unikernel.solo5()
    uk.segments.insert(5, ec.Seg(ec.PT_LOAD, ec.PF_R | ec.PF_W, 0x104000, b"", memsz=0x3000))
    image = load_unikernel(write(tmp_path, uk))
    assert image.segments[-1] == Segment(0x104000, 0, 0, 0x3000, ec.PF_R | ec.PF_W)
    assert image.kernel_end == 0x107000


def test_accepts_a_pathlike_and_reports_a_str(tmp_path: Path):
    path = write(tmp_path, ec.Unikernel.solo5())
    assert load_unikernel(path).path == str(path)
    assert load_unikernel(str(path)).path == str(path)


PROTS = [
    (ec.PF_R, PROT_READ, "r--"),
    (ec.PF_R | ec.PF_X, PROT_READ | PROT_EXEC, "r-x"),
    (ec.PF_R | ec.PF_W, PROT_READ | PROT_WRITE, "rw-"),
    (ec.PF_X, PROT_EXEC, "--x"),
    (0, 0, "---"),
    (ec.PF_R | ec.PF_W | ec.PF_X, 7, "rwx"),
]


@pytest.mark.parametrize(("flags", "prot", "rwx"), PROTS)
def test_segment_prot(flags: int, prot: int, rwx: str):
    segment = Segment(0x100000, 0, 0, 0, flags)
    assert segment.prot == prot
    assert segment.rwx == rwx


# --------------------------------------------------------------------------------------------
# malformed images: one defect each, one clear line naming the file


def _drop_note_segment(which: str) -> Callable[[ec.Unikernel], None]:
    def mutate(uk: ec.Unikernel) -> None:
        uk.segments.remove(uk.segment_of(uk.abi_note if which == "abi" else uk.mft_note))

    return mutate


def _set(path: str, value: object) -> Callable[[ec.Unikernel], None]:
    """Mutator setting "truncate", "header.machine", "text.flags", "abi_seg.offset"... to VALUE."""

    def mutate(uk: ec.Unikernel) -> None:
        if "." not in path:
            setattr(uk, path, value)
            return
        part, attr = path.split(".")
        target = uk.segment_of(uk.abi_note) if part == "abi_seg" else getattr(uk, part)
        setattr(target, attr, value)

    return mutate


def _each(*mutators: Callable[[ec.Unikernel], None]) -> Callable[[ec.Unikernel], None]:
    def mutate(uk: ec.Unikernel) -> None:
        for m in mutators:
            m(uk)

    return mutate


def _extra_note(note: ec.Note) -> Callable[[ec.Unikernel], None]:
    def mutate(uk: ec.Unikernel) -> None:
        uk.segments.append(ec.Seg(ec.PT_NOTE, ec.PF_R, notes=[note], align=4))

    return mutate


def _swap_text_and_rodata(uk: ec.Unikernel) -> None:
    i, j = uk.segments.index(uk.text), uk.segments.index(uk.rodata)  # type: ignore[arg-type]
    uk.segments[i], uk.segments[j] = uk.segments[j], uk.segments[i]


def _huge_note_segment(uk: ec.Unikernel) -> None:
    uk.trailer = bytes(70000)
    uk.note_segments()[0].filesz = 66000


def _only_empty_load(uk: ec.Unikernel) -> None:
    uk.segments = [s for s in uk.segments if s.type != ec.PT_LOAD]
    uk.segments.insert(0, ec.Seg(ec.PT_LOAD, ec.PF_R, 0, b"", memsz=0))


MALFORMED: list[tuple[str, Callable[[ec.Unikernel], None], str]] = [
    # file and ELF header
    ("empty-file", _set("truncate", 0), "not an ELF file (only 0 bytes)"),
    ("bad-magic", _set("header.magic", b"\x7fELX"), "not an ELF file (bad magic"),
    ("truncated-header", _set("truncate", 40), "truncated ELF header (40 bytes"),
    ("elf32", _set("header.elfclass", ec.ELFCLASS32), "ELF32 file, Solo5 unikernels are ELF64"),
    ("bad-class", _set("header.elfclass", 7), "EI_CLASS 7"),
    ("big-endian", _set("header.data", ec.ELFDATA2MSB), "not a little-endian ELF"),
    ("ident-version", _set("header.ident_version", 0), "unsupported ELF version 0"),
    ("e-version", _set("header.version", 2), "unsupported ELF version 2"),
    ("et-dyn", _set("header.type", ec.ET_DYN), "ELF type is ET_DYN, a Solo5 unikernel is ET_EXEC"),
    ("et-rel", _set("header.type", 1), "ELF type is ET_REL"),
    ("aarch64", _set("header.machine", ec.EM_AARCH64), "built for aarch64, this host runs x86_64"),
    ("i386", _set("header.machine", ec.EM_386), "unsupported machine EM_386"),
    ("ehsize", _set("header.ehsize", 52), "ELF header size 52 is not 64"),
    ("phentsize", _set("header.phentsize", 32), "program header size 32 is not 56"),
    ("phnum-zero", _set("header.phnum", 0), "no program headers"),
    ("phnum-xnum", _set("header.phnum", 0xFFFF), "too many program headers (65535"),
    ("phoff-beyond-eof", _set("header.phoff", 1 << 40), "truncated program header table"),
    ("phoff-wraps", _set("header.phoff", 2**64 - 8), "truncated program header table"),
    ("table-cut", _set("truncate", 64 + 3 * 56), "truncated program header table"),
    # segments past the end of the file
    ("load-offset-beyond-eof", _set("data.offset", 1 << 20), "truncated file: program header"),
    (
        "load-filesz-beyond-eof",
        _each(_set("text.filesz", 1 << 30), _set("text.memsz", 1 << 30)),
        "(PT_LOAD) needs bytes",
    ),
    ("cut-in-data-segment", _set("truncate", 0x3008), "(PT_LOAD) needs bytes 0x3000..0x3010"),
    ("note-beyond-eof", _set("abi_seg.offset", 1 << 24), "(PT_NOTE) needs bytes"),
    # Solo5 notes
    ("no-abi-note", _drop_note_segment("abi"), "no Solo5 ABI1 note"),
    ("abi-note-other-owner", _set("abi_note.name", b"Solo6\0"), "no Solo5 ABI1 note"),
    ("abi-note-short-namesz", _set("abi_note.namesz", 5), "no Solo5 ABI1 note"),
    (
        "target-virtio",
        _set("abi_note.desc", ec.abi_desc(3, 2)),
        "unknown Solo5 target 3 (virtio, not supported",
    ),
    ("target-zero", _set("abi_note.desc", ec.abi_desc(0, 2)), "unknown Solo5 target 0"),
    ("target-huge", _set("abi_note.desc", ec.abi_desc(0xFFFFFFFF, 2)), "target 4294967295"),
    (
        "abi-version-3",
        _set("abi_note.desc", ec.abi_desc("spt", 3)),
        "unknown Solo5 ABI version 3 for spt (known: 1, 2)",
    ),
    ("abi-version-0", _set("abi_note.desc", ec.abi_desc("hvt", 0)), "ABI version 0 for hvt"),
    (
        "abi-desc-short",
        _set("abi_note.desc", ec.abi_desc(size=8)),
        "ABI1 note descriptor is 8 bytes",
    ),
    ("abi-desc-long", _set("abi_note.desc", ec.abi_desc(size=36)), "descriptor is 36 bytes"),
    (
        "abi-descsz-past-segment",
        _set("abi_note.descsz", 1000),
        "runs past the end of its segment",
    ),
    (
        "two-abi-notes",
        _extra_note(ec.Note(ec.ABI1_NOTE_TYPE, ec.abi_desc())),
        "more than one Solo5 ABI1 note",
    ),
    (
        "two-mft-notes",
        _extra_note(ec.Note(ec.MFT1_NOTE_TYPE, ec.mft_desc())),
        "more than one Solo5 MFT1 note",
    ),
    ("huge-note-segment", _huge_note_segment, "is 66000 bytes, more than 65536"),
    ("no-manifest", _drop_note_segment("mft"), "no Solo5 MFT1 manifest note"),
    ("manifest-version", _set("mft_note.desc", ec.mft_desc(version=2)), "manifest version 2"),
    (
        "manifest-duplicate",
        _set("mft_note.desc", ec.mft_desc([("a", 1), ("a", 2)])),
        "'a' is declared twice",
    ),
    (
        "manifest-65-entries",
        _set("mft_note.desc", ec.mft_desc([(f"d{i}", 1) for i in range(64)])),
        "more than the 6668",
    ),
    (
        "manifest-no-pad",
        _set("mft_note.desc", ec.mft_struct(DEVICES)),
        "manifest version 3 is not supported",  # without the pad, entries (3) reads as version
    ),
    # PT_LOAD rules
    ("w+x", _set("text.flags", ec.PF_R | ec.PF_W | ec.PF_X), "both writable and executable"),
    ("w+x-data", _set("data.flags", ec.PF_W | ec.PF_X), "both writable and executable"),
    ("filesz>memsz", _set("data.memsz", 8), "p_filesz 0x10 is larger than p_memsz 0x8"),
    (
        "below-1mib",
        _each(_set("text.vaddr", 0xFF000), _set("header.entry", 0xFF000)),
        "below 0x100000, the lowest load address",
    ),
    ("below-1mib-once-aligned", _set("text.align", 0x200000), "starts at 0x0 once aligned"),
    ("align-zero", _set("rodata.align", 0), "p_align 0x0 is not a power of two"),
    ("align-odd", _set("rodata.align", 0x1800), "p_align 0x1800 is not a power of two"),
    (
        "misaligned-start",
        _each(_set("rodata.vaddr", 0x101010), _set("rodata.align", 1)),
        "0x101010..0x101020 is not aligned to 0x1000-byte pages",
    ),
    (
        "misaligned-end",
        _set("rodata.align", 16),
        "0x101000..0x101010 is not aligned to 0x1000-byte pages",
    ),
    ("overlap-same-page", _set("rodata.vaddr", 0x100800), "overlaps the previous one"),
    ("overlap-bss", _set("rodata.memsz", 0x1800), "overlaps the previous one (which ends at"),
    ("descending", _swap_text_and_rodata, "not in ascending address order"),
    (
        "wraps-2-64",
        _each(_set("data.vaddr", 2**64 - 0x1000), _set("data.memsz", 0x2000)),
        "runs past the end of the 64-bit address space",
    ),
    ("no-load", _only_empty_load, "no loadable (PT_LOAD) segment"),
    # entry point
    ("entry-in-data", _set("header.entry", 0x102000), "entry point 0x102000 is not inside"),
    ("entry-after-text", _set("header.entry", 0x100040), "entry point 0x100040"),
    ("entry-zero", _set("header.entry", 0), "entry point 0x0 is not inside"),
    ("entry-in-rodata", _set("header.entry", 0x101000), "executable PT_LOAD segment"),
]


def _default() -> ec.Unikernel:
    return ec.Unikernel.solo5(devices=DEVICES)


@pytest.mark.parametrize(
    ("mutate", "needle"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_image_is_refused(tmp_path: Path, mutate, needle: str):
    uk = _default()
    mutate(uk)
    path = write(tmp_path, uk)
    with pytest.raises(RunncError) as info:
        load_unikernel(path)
    line = info.value.line()
    assert needle in line
    assert line.startswith(f"{path}: ")
    assert "\n" not in line
    assert info.value.status == 1


def test_every_malformed_case_is_valid_without_its_defect(tmp_path: Path):
    """Guards the table: the defect, not some other accident, makes each case fail."""
    load_unikernel(write(tmp_path, _default()))


def test_missing_file(tmp_path: Path):
    with pytest.raises(RunncError, match=r": no such file$") as info:
        load_unikernel(tmp_path / "absent.spt")
    assert str(tmp_path / "absent.spt") in info.value.line()


def test_directory(tmp_path: Path):
    with pytest.raises(RunncError, match="is a directory"):
        load_unikernel(tmp_path)


def test_fifo_is_refused_without_blocking(tmp_path: Path):
    fifo = tmp_path / "fifo.spt"
    os.mkfifo(fifo)
    with pytest.raises(RunncError, match="not a regular file"):
        load_unikernel(fifo)
    assert looks_like_unikernel(fifo) is False


def test_symlink_loop(tmp_path: Path):
    loop = tmp_path / "loop.spt"
    loop.symlink_to(loop)
    with pytest.raises(RunncError, match="cannot open"):
        load_unikernel(loop)


# --------------------------------------------------------------------------------------------
# the cheap probe


def test_looks_like_unikernel(tmp_path: Path):
    good = write(tmp_path, ec.Unikernel.solo5(), "good.spt")
    hvt1 = write(tmp_path, ec.Unikernel.solo5("hvt", 1), "hvt1.hvt")
    # The probe only looks for the ABI note: a W+X image still "looks like" one.
    wx = ec.Unikernel.solo5()
    wx.text.flags = 7  # type: ignore[union-attr]
    wx_path = write(tmp_path, wx, "wx.spt")
    no_abi = _default()
    _drop_note_segment("abi")(no_abi)
    no_abi_path = write(tmp_path, no_abi, "noabi.spt")
    text = tmp_path / "script.sh"
    text.write_text("#!/bin/sh\necho hi\n")
    cut = ec.Unikernel.solo5()
    cut.truncate = 0x3020
    cut_path = write(tmp_path, cut, "cut.spt")

    assert looks_like_unikernel(good) is True
    assert looks_like_unikernel(str(hvt1)) is True
    assert looks_like_unikernel(wx_path) is True
    assert looks_like_unikernel(no_abi_path) is False
    assert looks_like_unikernel(cut_path) is False
    assert looks_like_unikernel(text) is False
    assert looks_like_unikernel(tmp_path) is False
    assert looks_like_unikernel(tmp_path / "absent") is False
    assert looks_like_unikernel("bad\0path") is False
    assert looks_like_unikernel("/bin/sh") is False


# --------------------------------------------------------------------------------------------
# real images built by gcc and ld


TINY_C = r"""
#include <stdbool.h>
#include <stdint.h>
/* Solo5's note layouts (elf_abi.h, mft_abi.h), restated. */
struct nhdr { uint32_t namesz, descsz, type; char name[8]; };
struct abi_note { struct nhdr h; struct { uint32_t target, version, r0, r1; } i; };
struct entry {
    char name[68]; uint32_t type;
    union { struct { uint64_t cap; uint16_t bs; } b;
            struct { uint8_t mac[6]; uint16_t mtu; } n; } u;
    union { int fd; void *p; } b;
    bool attached;
};
struct mft_note { struct nhdr h; struct { uint32_t version, entries; struct entry e[3]; } m; };
const struct abi_note abi_note __attribute__((section(".note.solo5.abi"), aligned(4))) =
    { { 6, sizeof(struct abi_note) - sizeof(struct nhdr), 0x31494241, "Solo5" }, { 2, 2, 0, 0 } };
const struct mft_note mft_note __attribute__((section(".note.solo5.manifest"), aligned(4))) =
    { { 6, sizeof(struct mft_note) - sizeof(struct nhdr), 0x3154464d, "Solo5" },
      { 1, 3, { { "", 0x40000000 }, { "rootfs", 1 }, { "service", 2 } } } };
const char interp[24] __attribute__((section(".interp"))) = "/nonexistent/solo5/";
volatile char bss[8192];
void _start(void) { bss[100] = 1; for (;;) __asm__ volatile("hlt"); }
"""

TINY_LD = """
ENTRY(_start)
PHDRS { interp PT_INTERP; text PT_LOAD; rodata PT_LOAD; data PT_LOAD;
        note_abi PT_NOTE; note_mft PT_NOTE; }
SECTIONS {
  . = 0x100000;
  .interp : { *(.interp) } :text :interp
  .text : { *(.text*) } :text
  . = ALIGN(0x1000);
  .rodata : { *(.rodata*) } :rodata
  .note.solo5.abi : { *(.note.solo5.abi) } :rodata :note_abi
  .note.solo5.manifest : { *(.note.solo5.manifest) } :rodata :note_mft
  . = ALIGN(0x1000);
  .data : { *(.data*) } :data
  .bss : { *(.bss*) *(COMMON) } :data
  /DISCARD/ : { *(.comment) *(.note.GNU-stack) *(.eh_frame*) *(.note.gnu.*) }
}
"""


def _independent_loads(path: Path) -> list[Segment]:
    """The non-empty PT_LOADs as pyelftools' own segment API sees them."""
    with path.open("rb") as f:
        return [
            Segment(s["p_vaddr"], s["p_offset"], s["p_filesz"], s["p_memsz"], s["p_flags"])
            for s in ELFFile(f).iter_segments()
            if s["p_type"] == "PT_LOAD" and (s["p_filesz"] or s["p_memsz"])
        ]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_gcc_built_image(tmp_path: Path):
    (tmp_path / "tiny.c").write_text(TINY_C)
    (tmp_path / "tiny.ld").write_text(TINY_LD)
    out = tmp_path / "tiny.spt"
    subprocess.run(
        ["gcc", "-O2", "-ffreestanding", "-nostdlib", "-static", "-no-pie", "-fno-pic",
         "-fcf-protection=none", "-Wl,--build-id=none", "-Wl,-z,max-page-size=0x1000",
         f"-Wl,-T,{tmp_path / 'tiny.ld'}", "-o", str(out), str(tmp_path / "tiny.c")],
        check=True,
    )  # fmt: skip
    image = load_unikernel(out)
    assert (image.target, image.abi_version) == (Target.SPT, 2)
    assert [(e.index, e.name, e.type) for e in image.manifest.devices()] == [
        (1, "rootfs", 1),
        (2, "service", 2),
    ]
    assert image.segments == tuple(_independent_loads(out))
    assert [s.rwx for s in image.segments] == ["r-x", "r--", "rw-"]
    data = image.segments[-1]
    assert data.memsz >= 8192
    assert image.kernel_end == (data.vaddr + data.memsz + 0xFFF) & ~0xFFF


def test_project_guests_load(guests: Path):
    """Every guest build.py makes (both ABI versions) passes and matches pyelftools' view."""
    built = sorted(guests.glob("*.spt")) + sorted((guests / "abi1").glob("*.spt"))
    if not built:
        pytest.skip("build.py built no guests (csrc/guests has no sources)")
    for path in built:
        image = load_unikernel(path)
        assert image.target == Target.SPT, path
        assert image.abi_version == (1 if path.parent.name == "abi1" else 2), path
        assert image.segments == tuple(_independent_loads(path)), path
        assert any(s.prot & PROT_EXEC for s in image.segments), path
        assert image.kernel_end >= max(s.vaddr + s.memsz for s in image.segments), path
        assert looks_like_unikernel(path), path


# --------------------------------------------------------------------------------------------
# runnc-py inspect


def test_inspect_json_is_stable(tmp_path: Path):
    path = write(tmp_path, ec.Unikernel.solo5("hvt", 1, DEVICES))
    result = CliRunner().invoke(cli, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "schema": 1,
        "path": str(path),
        "target": "hvt",
        "abi_version": 1,
        "machine": "x86_64",
        "entry": 0x100000,
        "kernel_end": 0x104000,
        "segments": [
            {"vaddr": 0x100000, "offset": 0x1000, "filesz": 64, "memsz": 64, "flags": "r-x"},
            {"vaddr": 0x101000, "offset": 0x2000, "filesz": 16, "memsz": 16, "flags": "r--"},
            {"vaddr": 0x102000, "offset": 0x3000, "filesz": 16, "memsz": 0x1800, "flags": "rw-"},
        ],
        "manifest_version": 1,
        "devices": [
            {"index": 1, "name": "rootfs", "type": "BLOCK_BASIC"},
            {"index": 2, "name": "service", "type": "NET_BASIC"},
        ],
    }


def test_inspect_text(tmp_path: Path):
    path = write(tmp_path, ec.Unikernel.solo5(devices=DEVICES))
    result = CliRunner().invoke(cli, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "target:      spt" in lines
    assert "abi version: 2" in lines
    assert "entry:       0x100000" in lines
    assert "kernel_end:  0x104000" in lines
    assert any(line.split() == ["0x102000", "0x10", "0x1800", "rw-"] for line in lines)
    assert any(line.split() == ["2", "service", "NET_BASIC"] for line in lines)


def test_inspect_without_devices(tmp_path: Path):
    path = write(tmp_path, ec.Unikernel.solo5())
    result = CliRunner().invoke(cli, ["inspect", str(path)])
    assert "devices:     none" in result.output.splitlines()


def test_inspect_bad_file_is_one_line_and_exit_1(tmp_path: Path, runnc):
    uk = ec.Unikernel.solo5()
    uk.text.flags = 7  # type: ignore[union-attr]
    path = write(tmp_path, uk)
    done = runnc("inspect", path, "--json")
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(path) in lines[0] and "writable and executable" in lines[0]
