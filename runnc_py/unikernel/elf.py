"""Read and validate a Solo5 unikernel ELF: its target, ABI version, segments and manifest.

`load_unikernel` checks everything solo5's tenders check before they map a byte (Solo5's
`tenders/common/elf.c`, `mft.c`), so the launcher can trust the result:

- ELF64, little-endian, EV_CURRENT, `ET_EXEC`, the host's machine, standard header sizes;
- every PT_LOAD/PT_NOTE segment lies inside the file;
- exactly one Solo5 ABI1 note with a known target and ABI version, and one valid MFT1 manifest;
- PT_LOAD segments (an empty one, `p_filesz == p_memsz == 0`, as Solo5 >= 0.8 emits at 0, is
  skipped): never writable and executable, `p_filesz <= p_memsz`, `p_align` a power of two,
  at or above 0x100000 once aligned down, page-aligned once rounded by `p_align`, in
  ascending order, not overlapping, not wrapping around 2**64;
- the entry point lies inside an executable PT_LOAD segment (solo5 only checks it is >= 1 MiB).

`kernel_end` is computed as solo5 does: the highest `p_vaddr + p_memsz` rounded up to the
segment's `p_align`. One deliberate difference: solo5 skips every PT_LOAD with `p_filesz == 0`,
so a BSS-only segment would be left out of `kernel_end` and the guest heap could overlap it;
we keep such segments (they are mapped and counted).

Whether the target and ABI version suit a given monitor is the monitor layer's decision; here
a value is only refused when it is unknown (see SUPPORTED_ABI).

pyelftools parses the headers. Its import costs ~30 ms, so it happens inside
`load_unikernel`; `looks_like_unikernel` reads the few bytes it needs with `struct` alone.
Every read is bounded (header, program header table, note segments); loadable segments are
only range-checked, never read.
"""

from __future__ import annotations

import os
import stat
import struct

from runnc_py.errors import RunncError
from runnc_py.record import FrozenRecord, NamedInt
from runnc_py.unikernel.manifest import Manifest, parse_manifest
from runnc_py.unikernel.notes import (
    ABI1_NOTE_TYPE,
    MFT1_NOTE_TYPE,
    RawNote,
    iter_notes,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

PAGE_SIZE = 0x1000
MIN_LOAD_ADDR = 0x100000  # SPT_GUEST_MIN_BASE and HVT_GUEST_MIN_BASE
MAX_PHNUM = 256  # real unikernels have fewer than 10; bounds the work on hostile input
MAX_NOTE_SEGMENT = 64 * 1024  # Solo5 notes take at most a few KiB (manifest <= 6668 bytes)
EHDR_SIZE = 64
PHDR_SIZE = 56
_U64_MAX = 2**64 - 1

PF_X, PF_W, PF_R = 1, 2, 4
PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4

# ABI1 descriptor: u32 target, u32 version, u32 reserved[2]. solo5 accepts 16..32 bytes.
ABI1_DESC_MIN, ABI1_DESC_MAX = 16, 32

_ELF_MAGIC = b"\x7fELF"
_EM_NAMES = {"EM_X86_64": "x86_64", "EM_AARCH64": "aarch64"}
_HOST_MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


class Target(NamedInt):
    """`enum abi_target`: the Solo5 target a unikernel was built for."""

    HVT = 1
    SPT = 2


# Known ABI versions per target: 1 for Solo5 <= 0.7, 2 for >= 0.8.
SUPPORTED_ABI: dict[Target, tuple[int, ...]] = {Target.SPT: (1, 2), Target.HVT: (1, 2)}

# Other Solo5 targets, named in error messages only.
_OTHER_TARGETS = {3: "virtio", 4: "muen", 5: "genode", 6: "xen"}


class Segment(FrozenRecord):
    """A PT_LOAD segment to map: guest address, file bytes, memory size and p_flags."""

    __slots__ = ("filesz", "flags", "memsz", "offset", "vaddr")
    vaddr: int
    offset: int
    filesz: int
    memsz: int
    flags: int  # PF_R = 4, PF_W = 2, PF_X = 1

    def __init__(self, vaddr: int, offset: int, filesz: int, memsz: int, flags: int) -> None:
        self._set(vaddr=vaddr, offset=offset, filesz=filesz, memsz=memsz, flags=flags)

    @property
    def prot(self) -> int:
        """The mmap/mprotect protection for p_flags (PROT_READ 1, PROT_WRITE 2, PROT_EXEC 4)."""
        return (
            (PROT_READ if self.flags & PF_R else 0)
            | (PROT_WRITE if self.flags & PF_W else 0)
            | (PROT_EXEC if self.flags & PF_X else 0)
        )

    @property
    def rwx(self) -> str:
        """p_flags as readelf shows them: "r-x", "rw-", ..."""
        return (
            ("r" if self.flags & PF_R else "-")
            + ("w" if self.flags & PF_W else "-")
            + ("x" if self.flags & PF_X else "-")
        )


class UnikernelImage(FrozenRecord):
    """Everything a launcher needs from a validated unikernel file."""

    __slots__ = (
        "abi_version",
        "entry",
        "kernel_end",
        "machine",
        "manifest",
        "path",
        "segments",
        "target",
    )
    path: str
    target: Target
    abi_version: int
    entry: int
    kernel_end: int
    segments: tuple[Segment, ...]
    manifest: Manifest
    machine: str  # "x86_64" / "aarch64"

    def __init__(
        self,
        path: str,
        target: Target,
        abi_version: int,
        entry: int,
        kernel_end: int,
        segments: tuple[Segment, ...],
        manifest: Manifest,
        machine: str,
    ) -> None:
        self._set(
            path=path,
            target=target,
            abi_version=abi_version,
            entry=entry,
            kernel_end=kernel_end,
            segments=segments,
            manifest=manifest,
            machine=machine,
        )


class _Phdr(FrozenRecord):
    """One program header as validation reads it."""

    __slots__ = ("align", "filesz", "flags", "index", "memsz", "offset", "type", "vaddr")
    index: int
    type: str | int  # pyelftools' name ("PT_LOAD") or the raw number when unknown
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int

    def __init__(self, **fields: Any) -> None:
        self._set(**fields)


def host_machine() -> str:
    """This host's machine in the names UnikernelImage.machine uses."""
    machine = os.uname().machine.lower()
    return _HOST_MACHINES.get(machine, machine)


def load_unikernel(path: str | os.PathLike[str]) -> UnikernelImage:
    """Read and validate the unikernel at PATH; every failure is a RunncError naming PATH."""
    where = os.fspath(path)
    stream = _open_regular(where)
    with stream:
        size = os.fstat(stream.fileno()).st_size
        try:
            return _load(stream, size, where)
        except RunncError:
            raise
        except Exception as exc:
            if not _is_parse_error(exc):
                raise
            raise RunncError(f"malformed ELF file: {_describe(exc)}", where=where) from None


def looks_like_unikernel(path: str | os.PathLike[str]) -> bool:
    """Cheap check: an ELF64 file carrying a Solo5 ABI1 note. Never raises.

    Reads the ELF header, the program header table and the PT_NOTE segments with `struct`
    (no pyelftools import), so it suits deciding whether `process.args[0]` is a unikernel.
    """
    try:
        stream = _open_regular(os.fspath(path))
    except (RunncError, TypeError, ValueError):
        return False
    try:
        with stream:
            size = os.fstat(stream.fileno()).st_size
            return _quick_has_abi_note(stream, size)
    except (OSError, ValueError, struct.error, OverflowError):
        return False


# --------------------------------------------------------------------------------------------
# effectful shell: opening and reading


def _open_regular(where: str) -> IO[bytes]:
    """Open WHERE for reading, refusing anything but a regular file (a FIFO would block)."""
    try:
        # O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
        fd = os.open(where, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RunncError("no such file", where=where) from None
    except OSError as exc:
        raise RunncError(f"cannot open: {exc.strerror or exc}", where=where) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise RunncError(f"is {kind}, expected a unikernel ELF file", where=where)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_at(stream: IO[bytes], offset: int, length: int) -> bytes:
    stream.seek(offset)
    return stream.read(length)


def _is_parse_error(exc: Exception) -> bool:
    """Errors that malformed input can raise inside pyelftools or our own unpacking."""
    from elftools.common.exceptions import ELFError
    from elftools.construct import ConstructError

    return isinstance(
        exc,
        ELFError
        | ConstructError
        | struct.error
        | ValueError
        | IndexError
        | KeyError
        | UnicodeDecodeError
        | OverflowError
        | OSError
        | EOFError,
    )


def _describe(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


# --------------------------------------------------------------------------------------------
# validation


def _load(stream: IO[bytes], size: int, where: str) -> UnikernelImage:
    _check_ident(_read_at(stream, 0, EHDR_SIZE), where)

    from elftools.common.utils import struct_parse
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(stream)
    header = elf.header
    machine = _check_header(header, size, where)
    phoff = int(header["e_phoff"])
    phdrs = [
        _phdr(i, struct_parse(elf.structs.Elf_Phdr, stream, phoff + i * PHDR_SIZE))
        for i in range(int(header["e_phnum"]))
    ]
    for ph in phdrs:
        if ph.type in ("PT_LOAD", "PT_NOTE") and ph.offset + ph.filesz > size:
            raise RunncError(
                f"truncated file: program header {ph.index} ({ph.type}) needs bytes "
                f"{ph.offset:#x}..{ph.offset + ph.filesz:#x} but the file is {size:#x} bytes",
                where=where,
            )
    abi, mft = _solo5_notes(stream, phdrs, where)
    target, abi_version = _parse_abi(abi.desc, where)
    manifest = parse_manifest(mft.desc, where)
    segments, kernel_end = _check_loads(phdrs, where)
    entry = int(header["e_entry"])
    if not any(s.flags & PF_X and s.vaddr <= entry < s.vaddr + s.memsz for s in segments):
        raise RunncError(
            f"entry point {entry:#x} is not inside an executable PT_LOAD segment", where=where
        )
    return UnikernelImage(
        path=where,
        target=target,
        abi_version=abi_version,
        entry=entry,
        kernel_end=kernel_end,
        segments=segments,
        manifest=manifest,
        machine=machine,
    )


def _check_ident(ident: bytes, where: str) -> None:
    if len(ident) < len(_ELF_MAGIC) or not ident.startswith(_ELF_MAGIC):
        if len(ident) < len(_ELF_MAGIC):
            raise RunncError(f"not an ELF file (only {len(ident)} bytes)", where=where)
        raise RunncError(f"not an ELF file (bad magic {ident[:4]!r})", where=where)
    if len(ident) < EHDR_SIZE:
        raise RunncError(
            f"truncated ELF header ({len(ident)} bytes, need {EHDR_SIZE})", where=where
        )
    if ident[4] != 2:
        kind = "ELF32" if ident[4] == 1 else f"EI_CLASS {ident[4]}"
        raise RunncError(f"{kind} file, Solo5 unikernels are ELF64", where=where)
    if ident[5] != 1:
        raise RunncError(f"not a little-endian ELF file (EI_DATA {ident[5]})", where=where)
    if ident[6] != 1:
        raise RunncError(f"unsupported ELF version {ident[6]} in e_ident", where=where)


def _check_header(header: Any, size: int, where: str) -> str:
    """Check the ELF header fields; return the machine name."""
    if header["e_version"] != "EV_CURRENT":
        raise RunncError(f"unsupported ELF version {header['e_version']}", where=where)
    if header["e_type"] != "ET_EXEC":
        raise RunncError(
            f"ELF type is {header['e_type']}, a Solo5 unikernel is ET_EXEC", where=where
        )
    machine = _EM_NAMES.get(str(header["e_machine"]))
    if machine is None:
        raise RunncError(f"unsupported machine {header['e_machine']}", where=where)
    if machine != host_machine():
        raise RunncError(
            f"unikernel is built for {machine}, this host runs {host_machine()}", where=where
        )
    if header["e_ehsize"] != EHDR_SIZE:
        raise RunncError(f"ELF header size {header['e_ehsize']} is not {EHDR_SIZE}", where=where)
    if header["e_phentsize"] != PHDR_SIZE:
        raise RunncError(
            f"program header size {header['e_phentsize']} is not {PHDR_SIZE}", where=where
        )
    phnum = int(header["e_phnum"])
    if phnum < 1:
        raise RunncError("no program headers", where=where)
    if phnum > MAX_PHNUM:
        raise RunncError(f"too many program headers ({phnum}, at most {MAX_PHNUM})", where=where)
    phoff = int(header["e_phoff"])
    if phoff + phnum * PHDR_SIZE > size:
        raise RunncError(
            f"truncated program header table ({phnum} entries at {phoff:#x}, "
            f"file is {size:#x} bytes)",
            where=where,
        )
    return machine


def _phdr(index: int, raw: Any) -> _Phdr:
    return _Phdr(
        index=index,
        type=raw["p_type"],
        flags=int(raw["p_flags"]),
        offset=int(raw["p_offset"]),
        vaddr=int(raw["p_vaddr"]),
        filesz=int(raw["p_filesz"]),
        memsz=int(raw["p_memsz"]),
        align=int(raw["p_align"]),
    )


def _solo5_notes(stream: IO[bytes], phdrs: list[_Phdr], where: str) -> tuple[RawNote, RawNote]:
    """Find the one ABI1 and the one MFT1 Solo5 note among the PT_NOTE segments."""
    found: dict[int, RawNote] = {}
    for ph in phdrs:
        if ph.type != "PT_NOTE":
            continue
        if ph.filesz > MAX_NOTE_SEGMENT:
            raise RunncError(
                f"PT_NOTE segment {ph.index} is {ph.filesz} bytes, more than {MAX_NOTE_SEGMENT}",
                where=where,
            )
        data = _read_at(stream, ph.offset, ph.filesz)
        try:
            notes = list(iter_notes(data))
        except ValueError as exc:
            raise RunncError(f"PT_NOTE segment {ph.index}: {exc}", where=where) from None
        for note in notes:
            if not note.is_solo5 or note.type not in (ABI1_NOTE_TYPE, MFT1_NOTE_TYPE):
                continue
            if note.type in found:
                raise RunncError(f"more than one Solo5 {_note_name(note.type)} note", where=where)
            found[note.type] = note
    if ABI1_NOTE_TYPE not in found:
        raise RunncError(
            "no Solo5 ABI1 note: not a Solo5 unikernel (or built by a pre-0.6 toolchain)",
            where=where,
        )
    if MFT1_NOTE_TYPE not in found:
        raise RunncError("no Solo5 MFT1 manifest note", where=where)
    return found[ABI1_NOTE_TYPE], found[MFT1_NOTE_TYPE]


def _note_name(note_type: int) -> str:
    return "ABI1" if note_type == ABI1_NOTE_TYPE else "MFT1"


def _parse_abi(desc: bytes, where: str) -> tuple[Target, int]:
    if not ABI1_DESC_MIN <= len(desc) <= ABI1_DESC_MAX:
        raise RunncError(
            f"Solo5 ABI1 note descriptor is {len(desc)} bytes, "
            f"expected {ABI1_DESC_MIN}..{ABI1_DESC_MAX}",
            where=where,
        )
    target_value, version = struct.unpack_from("<II", desc, 0)
    try:
        target = Target(target_value)
    except ValueError:
        other = _OTHER_TARGETS.get(target_value)
        label = f" ({other}, not supported by runnc-py)" if other else ""
        raise RunncError(f"unknown Solo5 target {target_value}{label}", where=where) from None
    known = SUPPORTED_ABI[target]
    if version not in known:
        raise RunncError(
            f"unknown Solo5 ABI version {version} for {target.name.lower()} "
            f"(known: {', '.join(map(str, known))})",
            where=where,
        )
    return target, version


def _check_loads(phdrs: list[_Phdr], where: str) -> tuple[tuple[Segment, ...], int]:
    """Validate the PT_LOAD segments as solo5's elf_load does; return them and kernel_end."""
    segments: list[Segment] = []
    kernel_end = 0
    last_vaddr = 0
    for ph in phdrs:
        if ph.type != "PT_LOAD" or (ph.filesz == 0 and ph.memsz == 0):
            continue
        problem = _load_problem(ph, start_floor=kernel_end, last_vaddr=last_vaddr)
        if problem:
            raise RunncError(
                f"program header {ph.index} (PT_LOAD at {ph.vaddr:#x}): {problem}", where=where
            )
        last_vaddr = ph.vaddr
        kernel_end = _align_up(ph.vaddr + ph.memsz, ph.align)
        segments.append(
            Segment(
                vaddr=ph.vaddr,
                offset=ph.offset,
                filesz=ph.filesz,
                memsz=ph.memsz,
                flags=ph.flags,
            )
        )
    if not segments:
        raise RunncError("no loadable (PT_LOAD) segment", where=where)
    return tuple(segments), kernel_end


def _align_up(value: int, align: int) -> int:
    return (value + align - 1) & ~(align - 1)


def _load_problem(ph: _Phdr, *, start_floor: int, last_vaddr: int) -> str | None:
    """What is wrong with one non-empty PT_LOAD, in solo5's order of checks, or None."""
    if ph.flags & PF_W and ph.flags & PF_X:
        return "segment is both writable and executable (W+X is refused)"
    if ph.filesz > ph.memsz:
        return f"p_filesz {ph.filesz:#x} is larger than p_memsz {ph.memsz:#x}"
    if ph.vaddr < MIN_LOAD_ADDR:
        return f"segment is below {MIN_LOAD_ADDR:#x}, the lowest load address"
    if ph.align == 0 or ph.align & (ph.align - 1):
        return f"p_align {ph.align:#x} is not a power of two"
    stop = _align_up(ph.vaddr + ph.memsz, ph.align)
    if stop > _U64_MAX:
        return f"p_memsz {ph.memsz:#x} runs past the end of the 64-bit address space"
    start = ph.vaddr & ~(ph.align - 1)
    if start % PAGE_SIZE or stop % PAGE_SIZE:
        return f"segment {start:#x}..{stop:#x} is not aligned to {PAGE_SIZE:#x}-byte pages"
    if start < MIN_LOAD_ADDR:
        return (
            f"segment starts at {start:#x} once aligned, below {MIN_LOAD_ADDR:#x}, "
            "the lowest load address"
        )
    if ph.vaddr < last_vaddr:
        return f"segments are not in ascending address order (after {last_vaddr:#x})"
    if start < start_floor:
        return f"segment overlaps the previous one (which ends at {start_floor:#x})"
    return None


# --------------------------------------------------------------------------------------------
# the cheap probe


def _quick_has_abi_note(stream: IO[bytes], size: int) -> bool:
    ehdr = _read_at(stream, 0, EHDR_SIZE)
    if len(ehdr) < EHDR_SIZE or not ehdr.startswith(_ELF_MAGIC) or ehdr[4:6] != b"\x02\x01":
        return False
    phoff, phentsize, phnum = (
        struct.unpack_from("<Q", ehdr, 32)[0],
        *struct.unpack_from("<HH", ehdr, 54),
    )
    if phentsize != PHDR_SIZE or not 1 <= phnum <= MAX_PHNUM or phoff + phnum * PHDR_SIZE > size:
        return False
    table = _read_at(stream, phoff, phnum * PHDR_SIZE)
    for i in range(phnum):
        p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack_from(
            "<IIQQQQ", table, i * PHDR_SIZE
        )
        if p_type != 4 or p_filesz > MAX_NOTE_SEGMENT or p_offset + p_filesz > size:
            continue  # 4 = PT_NOTE
        try:
            for note in iter_notes(_read_at(stream, p_offset, p_filesz)):
                if note.is_solo5 and note.type == ABI1_NOTE_TYPE:
                    return True
        except ValueError:
            continue
    return False
