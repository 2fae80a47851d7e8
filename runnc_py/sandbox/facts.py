"""What a policy's placeholders stand for in one boot: the fds and devices it opened.

Plain data, apart from policy.py, so the boot path can describe a boot (and look up its
compiled filter) without importing the policy parser. The repr is part of the boot-keyed
program cache's key (sandbox/programs.py).
"""

from __future__ import annotations

from runnc_py.record import FrozenRecord

__all__ = ["BootFacts", "DeviceFacts"]


class DeviceFacts(FrozenRecord):
    """One attached device as the boot opened it."""

    __slots__ = ("block_size", "capacity", "hostfd", "kind", "name")
    kind: str  # "net" | "block"
    name: str
    hostfd: int
    capacity: int  # block: bytes
    block_size: int  # block: bytes per read/write

    def __init__(
        self, kind: str, name: str, hostfd: int, capacity: int = 0, block_size: int = 0
    ) -> None:
        self._set(kind=kind, name=name, hostfd=hostfd, capacity=capacity, block_size=block_size)


class BootFacts(FrozenRecord):
    """What a policy's placeholders stand for in one boot."""

    __slots__ = ("devices", "epollfd", "timerfd", "vcpufd")
    epollfd: int
    timerfd: int
    devices: tuple[DeviceFacts, ...]
    vcpufd: int | None  # hvt monitor only

    def __init__(
        self,
        epollfd: int,
        timerfd: int,
        devices: tuple[DeviceFacts, ...] = (),
        vcpufd: int | None = None,
    ) -> None:
        self._set(epollfd=epollfd, timerfd=timerfd, devices=devices, vcpufd=vcpufd)
