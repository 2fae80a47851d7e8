"""What a policy's placeholders stand for in one boot: the fds and devices it opened.

Plain data, apart from policy.py, so the boot path can describe a boot (and look up its
compiled filter) without importing the policy parser.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BootFacts", "DeviceFacts"]


@dataclass(frozen=True)
class DeviceFacts:
    """One attached device as the boot opened it."""

    kind: str  # "net" | "block"
    name: str
    hostfd: int
    capacity: int = 0  # block: bytes
    block_size: int = 0  # block: bytes per read/write


@dataclass(frozen=True)
class BootFacts:
    """What a policy's placeholders stand for in one boot."""

    epollfd: int
    timerfd: int
    devices: tuple[DeviceFacts, ...] = ()
    vcpufd: int | None = None  # hvt monitor only
