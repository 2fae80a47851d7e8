"""The record of what `wire` did, as data: enough for `unwire` in another process to undo it.

`create` stores it in the container's `net.json`; `delete` loads it and calls `unwire`. Every
field is validated on load because that file outlives the process that wrote it.
"""

from __future__ import annotations

from runnc_py.errors import RunncError
from runnc_py.net.facts import (
    MAX_MTU,
    MIN_MTU,
    Address,
    Route,
    address_from_text,
    check_ifname,
    check_int,
    check_ip,
    check_list,
    mac_from_text,
    route_from_dict,
    route_to_dict,
)
from runnc_py.net.tuples import TupleRecord
from runnc_py.record import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FORMAT_VERSION = 1


class GuestNic(TupleRecord):
    """One guest network device: `(guest_device, tap, mac, mtu, iface)`.

    The launcher opens `tap` (inside the container's network namespace) for the manifest device
    `guest_device` and gives the guest `mac` and `mtu`: the container interface's own.
    """

    __slots__ = ()
    _fields = ("guest_device", "tap", "mac", "mtu", "iface")
    guest_device: str
    tap: str
    mac: str
    mtu: int
    iface: str


class AddressRecord(FrozenRecord):
    """An address taken off an interface, with what is needed to put it back as it was."""

    __slots__ = ("address", "broadcast", "flags", "label", "scope")
    address: Address
    scope: int
    flags: int
    broadcast: str | None
    label: str | None

    def __init__(
        self,
        address: Address,
        scope: int = 0,
        flags: int = 0,
        broadcast: str | None = None,
        label: str | None = None,
    ) -> None:
        self._set(address=address, scope=scope, flags=flags, broadcast=broadcast, label=label)

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": str(self.address),
            "scope": self.scope,
            "flags": self.flags,
            "broadcast": self.broadcast,
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> AddressRecord:
        if not isinstance(data, dict):
            raise RunncError("expected a JSON object", where=where)
        broadcast = data.get("broadcast")
        label = data.get("label")
        if label is not None and (not isinstance(label, str) or len(label.encode()) > 15):
            raise RunncError(f"{label!r} is not an address label", where=f"{where}.label")
        return cls(
            address=address_from_text(data.get("address"), f"{where}.address"),
            scope=check_int(data.get("scope", 0), f"{where}.scope", 0, 255),
            flags=check_int(data.get("flags", 0), f"{where}.flags", 0, 2**32 - 1),
            broadcast=None if broadcast is None else check_ip(broadcast, f"{where}.broadcast"),
            label=label,
        )


class IfaceUndo(FrozenRecord):
    """What is done to one interface: a journal of intents. Each field is written (and the
    record saved) *before* its step runs, so a record cut short by kill -9 at any point names
    everything that may exist. `unwire` checks each thing is there and ours before undoing it:
    the tap by ifindex + name + kind tun, the ingress qdisc by its filters redirecting to that
    tap, and addresses go back onto `iface_index` only."""

    __slots__ = ("addresses", "iface", "iface_index", "ingress", "routes", "tap", "tap_index")
    iface: str
    tap: str | None
    ingress: bool
    addresses: tuple[AddressRecord, ...]
    routes: tuple[Route, ...]
    iface_index: int | None
    tap_index: int | None

    def __init__(
        self,
        iface: str,
        tap: str | None = None,  # the tap we create
        ingress: bool = False,  # we add the ingress qdisc on `iface`
        addresses: tuple[AddressRecord, ...] = (),  # taken off `iface`
        routes: tuple[Route, ...] = (),  # main-table routes through `iface` to put back
        iface_index: int | None = None,  # `iface`'s ifindex: what is restored goes there only
        tap_index: int | None = None,  # the ifindex chosen for `tap` before creating it
    ) -> None:
        self._set(
            iface=iface,
            tap=tap,
            ingress=ingress,
            addresses=addresses,
            routes=routes,
            iface_index=iface_index,
            tap_index=tap_index,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "iface": self.iface,
            "iface_index": self.iface_index,
            "tap": self.tap,
            "tap_index": self.tap_index,
            "ingress": self.ingress,
            "addresses": [a.to_dict() for a in self.addresses],
            "routes": [route_to_dict(r) for r in self.routes],
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> IfaceUndo:
        if not isinstance(data, dict):
            raise RunncError("expected a JSON object", where=where)
        tap = data.get("tap")
        ingress = data.get("ingress", False)
        if not isinstance(ingress, bool):
            raise RunncError("expected true or false", where=f"{where}.ingress")
        return cls(
            iface=check_ifname(data.get("iface"), f"{where}.iface"),
            iface_index=_ifindex(data.get("iface_index"), f"{where}.iface_index"),
            tap=None if tap is None else check_ifname(tap, f"{where}.tap"),
            tap_index=_ifindex(data.get("tap_index"), f"{where}.tap_index"),
            ingress=ingress,
            addresses=tuple(
                AddressRecord.from_dict(a, f"{where}.addresses[{i}]")
                for i, a in enumerate(check_list(data.get("addresses", []), f"{where}.addresses"))
            ),
            routes=tuple(
                route_from_dict(r, f"{where}.routes[{i}]")
                for i, r in enumerate(check_list(data.get("routes", []), f"{where}.routes"))
            ),
        )


class WiredNetwork(FrozenRecord):
    """The guest's devices and the undo log of one `wire` call."""

    __slots__ = ("devices", "netns", "netns_id", "owner", "undo")
    netns: str | None
    netns_id: str
    devices: tuple[GuestNic, ...]
    undo: tuple[IfaceUndo, ...]
    # "PID:STARTTIME" of the process that wired (its /proc/PID/stat start time): a later
    # `create` may repair a stale half-wiring only once that process is gone.
    owner: str | None

    def __init__(
        self,
        netns: str | None,
        netns_id: str,
        devices: tuple[GuestNic, ...] = (),
        undo: tuple[IfaceUndo, ...] = (),
        owner: str | None = None,
    ) -> None:
        self._set(netns=netns, netns_id=netns_id, devices=devices, undo=undo, owner=owner)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "netns": self.netns,
            "netns_id": self.netns_id,
            "owner": self.owner,
            "devices": [d._asdict() for d in self.devices],
            "undo": [u.to_dict() for u in self.undo],
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "wired") -> WiredNetwork:
        if not isinstance(data, dict):
            raise RunncError("expected a JSON object", where=where)
        if data.get("version") != FORMAT_VERSION:
            raise RunncError(
                f"format version {data.get('version')!r} is not {FORMAT_VERSION}", where=where
            )
        netns = data.get("netns")
        if netns is not None and (not isinstance(netns, str) or not netns.startswith("/")):
            raise RunncError(f"{netns!r} is not an absolute path", where=f"{where}.netns")
        netns_id = data.get("netns_id")
        if not isinstance(netns_id, str) or netns_id.count(":") != 1:
            raise RunncError(f"{netns_id!r} is not DEV:INODE", where=f"{where}.netns_id")
        owner = data.get("owner")
        if owner is not None and (
            not isinstance(owner, str)
            or owner.count(":") != 1
            or not all(p.isascii() and p.isdigit() for p in owner.split(":"))
        ):
            raise RunncError(f"{owner!r} is not PID:STARTTIME", where=f"{where}.owner")
        return cls(
            netns=netns,
            netns_id=netns_id,
            owner=owner,
            devices=tuple(
                _nic_from_dict(d, f"{where}.devices[{i}]")
                for i, d in enumerate(check_list(data.get("devices", []), f"{where}.devices"))
            ),
            undo=tuple(
                IfaceUndo.from_dict(u, f"{where}.undo[{i}]")
                for i, u in enumerate(check_list(data.get("undo", []), f"{where}.undo"))
            ),
        )


def _ifindex(value: Any, where: str) -> int | None:
    return None if value is None else check_int(value, where, 1, 2**31 - 1)


def _nic_from_dict(data: Any, where: str) -> GuestNic:
    if not isinstance(data, dict):
        raise RunncError("expected a JSON object", where=where)
    guest_device = data.get("guest_device")
    if not isinstance(guest_device, str) or not 0 < len(guest_device) < 68:
        raise RunncError(f"{guest_device!r} is not a device name", where=f"{where}.guest_device")
    return GuestNic(
        guest_device=guest_device,
        tap=check_ifname(data.get("tap"), f"{where}.tap"),
        mac=mac_from_text(data.get("mac"), f"{where}.mac"),
        mtu=check_int(data.get("mtu"), f"{where}.mtu", MIN_MTU, MAX_MTU),
        iface=check_ifname(data.get("iface"), f"{where}.iface"),
    )
