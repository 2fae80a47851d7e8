"""What our policy would give a live process: the policy of its kind (spt guest or hvt
monitor) resolved for the fds the process really holds.

Decision (docs/audit.md): nothing extra is recorded at create. The fd numbers come from the
kernel's view of the process (/proc/PID/fd: its epoll set, timerfd, taps, block images, vCPU);
the block sector sizes from the container's recorded annotations (512 when none, as at boot).
A filter that allows anything else than the policy for exactly those fds is drift.
"""

from __future__ import annotations

from collections.abc import Mapping

from runnc_py.audit.procfacts import ProcessFacts
from runnc_py.errors import RunncError
from runnc_py.sandbox.facts import BootFacts, DeviceFacts

DEFAULT_SECTOR = 512
SECTOR_KEY = "org.runnc-py.block-sector-size."
BLOCK_KEY = "org.runnc-py.block."


def sector_sizes(annotations: Mapping[str, str]) -> list[tuple[str, int]]:
    """(name, sector size) of each block device, in the order the container attaches them."""
    out = []
    for key in annotations:
        if key.startswith(BLOCK_KEY):
            name = key[len(BLOCK_KEY):]
            size = annotations.get(SECTOR_KEY + name, str(DEFAULT_SECTOR))
            out.append((name, int(size) if size.isdigit() else DEFAULT_SECTOR))
    return out


def boot_facts(facts: ProcessFacts, blocks: list[tuple[str, int]] | None = None) -> BootFacts:
    """The boot facts the process's fds imply (devices in fd order, as they were opened)."""
    where = f"pid {facts.pid}"
    epoll = [f.fd for f in facts.fds if f.kind == "epoll"]
    timer = [f.fd for f in facts.fds if f.kind == "timerfd"]
    if len(epoll) != 1 or len(timer) != 1:
        raise RunncError(
            f"expected one epoll fd and one timerfd (a Solo5 guest or monitor), found "
            f"{len(epoll)} and {len(timer)}", where=where)
    vcpu = [f.fd for f in facts.fds if f.kind == "kvm-vcpu"]
    devices: list[DeviceFacts] = []
    for f in facts.fds:
        if f.kind == "tap":
            devices.append(DeviceFacts(kind="net", name=f.iface or f"net{f.fd}", hostfd=f.fd))
    block_fds = [f for f in facts.fds if f.fd > 2 and f.kind in ("file", "block-dev")]
    known = list(blocks or [])
    for i, f in enumerate(block_fds):
        name, sector = known[i] if i < len(known) else (f"block{f.fd}", DEFAULT_SECTOR)
        capacity = f.size or 0
        devices.append(DeviceFacts(kind="block", name=name, hostfd=f.fd, capacity=capacity,
                                   block_size=sector))
    return BootFacts(epollfd=epoll[0], timerfd=timer[0], devices=tuple(devices),
                     vcpufd=vcpu[0] if vcpu else None)
