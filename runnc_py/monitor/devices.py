"""Host side of Solo5 devices: open a tap or a block image the way solo5-spt's modules do.

Each function returns the facts the manifest and the seccomp policy need (fd, capacity,
block size, MAC, MTU). They run in the process that will become the guest, so the fds they
open are the guest's own.
"""

from __future__ import annotations

import fcntl
import os
import struct

from runnc_py.errors import RunncError
from runnc_py.record import FrozenRecord

TUNSETIFF = 0x400454CA
SIOCGIFMTU = 0x8921
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFNAMSIZ = 16
DEFAULT_BLOCK_SIZE = 512
DEFAULT_MTU = 1500
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class OpenNet(FrozenRecord):
    """A net device opened for the guest: its tap (or given fd), MAC and MTU."""

    __slots__ = ("fd", "iface", "mac", "mtu", "name")
    name: str
    fd: int
    mac: bytes
    mtu: int
    iface: str

    def __init__(self, name: str, fd: int, mac: bytes, mtu: int, iface: str) -> None:
        self._set(name=name, fd=fd, mac=mac, mtu=mtu, iface=iface)


class OpenBlock(FrozenRecord):
    """A block device opened for the guest: its image fd, capacity and sector size."""

    __slots__ = ("block_size", "capacity", "fd", "name", "path")
    name: str
    fd: int
    capacity: int
    block_size: int
    path: str

    def __init__(self, name: str, fd: int, capacity: int, block_size: int, path: str) -> None:
        self._set(name=name, fd=fd, capacity=capacity, block_size=block_size, path=path)


def parse_mac(text: str, *, where: str) -> bytes:
    """`02:00:00:00:00:01` → 6 bytes; a multicast MAC cannot be a NIC's address."""
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and _HEX_DIGITS.issuperset(p) for p in parts):
        raise RunncError(f"invalid MAC address {text!r}", where=where)
    mac = bytes(int(part, 16) for part in text.split(":"))
    if mac[0] & 1:
        raise RunncError(f"MAC address {text} is multicast", where=where)
    return mac


def random_mac() -> bytes:
    """A random locally administered unicast MAC, as solo5-spt picks when none is given."""
    mac = bytearray(os.urandom(6))
    mac[0] = (mac[0] & 0xFC) | 0x02
    return bytes(mac)


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def open_net(name: str, spec: str, mac: str | None) -> OpenNet:
    """Attach manifest device NAME to tap SPEC (an interface name) or to an open fd (`@FD`)."""
    where = f"--net:{name}"
    mac_bytes = parse_mac(mac, where=f"--net-mac:{name}") if mac else random_mac()
    if spec.startswith("@"):
        try:
            fd = int(spec[1:])
            os.fstat(fd)
        except (ValueError, OSError) as exc:
            raise RunncError(f"{spec!r} is not an open file descriptor", where=where) from exc
        return OpenNet(name=name, fd=fd, mac=mac_bytes, mtu=DEFAULT_MTU, iface=spec)
    if not spec or len(spec) >= IFNAMSIZ or "/" in spec:
        raise RunncError(f"invalid interface name {spec!r}", where=where)
    import socket  # ~4 ms to import: only for net devices

    # TUNSETIFF on a missing name would silently create a fresh, unconnected tap: refuse.
    # Asked over a socket, which lives in our network namespace: /sys/class/net shows the
    # namespace of whoever mounted /sys (a container's init never enters a mount namespace).
    try:
        socket.if_nametoindex(spec)
    except OSError:
        raise RunncError(
            f"no such interface {spec!r} in this network namespace", where=where
        ) from None
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        ifr = struct.pack("16sH22x", spec.encode(), IFF_TAP | IFF_NO_PI)
        fcntl.ioctl(fd, TUNSETIFF, ifr)
    except OSError as exc:
        os.close(fd)
        raise RunncError(f"cannot attach to tap {spec!r}: {exc.strerror}", where=where) from exc
    return OpenNet(name=name, fd=fd, mac=mac_bytes, mtu=_mtu(spec), iface=spec)


def _mtu(ifname: str) -> int:
    """The interface's MTU (SIOCGIFMTU, in our network namespace)."""
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            ifr = fcntl.ioctl(sock, SIOCGIFMTU, struct.pack("16si12x", ifname.encode(), 0))
    except OSError:
        return DEFAULT_MTU
    return int(struct.unpack_from("16si", ifr)[1])


def open_block(
    name: str, path: str, block_size: int = DEFAULT_BLOCK_SIZE, *, fd: int | None = None
) -> OpenBlock:
    """Attach manifest device NAME to the image file PATH, read-write.

    FD: the image, already open read-write (a path inside a rootfs is opened once, by
    oci/rootpath.py); the device gets its own duplicate and PATH only names it in messages.
    """
    where = f"--block:{name}"
    if block_size < 512 or block_size & (block_size - 1) or block_size > 65536:
        raise RunncError(
            f"sector size {block_size} must be a power of two from 512 to 65536", where=where
        )
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC) if fd is None else os.dup(fd)
    except OSError as exc:
        raise RunncError(f"cannot open {path}: {exc.strerror}", where=where) from exc
    try:
        capacity = os.lseek(fd, 0, os.SEEK_END)
    except OSError as exc:
        os.close(fd)
        raise RunncError(f"cannot size {path}: {exc.strerror}", where=where) from exc
    if capacity < block_size or capacity % block_size:
        os.close(fd)
        raise RunncError(
            f"{path} is {capacity} bytes, not a non-zero multiple of the {block_size}-byte sector",
            where=where,
        )
    return OpenBlock(name=name, fd=fd, capacity=capacity, block_size=block_size, path=path)
