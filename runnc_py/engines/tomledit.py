"""Round-trip TOML edits shared by the podman and containerd configurations (tomlkit keeps
every comment, blank line and key order it does not touch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import Table
from tomlkit.toml_document import TOMLDocument

from runnc_py.errors import RunncError


def parse(text: str | None, where: str) -> TOMLDocument:
    try:
        return tomlkit.parse(text or "")
    except TOMLKitError as exc:
        raise RunncError(f"not valid TOML ({exc})", where=where) from None


def plain(text: str | None, where: str) -> dict[str, Any]:
    """TEXT as plain Python data (for comparing meanings)."""
    return parse(text, where).unwrap()


def lookup(data: Any, path: Sequence[str]) -> Any:
    """The value at PATH in plain or tomlkit data, or None."""
    for key in path:
        if not hasattr(data, "get"):
            return None
        data = data.get(key)
        if data is None:
            return None
    return data


def ensure_table(doc: TOMLDocument, path: Sequence[str], where: str) -> Any:
    """The table at PATH, made if missing. Missing parents are made as super tables, so only
    the innermost header is written (`[a.b.c]`, not `[a]`, `[a.b]`, `[a.b.c]`)."""
    container: Any = doc
    for depth, key in enumerate(path):
        if key not in container:
            container[key] = tomlkit.table(is_super_table=depth < len(path) - 1)
        container = container[key]
        if not hasattr(container, "get") or isinstance(container, str | list):
            raise RunncError("must be a table", where=f"{where}: {'.'.join(path[: depth + 1])}")
    return container


def fill(table: Any, values: dict[str, Any], *, new: bool) -> None:
    """Set VALUES in TABLE; a NEW table also gets a blank line after them, so the next
    table's header does not follow without one."""
    for key, value in values.items():
        table[key] = value
    if new:
        table.add(tomlkit.nl())


def prune(doc: TOMLDocument, path: Sequence[str], before: dict[str, Any] | None) -> None:
    """Delete the tables along PATH, innermost first, that are empty now and did not exist in
    BEFORE (they were made by `add`). BEFORE None: unknown, keep them."""
    if before is None:
        return
    for depth in range(len(path), 0, -1):
        prefix = path[:depth]
        table = lookup(doc, prefix)
        if table is None:
            continue
        if len(table) or lookup(before, prefix) is not None:
            return
        parent = lookup(doc, prefix[:-1]) if depth > 1 else doc
        del parent[prefix[-1]]


def dump(doc: TOMLDocument, like: str | None = None) -> str:
    """DOC as text, ending in as many newlines as LIKE (the file it came from; a removed last
    table leaves the blank line tomlkit put before it), or in one."""
    text = tomlkit.dumps(doc)
    newlines = len(like) - len(like.rstrip("\n")) if like and like.strip() else 1
    return text.rstrip("\n") + "\n" * newlines


def is_table(value: Any) -> bool:
    return isinstance(value, Table | dict)
