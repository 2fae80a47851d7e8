"""Solo5's application manifest (MFT1 note): parse and validate it, fill in attached devices.

Pure: bytes in, bytes out. The layout is `struct mft` of Solo5's `mft_abi.h` on a 64-bit
little-endian host:

    struct mft        u32 version (= 1) | u32 entries (<= 64) | struct mft_entry e[entries]
    struct mft_entry  (104 bytes, 8-aligned)
        0   char name[68]            NUL-terminated, so at most 67 characters
        68  u32 type                 1 BLOCK_BASIC, 2 NET_BASIC, 1 << 30 RESERVED_FIRST
        72  union (16 bytes)         block: u64 capacity, u16 block_size
                                     net:   u8 mac[6], u16 mtu (at 78)
        88  union { int hostfd; void *data }   (8 bytes)
        96  bool attached            (then 7 bytes of padding)

Because `struct mft` is 8-aligned and the note descriptor starts 20 bytes into the note, the
toolchain puts 4 bytes of padding at the start of the descriptor (`MFT1_NOTE_ALIGN`); the
tender strips them and works on the `struct mft` that follows. That struct is what
`Manifest.raw` holds and what `fill_manifest` returns, ready to be copied into guest memory.
"""

from __future__ import annotations

import struct

from runnc_py.errors import RunncError
from runnc_py.record import FrozenRecord, NamedInt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

MFT_VERSION = 1
MFT_MAX_ENTRIES = 64
MFT_NAME_SIZE = 68  # bytes, including the NUL terminator
MFT_ENTRY_SIZE = 104
MFT_HEADER_SIZE = 8  # u32 version, u32 entries
# 20-byte note header + name, rounded up to struct mft's 8-byte alignment: 24 - 20.
MFT_NOTE_PAD = 4
MFT_NOTE_MAX_DESC = MFT_NOTE_PAD + MFT_HEADER_SIZE + MFT_MAX_ENTRIES * MFT_ENTRY_SIZE

# Field offsets inside one struct mft_entry.
_TYPE_AT = 68
_UNION_AT = 72
_UNION_SIZE = 16
_HOSTFD_AT = 88
_HOSTFD_SIZE = 8  # the union with a void * is 8 bytes; hostfd is its low 4
_ATTACHED_AT = 96

# solo5-elftool only generates alphanumeric names; other toolchains use '_', '-' and '.'. We
# accept those and nothing else, since names end up in command-line flags and log lines.
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


class DeviceType(NamedInt):
    """`enum mft_type`: the kinds of manifest entry."""

    BLOCK_BASIC = 1
    NET_BASIC = 2
    RESERVED_FIRST = 0x40000000


_KNOWN_TYPES = frozenset(int(t) for t in DeviceType.members())


class ManifestEntry(FrozenRecord):
    """One manifest entry: its index (the guest's device handle), name and type."""

    __slots__ = ("index", "name", "type")
    index: int
    name: str
    type: int

    def __init__(self, index: int, name: str, type: int) -> None:
        self._set(index=index, name=name, type=type)

    @property
    def is_device(self) -> bool:
        """True for entries the tender must attach (Solo5 skips types >= RESERVED_FIRST)."""
        return self.type < DeviceType.RESERVED_FIRST

    @property
    def type_name(self) -> str:
        try:
            return DeviceType(self.type).name
        except ValueError:
            return f"0x{self.type:x}"


class Manifest(FrozenRecord):
    """A validated manifest. `raw` is the `struct mft` (descriptor minus its alignment pad)."""

    __slots__ = ("entries", "raw", "version")
    version: int
    entries: tuple[ManifestEntry, ...]
    raw: bytes

    def __init__(self, version: int, entries: tuple[ManifestEntry, ...], raw: bytes) -> None:
        self._set(version=version, entries=entries, raw=raw)

    def devices(self) -> tuple[ManifestEntry, ...]:
        """The entries a tender attaches: every entry but the reserved ones."""
        return tuple(e for e in self.entries if e.is_device)

    def find(self, name: str) -> ManifestEntry | None:
        """The device called NAME, or None (reserved entries are never found)."""
        for entry in self.entries:
            if entry.is_device and entry.name == name:
                return entry
        return None


class BlockAttachment(FrozenRecord):
    """What the tender tells the guest about an attached block device."""

    __slots__ = ("block_size", "capacity", "hostfd")
    hostfd: int
    capacity: int  # bytes
    block_size: int  # bytes

    def __init__(self, hostfd: int, capacity: int, block_size: int) -> None:
        self._set(hostfd=hostfd, capacity=capacity, block_size=block_size)


class NetAttachment(FrozenRecord):
    """What the tender tells the guest about an attached network device."""

    __slots__ = ("hostfd", "mac", "mtu")
    hostfd: int
    mac: bytes  # 6 bytes
    mtu: int

    def __init__(self, hostfd: int, mac: bytes, mtu: int) -> None:
        self._set(hostfd=hostfd, mac=mac, mtu=mtu)


def parse_manifest(desc: bytes, where: str) -> Manifest:
    """Validate an MFT1 note descriptor (as stored in the ELF file) into a Manifest.

    Applies solo5's `mft_validate` rules (version 1, 1..64 entries, exact size, entry 0 the
    reserved entry with an empty name, names NUL-terminated, nothing pre-attached) plus ours:
    known types only, device names non-empty, of [A-Za-z0-9_.-] and unique.
    """
    if len(desc) < MFT_NOTE_PAD + MFT_HEADER_SIZE:
        raise RunncError(
            f"manifest note is {len(desc)} bytes, too short for a manifest header", where=where
        )
    if len(desc) > MFT_NOTE_MAX_DESC:
        raise RunncError(
            f"manifest note is {len(desc)} bytes, more than the {MFT_NOTE_MAX_DESC} "
            f"of {MFT_MAX_ENTRIES} entries",
            where=where,
        )
    raw = bytes(desc[MFT_NOTE_PAD:])
    version, count = struct.unpack_from("<II", raw, 0)
    if version != MFT_VERSION:
        raise RunncError(
            f"manifest version {version} is not supported (expected {MFT_VERSION})", where=where
        )
    if count > MFT_MAX_ENTRIES:
        raise RunncError(
            f"manifest declares {count} entries, at most {MFT_MAX_ENTRIES} are allowed",
            where=where,
        )
    if count < 1:
        raise RunncError("manifest has no entries (entry 0 must be the reserved one)", where=where)
    expected = MFT_HEADER_SIZE + count * MFT_ENTRY_SIZE
    if len(raw) != expected:
        raise RunncError(
            f"manifest is {len(raw)} bytes but declares {count} entries "
            f"({expected} bytes expected)",
            where=where,
        )
    entries = tuple(_parse_entry(raw, i, where) for i in range(count))
    _check_entries(entries, where)
    return Manifest(version=version, entries=entries, raw=raw)


def _parse_entry(raw: bytes, index: int, where: str) -> ManifestEntry:
    base = MFT_HEADER_SIZE + index * MFT_ENTRY_SIZE
    name_field = raw[base : base + MFT_NAME_SIZE]
    if name_field[-1] != 0:
        raise RunncError(f"manifest entry {index}: name is not NUL-terminated", where=where)
    name_bytes = name_field[: name_field.index(0)]
    try:
        name = name_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise RunncError(
            f"manifest entry {index}: name {name_bytes!r} is not ASCII", where=where
        ) from None
    (etype,) = struct.unpack_from("<I", raw, base + _TYPE_AT)
    if raw[base + _ATTACHED_AT] != 0:
        raise RunncError(
            f"manifest entry {index} ({name!r}) is already marked attached in the file",
            where=where,
        )
    return ManifestEntry(index=index, name=name, type=etype)


def _check_entries(entries: tuple[ManifestEntry, ...], where: str) -> None:
    first = entries[0]
    if first.type != DeviceType.RESERVED_FIRST or first.name:
        raise RunncError(
            f"manifest entry 0 must be the reserved entry (type RESERVED_FIRST, empty name), "
            f"got {first.name!r} of type {first.type_name}",
            where=where,
        )
    seen: set[str] = set()
    for entry in entries[1:]:
        if entry.type not in _KNOWN_TYPES:
            raise RunncError(
                f"manifest entry {entry.index} ({entry.name!r}) has unknown type {entry.type:#x}",
                where=where,
            )
        if not entry.is_device:
            continue
        if not entry.name:
            raise RunncError(f"manifest entry {entry.index} has an empty name", where=where)
        if not _NAME_CHARS.issuperset(entry.name):
            raise RunncError(
                f"manifest entry {entry.index}: name {entry.name!r} has characters "
                f"outside [A-Za-z0-9_.-]",
                where=where,
            )
        if entry.name in seen:
            raise RunncError(
                f"manifest entry {entry.index}: device name {entry.name!r} is declared twice",
                where=where,
            )
        seen.add(entry.name)


def missing_devices(
    manifest: Manifest, attached: Mapping[str, BlockAttachment | NetAttachment]
) -> tuple[ManifestEntry, ...]:
    """The declared devices ATTACHED leaves out (solo5-spt refuses to boot if any)."""
    return tuple(e for e in manifest.devices() if e.name not in attached)


def fill_manifest(
    manifest: Manifest,
    attached: Mapping[str, BlockAttachment | NetAttachment],
    *,
    where: str | None = None,
) -> bytes:
    """The `struct mft` the guest sees: `manifest.raw` with the tender's fields filled in.

    For each attached entry: block capacity/block_size or net mac/mtu, hostfd, attached = 1.
    The tender-private unions of every entry are cleared first, as older solo5 tenders do, so
    the guest never sees bytes the toolchain left there. Entries not in ATTACHED stay
    unattached (see `missing_devices`).
    """
    buf = bytearray(manifest.raw)
    for entry in manifest.entries:
        base = MFT_HEADER_SIZE + entry.index * MFT_ENTRY_SIZE
        buf[base + _UNION_AT : base + _UNION_AT + _UNION_SIZE] = bytes(_UNION_SIZE)
        buf[base + _HOSTFD_AT : base + _HOSTFD_AT + _HOSTFD_SIZE] = bytes(_HOSTFD_SIZE)
    for name, attachment in attached.items():
        entry = manifest.find(name)
        if entry is None:
            declared = ", ".join(e.name for e in manifest.devices()) or "none"
            raise RunncError(
                f"unikernel declares no device named {name!r} (declared: {declared})",
                where=where,
            )
        base = MFT_HEADER_SIZE + entry.index * MFT_ENTRY_SIZE
        _fill_entry(buf, base, entry, attachment, where)
    return bytes(buf)


def _fill_entry(
    buf: bytearray,
    base: int,
    entry: ManifestEntry,
    attachment: BlockAttachment | NetAttachment,
    where: str | None,
) -> None:
    what = f"device {entry.name!r}"
    if isinstance(attachment, BlockAttachment):
        if entry.type != DeviceType.BLOCK_BASIC:
            raise RunncError(
                f"{what} is a {entry.type_name} device, not a block device", where=where
            )
        _check_range(f"{what}: capacity", attachment.capacity, 0, 2**64 - 1, where)
        _check_range(f"{what}: block size", attachment.block_size, 1, 0xFFFF, where)
        struct.pack_into("<QH", buf, base + _UNION_AT, attachment.capacity, attachment.block_size)
    elif isinstance(attachment, NetAttachment):
        if entry.type != DeviceType.NET_BASIC:
            raise RunncError(
                f"{what} is a {entry.type_name} device, not a network device", where=where
            )
        if len(attachment.mac) != 6:
            raise RunncError(
                f"{what}: MAC address must be 6 bytes, got {len(attachment.mac)}", where=where
            )
        _check_range(f"{what}: MTU", attachment.mtu, 0, 0xFFFF, where)
        struct.pack_into("<6sH", buf, base + _UNION_AT, bytes(attachment.mac), attachment.mtu)
    else:
        raise RunncError(f"{what}: unknown attachment {type(attachment).__name__}", where=where)
    _check_range(f"{what}: host fd", attachment.hostfd, 0, 2**31 - 1, where)
    struct.pack_into("<i", buf, base + _HOSTFD_AT, attachment.hostfd)
    buf[base + _ATTACHED_AT] = 1


def _check_range(what: str, value: int, low: int, high: int, where: str | None) -> None:
    if not low <= value <= high:
        raise RunncError(f"{what} {value} is outside {low}..{high}", where=where)
