"""runnc_py.record: the plain records and named ints that replace dataclasses and IntEnum on the
boot path must behave as those did where the code relies on it."""

from __future__ import annotations

import copy
import pickle

import pytest

from runnc_py.monitor.launch import GuestDevices, LaunchRequest
from runnc_py.record import FrozenRecord, NamedInt
from runnc_py.unikernel.elf import Target
from runnc_py.unikernel.manifest import DeviceType, ManifestEntry


class Point(FrozenRecord):
    __slots__ = ("x", "y")
    x: int
    y: int

    def __init__(self, x: int, y: int = 0) -> None:
        self._set(x=x, y=y)


class Colour(NamedInt):
    RED = 1
    BLUE = 4


def test_frozen_record_equality_hash_and_repr() -> None:
    assert Point(1, 2) == Point(1, 2) != Point(1, 3)
    assert hash(Point(1, 2)) == hash(Point(1, 2))
    assert repr(Point(1)) == "Point(x=1, y=0)"
    assert Point(1) != (1, 0), "a record equals only a record of its own class"


def test_frozen_record_refuses_changes_but_replace_makes_a_copy() -> None:
    p = Point(1, 2)
    with pytest.raises(AttributeError, match="cannot assign"):
        p.x = 5  # type: ignore[misc]
    with pytest.raises(AttributeError, match="cannot delete"):
        del p.x  # type: ignore[misc]
    assert p.replace(y=7) == Point(1, 7) and p == Point(1, 2)
    with pytest.raises(TypeError, match="no field"):
        p.replace(z=1)


def test_records_survive_copy_and_pickle() -> None:
    req = LaunchRequest("k.spt", args=("a",), nets={"n": "tap0"})
    for clone in (copy.copy(req), copy.deepcopy(req), pickle.loads(pickle.dumps(req))):
        assert clone == req
    devices = copy.deepcopy(GuestDevices(owned=[3]))
    assert devices == GuestDevices(owned=[3])
    devices.owned.append(4)  # a mutable record stays mutable
    assert devices.owned == [3, 4]


def test_launch_request_defaults_are_fresh_mappings() -> None:
    a, b = LaunchRequest("a"), LaunchRequest("b")
    assert a.nets == {} and a.nets is not b.nets
    assert a.replace(monitor="spt").monitor == "spt" and a.monitor == "auto"


def test_named_int_acts_as_the_int_enum_did() -> None:
    assert Colour(4) is Colour.BLUE and Colour.BLUE == 4 and Colour.BLUE.name == "BLUE"
    assert f"{Colour.RED}" == str(Colour.RED) == "1"
    assert repr(Colour.RED) == "<Colour.RED: 1>"
    assert Colour.members() == (Colour.RED, Colour.BLUE)
    assert pickle.loads(pickle.dumps(Colour.BLUE)) is Colour.BLUE
    with pytest.raises(ValueError, match="not a valid Colour"):
        Colour(2)
    with pytest.raises(ValueError):
        Colour("RED")  # type: ignore[arg-type]


def test_the_boot_path_types_keep_their_names() -> None:
    assert Target(2) is Target.SPT and Target.HVT.name == "HVT"
    assert ManifestEntry(1, "rootfs", DeviceType.BLOCK_BASIC).type_name == "BLOCK_BASIC"
    assert ManifestEntry(1, "x", 7).type_name == "0x7"
