"""Named tuples without `collections`: what `typing.NamedTuple` / `collections.namedtuple` gave
the networking records that are tuples (addresses, guest devices, netlink replies).

Why: create's init imports the networking modules on every networked `create`, and
`collections` (~1.9 ms with `_collections_abc`, keyword, operator, reprlib) is otherwise absent
from create's path (docs/boot-path.md). A subclass lists its `_fields` (and `_defaults`);
each field becomes a read-only property reading one item, with `_tuplegetter`, the C accessor
namedtuple itself uses. Equality, hashing, ordering and unpacking are the tuple's own.
"""

from __future__ import annotations

from _collections import _tuplegetter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Self


class TupleRecord(tuple):
    """A tuple with named fields. `Cls(*values, **by_name)`, `_replace`, `_asdict`, `_fields`."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _defaults: dict[str, Any] = {}  # noqa: RUF012 (read only: a subclass sets its own)

    def __init_subclass__(cls) -> None:
        for index, name in enumerate(cls._fields):
            setattr(cls, name, _tuplegetter(index, f"Alias for field number {index}"))

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        fields = cls._fields
        if len(args) > len(fields):
            raise TypeError(f"{cls.__name__}() takes {len(fields)} arguments, got {len(args)}")
        values = list(args)
        for name in fields[len(args) :]:
            if name in kwargs:
                values.append(kwargs.pop(name))
            elif name in cls._defaults:
                values.append(cls._defaults[name])
            else:
                raise TypeError(f"{cls.__name__}() missing argument {name!r}")
        if kwargs:
            raise TypeError(f"{cls.__name__}() got unexpected argument(s) {', '.join(kwargs)}")
        return tuple.__new__(cls, values)

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{name}={value!r}" for name, value in zip(self._fields, self, strict=True)
        )
        return f"{type(self).__name__}({inner})"

    def __getnewargs__(self) -> tuple[Any, ...]:  # copy and pickle
        return tuple(self)

    def _asdict(self) -> dict[str, Any]:
        return dict(zip(self._fields, self, strict=True))

    def _replace(self, **changes: Any) -> Self:
        values = [changes.pop(name, value) for name, value in zip(self._fields, self, strict=True)]
        if changes:
            raise ValueError(f"Got unexpected field names: {list(changes)!r}")
        return tuple.__new__(type(self), values)
