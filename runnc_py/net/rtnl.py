"""A small blocking rtnetlink client: one NETLINK_ROUTE socket, requests built by `nlmsg`.

pyroute2's `IPRoute` runs every request through an asyncio loop (about 0.6 ms each) and its
`NetNS` forks a helper per socket, and importing it at all costs 140-185 ms; wiring a container
takes a dozen requests and must stay within a few milliseconds. So this sends the bytes `nlmsg`
builds and reads replies until the ack or the end of the dump. The socket belongs to the network
namespace of the thread that creates it.
"""

from __future__ import annotations

import os
from _socket import AF_NETLINK, SOCK_CLOEXEC, SOCK_RAW, socket  # `socket` costs ~2 ms

from runnc_py.net.nlmsg import (
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    dump_request,
    error_code,
    frame,
    messages,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # acks without a copy of our request: less to receive
_RECV_SIZE = 65536  # the kernel sizes dump batches to at most 32 KiB


class Rtnl:
    """One NETLINK_ROUTE socket in the current thread's network namespace."""

    def __init__(self) -> None:
        self._sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)
        self._sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def dump(
        self,
        msg_type: int,
        body: bytes | None = None,
        keep: Callable[[bytes], bool] | None = None,
    ) -> list[bytes]:
        """Send a dump request (`body` defaults to a whole-table request); return the bodies
        of the reply messages that `keep` accepts (all by default), in kernel order."""
        seq = self._send(msg_type, NLM_F_REQUEST | NLM_F_DUMP, body or dump_request(msg_type))
        replies: list[bytes] = []
        while True:
            for msg in messages(self._sock.recv(_RECV_SIZE)):
                if msg.seq != seq:
                    continue
                if msg.kind == NLMSG_DONE:
                    return replies
                if msg.kind == NLMSG_ERROR:
                    _raise(error_code(msg.body))
                    return replies
                if keep is None or keep(msg.body):
                    replies.append(msg.body)

    def call(self, msg_type: int, body: bytes, flags: int = 0) -> None:
        """Send a request and wait for its ack; a refusal raises OSError with the errno."""
        seq = self._send(msg_type, NLM_F_REQUEST | NLM_F_ACK | flags, body)
        while True:
            for msg in messages(self._sock.recv(_RECV_SIZE)):
                if msg.seq == seq and msg.kind == NLMSG_ERROR:
                    _raise(error_code(msg.body))
                    return

    def _send(self, msg_type: int, flags: int, body: bytes) -> int:
        self._seq += 1
        self._sock.send(frame(msg_type, flags, self._seq, body))
        return self._seq


def _raise(code: int) -> None:
    if code:
        raise OSError(code, os.strerror(code))
