"""Solo5's ELF notes: walk the notes of a PT_NOTE segment and pick out Solo5's own. Pure.

Solo5 identifies its notes by owner name "Solo5" and a type: ABI1 (target + ABI version) and
MFT1 (the device manifest). Every Solo5 note is laid out with 4-byte alignment (the
`aligned(4)` of `ABI1_NOTE_DECLARE_BEGIN`/`MFT1_NOTE_DECLARE_BEGIN` in Solo5's headers), so the
descriptor always starts 20 bytes into the note: 12 header bytes plus "Solo5\\0" padded to 8.

solo5-spt reads only the first note of each PT_NOTE segment; we walk every note of the
segment, which accepts the same binaries plus linker scripts that merge several notes into one
segment, and we refuse a note whose bytes run past its segment instead of reading beyond it.
"""

from __future__ import annotations

import struct

from runnc_py.record import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

SOLO5_NOTE_NAME = b"Solo5\0"
ABI1_NOTE_TYPE = 0x31494241  # "ABI1"
MFT1_NOTE_TYPE = 0x3154464D  # "MFT1"

# Bounds on hostile input: a real unikernel has 2 or 3 notes in a few hundred bytes.
MAX_NOTES_PER_SEGMENT = 64

_NOTE_HEADER = struct.Struct("<III")  # n_namesz, n_descsz, n_type


class RawNote(FrozenRecord):
    """One note as stored: owner name (with its NUL), type, descriptor bytes, offset in segment."""

    __slots__ = ("desc", "name", "offset", "type")
    name: bytes
    type: int
    desc: bytes
    offset: int

    def __init__(self, name: bytes, type: int, desc: bytes, offset: int) -> None:
        self._set(name=name, type=type, desc=desc, offset=offset)

    @property
    def is_solo5(self) -> bool:
        return self.name == SOLO5_NOTE_NAME


def _align4(n: int) -> int:
    return (n + 3) & ~3


def iter_notes(buf: bytes) -> Iterator[RawNote]:
    """Yield the notes in BUF (a PT_NOTE segment's bytes).

    Raises ValueError (with a short reason) on a note that runs past the end of BUF or on more
    than MAX_NOTES_PER_SEGMENT notes. Fewer than 12 trailing bytes are ignored as padding.
    Every step advances by at least 12 bytes, so the walk ends after len(buf) / 12 steps.
    """
    offset = 0
    count = 0
    while len(buf) - offset >= _NOTE_HEADER.size:
        count += 1
        if count > MAX_NOTES_PER_SEGMENT:
            raise ValueError(f"more than {MAX_NOTES_PER_SEGMENT} notes")
        namesz, descsz, ntype = _NOTE_HEADER.unpack_from(buf, offset)
        name_at = offset + _NOTE_HEADER.size
        desc_at = name_at + _align4(namesz)
        end = desc_at + _align4(descsz)
        # The last note's descriptor may omit its trailing padding.
        if desc_at + descsz > len(buf):
            raise ValueError(
                f"note at offset {offset} (namesz {namesz}, descsz {descsz}) runs past the "
                f"end of its segment ({len(buf)} bytes)"
            )
        yield RawNote(
            name=bytes(buf[name_at : name_at + namesz]),
            type=ntype,
            desc=bytes(buf[desc_at : desc_at + descsz]),
            offset=offset,
        )
        offset = end
