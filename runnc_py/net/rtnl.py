"""A small blocking rtnetlink client on pyroute2's message classes.

pyroute2's `IPRoute` runs every request through an asyncio loop (about 0.6 ms each here) and
its `NetNS` forks a helper per socket; wiring a container takes a dozen requests and must stay
under 5 ms. So we keep pyroute2 for what it is best at, encoding and decoding rtnetlink
messages, and drive one plain socket ourselves: send, then read replies until the ack or the end
of the dump. The socket belongs to the namespace of the thread that creates it.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable, Iterator
from typing import Any

from pyroute2.netlink import (
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    nlmsg,
)
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # acks without a copy of our request: less to receive and decode
_RECV_SIZE = 65536  # the kernel sizes dump batches to at most 32 KiB
_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr


class Rtnl:
    """One NETLINK_ROUTE socket in the current thread's network namespace."""

    def __init__(self) -> None:
        self._sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE
        )
        self._sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        self._sock.bind((0, 0))
        self._seq = 0
        self._marshal = MarshalRtnl()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def dump(
        self, msg: nlmsg, msg_type: int, keep: Callable[[bytes, int], bool] | None = None
    ) -> list[Any]:
        """Send a dump request; return the reply messages as pyroute2 objects.

        `keep(data, offset)` sees each raw message (header at `offset`, body at offset + 16)
        and drops the uninteresting ones before pyroute2 decodes them: decoding is what costs
        (~0.3 ms for a link), so e.g. `lo` and the local routing table are never decoded.
        """
        seq = self._send(msg, msg_type, NLM_F_REQUEST | NLM_F_DUMP)
        replies: list[Any] = []
        while True:
            data = self._sock.recv(_RECV_SIZE)
            done = _check(data, seq)
            kept = b"".join(
                data[offset : offset + length]
                for offset, length, msg_seq, kind in _headers(data)
                if msg_seq == seq
                and kind not in (NLMSG_DONE, NLMSG_ERROR)
                and (keep is None or keep(data, offset))
            )
            if kept:
                replies += self._marshal.parse(kept)
            if done:
                return replies

    def call(self, msg: nlmsg, msg_type: int, flags: int = 0) -> None:
        """Send a request and wait for its ack; a refusal raises OSError with the errno."""
        seq = self._send(msg, msg_type, NLM_F_REQUEST | NLM_F_ACK | flags)
        while not _check(self._sock.recv(_RECV_SIZE), seq):
            pass

    def _send(self, msg: nlmsg, msg_type: int, flags: int) -> int:
        self._seq += 1
        msg["header"]["type"] = msg_type
        msg["header"]["flags"] = flags
        msg["header"]["sequence_number"] = self._seq
        msg["header"]["pid"] = 0
        msg.encode()
        self._sock.send(msg.data)
        return self._seq


def _headers(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(offset, length, seq, type) of each message in a receive buffer."""
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, msg_type, _flags, msg_seq, _pid = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            return
        yield offset, length, msg_seq, msg_type
        offset += (length + 3) & ~3


def _check(data: bytes, seq: int) -> bool:
    """True once `seq` is answered (ack or end of dump) in this buffer; OSError if the kernel
    refused it. Acks are read here, not by pyroute2, which cannot decode the short acks
    NETLINK_CAP_ACK asks for."""
    for offset, _length, msg_seq, msg_type in _headers(data):
        if msg_seq != seq:
            continue
        if msg_type == NLMSG_ERROR:
            (error,) = struct.unpack_from("=i", data, offset + _HEADER.size)
            if error:
                raise OSError(-error, os.strerror(-error))
            return True
        if msg_type == NLMSG_DONE:
            return True
    return False
