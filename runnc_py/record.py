"""Plain records and named integers for the boot path, without dataclasses, typing or enum.

Why: `runnc-py exec` and `create` start a fresh interpreter per call, and `dataclasses` alone
imports inspect (ast, dis, tokenize), re, copy and enum: ~15 ms, more than the rest of an
`exec`. The data types on those paths are therefore plain `__slots__` classes with an explicit
`__init__`; `Record` gives them what dataclasses generated (equality, a readable repr,
`replace`), derived from `__slots__` alone, and `FrozenRecord` adds immutability and a hash.
`NamedInt` stands in for `enum.IntEnum` where a value is an int with a name (ELF targets,
manifest types). tests/unit/test_import_budget.py keeps the heavy modules off these paths.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Self

__all__ = ["FrozenRecord", "NamedInt", "Record"]

_FIELDS: dict[type, tuple[str, ...]] = {}


def _fields(cls: type) -> tuple[str, ...]:
    """Every slot of CLS, base classes first (the order __init__ takes them in)."""
    names = _FIELDS.get(cls)
    if names is None:
        names = tuple(
            name for klass in reversed(cls.__mro__) for name in vars(klass).get("__slots__", ())
        )
        _FIELDS[cls] = names
    return names


class Record:
    """A mutable record: fields are the `__slots__` of the class and its bases."""

    __slots__ = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _fields(type(self)))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass without frozen

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in _fields(type(self)))
        return f"{type(self).__name__}({inner})"

    # copy, deepcopy and pickle: the field values in slot order (a frozen record refuses
    # setattr, so the default slot-state protocol could not restore one).
    def __getstate__(self) -> tuple[Any, ...]:
        return self._values()

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(_fields(type(self)), state, strict=True):
            object.__setattr__(self, name, value)

    def replace(self, **changes: Any) -> Self:
        """A copy with CHANGES applied (dataclasses.replace); unknown names are a TypeError."""
        new = object.__new__(type(self))
        for name in _fields(type(self)):
            value = changes.pop(name) if name in changes else getattr(self, name)
            object.__setattr__(new, name, value)
        if changes:
            raise TypeError(f"{type(self).__name__} has no field(s) {', '.join(changes)}")
        return new


class FrozenRecord(Record):
    """An immutable, hashable record. `__init__` sets fields with `self._set(name=value, ...)`."""

    __slots__ = ()

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of {type(self).__name__}")

    def __hash__(self) -> int:
        return hash(self._values())


class NamedInt(int):
    """An int with a name, one instance per value: a subclass lists its members as
    `NAME = value`; `Cls(value)` returns the member (ValueError for an unknown value) and
    `member.name` its name, as with enum.IntEnum."""

    __slots__ = ()
    _members: dict[int, Self]
    _names: dict[int, str]

    def __init_subclass__(cls) -> None:
        cls._members, cls._names = {}, {}
        for name, value in list(vars(cls).items()):
            if name.isupper() and type(value) is int:
                member = int.__new__(cls, value)
                cls._members[value], cls._names[value] = member, name
                setattr(cls, name, member)

    def __new__(cls, value: int) -> Self:
        try:
            return cls._members[value]
        except (KeyError, TypeError):
            raise ValueError(f"{value!r} is not a valid {cls.__name__}") from None

    @classmethod
    def members(cls) -> tuple[Self, ...]:
        return tuple(cls._members.values())

    @property
    def name(self) -> str:
        return self._names[int(self)]

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self.name}: {int(self)}>"

    __str__ = int.__repr__  # str() and f-strings show the number, as IntEnum's do

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (int(self),)
