"""Names we give things: the guest's network devices and the taps that back them.

Guest devices follow the Solo5 convention: the first interface is `service0`, then `service1`,
... in the order `read_facts` returns interfaces (the one carrying the IPv4 default route
first). The lead maps these onto a unikernel's manifest names when they differ.

A tap is named after the interface it mirrors, `tap<ifname>` (`eth0` -> `tapeth0`), so
`ip link` in the container's namespace shows at a glance which tap serves which interface.
Linux names hold at most 15 bytes; a longer interface name keeps its first 6 bytes and gets
`-` plus 5 hex digits of its CRC-32, which keeps two long names apart.
"""

from __future__ import annotations

import zlib

IFNAMSIZ = 16  # includes the NUL
SOLO5_MAX_DEVICES = 63  # manifest entry 0 is reserved; 64 entries in all
GUEST_DEVICE_PREFIX = "service"
TAP_PREFIX = "tap"
# A tap's ifindex is drawn at random from here (runnc_py.net.wiring): journaled before the tap
# exists, so it must be chosen by us, and a stale record must not name a later tap that
# reused its number. Kernel-chosen indexes count up from 1 and stay far below.
TAP_INDEX_BASE, TAP_INDEX_SPAN = 0x10000, 0x1000000


def guest_device_name(index: int) -> str:
    """`service0`, `service1`, ...: the guest-side name of the index-th interface."""
    return f"{GUEST_DEVICE_PREFIX}{index}"


def guest_device_names(count: int) -> tuple[str, ...]:
    return tuple(guest_device_name(i) for i in range(count))


def tap_name(ifname: str) -> str:
    """The tap that carries `ifname`'s traffic to the guest (at most 15 bytes)."""
    name = TAP_PREFIX + ifname
    if len(name.encode()) < IFNAMSIZ:
        return name
    digest = zlib.crc32(ifname.encode()) & 0xFFFFF
    head = ifname.encode()[:6].decode(errors="ignore")
    return f"{TAP_PREFIX}{head}-{digest:05x}"
