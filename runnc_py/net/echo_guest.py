"""A stand-in guest for a wired tap: answers ARP, IPv6 neighbour solicitations and ICMP(v6)
echo for the container's addresses, with the container's MAC.

It opens the persistent tap by name exactly as a Solo5 tender does (`IFF_TAP | IFF_NO_PI`, from
inside the namespace), so pinging it from outside checks the whole path a unikernel gets: veth,
tc redirect both ways, tap. Tests and `bench/net.py` use it; it answers nothing else.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import select
import struct
import threading
from collections.abc import Iterable

from runnc_py.net.netns import run_in_netns

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
ETH_ARP, ETH_IP, ETH_IP6 = 0x0806, 0x0800, 0x86DD
ICMP6 = 58


def open_tap(netns: str | None, name: str) -> int:
    """Attach to the existing tap `name` in `netns`; return a non-blocking fd."""

    def job() -> int:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI))
        except BaseException:
            os.close(fd)
            raise
        return fd

    return run_in_netns(netns, job)


class EchoGuest:
    """Run `start()`, ping the addresses, `stop()`. `answered` counts replies sent."""

    def __init__(self, netns: str | None, tap: str, mac: str, addresses: Iterable[str]) -> None:
        self.netns, self.tap = netns, tap
        self.mac = bytes.fromhex(mac.replace(":", ""))
        addrs = [ipaddress.ip_address(a) for a in addresses]
        self.ipv4 = {a.packed for a in addrs if a.version == 4}
        self.ipv6 = {a.packed for a in addrs if a.version == 6}
        self.answered = 0
        self._fd = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> EchoGuest:
        self._fd = open_tap(self.netns, self.tap)
        self._thread = threading.Thread(target=self._loop, name=f"echo-{self.tap}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> EchoGuest:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(50):
                continue
            while True:
                try:
                    frame = os.read(self._fd, 65536)
                except BlockingIOError:
                    break
                reply = self.answer(frame)
                if reply is not None:
                    os.write(self._fd, reply)
                    self.answered += 1

    def answer(self, frame: bytes) -> bytes | None:
        """The reply frame for `frame`, or None (pure; unit-testable)."""
        if len(frame) < 14:
            return None
        dst, src, ethertype = frame[:6], frame[6:12], struct.unpack("!H", frame[12:14])[0]
        if dst not in (self.mac, b"\xff" * 6) and not dst.startswith(b"\x33\x33"):
            return None
        body = frame[14:]
        if ethertype == ETH_ARP:
            payload = self._arp(body)
        elif ethertype == ETH_IP:
            payload = self._ipv4(body)
        elif ethertype == ETH_IP6:
            payload = self._ipv6(body)
        else:
            return None
        if payload is None:
            return None
        return src + self.mac + struct.pack("!H", ethertype) + payload

    def _arp(self, p: bytes) -> bytes | None:
        if len(p) < 28 or p[:8] != b"\x00\x01\x08\x00\x06\x04\x00\x01":
            return None
        sha, spa, tpa = p[8:14], p[14:18], p[24:28]
        if tpa not in self.ipv4:
            return None
        return b"\x00\x01\x08\x00\x06\x04\x00\x02" + self.mac + tpa + sha + spa

    def _ipv4(self, p: bytes) -> bytes | None:
        if len(p) < 20 or p[0] >> 4 != 4:
            return None
        ihl = (p[0] & 0x0F) * 4
        total = struct.unpack("!H", p[2:4])[0]
        if p[9] != 1 or p[16:20] not in self.ipv4 or total > len(p):
            return None
        icmp = bytearray(p[ihl:total])
        if len(icmp) < 8 or icmp[0] != 8:
            return None
        icmp[0] = 0
        icmp[2:4] = b"\0\0"
        icmp[2:4] = struct.pack("!H", _checksum(icmp))
        header = bytearray(p[:ihl])
        header[8] = 64
        header[12:16], header[16:20] = p[16:20], p[12:16]
        header[10:12] = b"\0\0"
        header[10:12] = struct.pack("!H", _checksum(header))
        return bytes(header) + bytes(icmp)

    def _ipv6(self, p: bytes) -> bytes | None:
        if len(p) < 48 or p[0] >> 4 != 6 or p[6] != ICMP6:
            return None
        length = struct.unpack("!H", p[4:6])[0]
        src, dst, icmp = p[8:24], p[24:40], p[40 : 40 + length]
        kind = icmp[0]
        if kind == 135 and len(icmp) >= 24 and icmp[8:24] in self.ipv6:  # neighbour solicitation
            target = icmp[8:24]
            solicited = src != bytes(16)
            reply_dst = src if solicited else bytes.fromhex("ff02" + "0" * 27 + "1")
            flags = 0x60000000 | (0x40000000 if solicited else 0)  # S if solicited, O always
            option = b"\x02\x01" + self.mac  # target link-layer address
            body = bytearray(struct.pack("!BBHI", 136, 0, 0, flags) + target + option)
            return self._ipv6_packet(target, reply_dst, body, hop_limit=255)
        if kind == 128 and dst in self.ipv6:  # echo request
            body = bytearray(icmp)
            body[0] = 129
            return self._ipv6_packet(dst, src, body, hop_limit=64)
        return None

    @staticmethod
    def _ipv6_packet(src: bytes, dst: bytes, icmp: bytearray, hop_limit: int) -> bytes:
        icmp[2:4] = b"\0\0"
        pseudo = src + dst + struct.pack("!I3xB", len(icmp), ICMP6)
        icmp[2:4] = struct.pack("!H", _checksum(pseudo + icmp))
        header = struct.pack("!IHBB", 0x60000000, len(icmp), ICMP6, hop_limit) + src + dst
        return header + bytes(icmp)


def _checksum(data: bytes | bytearray) -> int:
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
