"""/etc/docker/daemon.json: `{"runtimes": {"runnc-py": {"path": BINARY}}}` merged in.

JSON has no comments; key order and the file's indentation are kept (Python dicts keep
insertion order, and the indent is read from the file's first indented line).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Self

from runnc_py.engines import Registration
from runnc_py.errors import RunncError

RUNTIMES = "runtimes"


def _parse(text: str | None, where: str) -> dict[str, Any]:
    if text is None or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunncError(
            f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})", where=where
        ) from None
    if not isinstance(data, dict):
        raise RunncError("must hold a JSON object", where=where)
    return data


def _indent(text: str | None) -> int:
    match = re.search(r"\n( +)\S", text or "")
    return len(match.group(1)) if match else 2


def _dump(data: dict[str, Any], like: str | None) -> str:
    return json.dumps(data, indent=_indent(like)) + "\n"


@dataclass(frozen=True)
class DockerConfig:
    engine = "docker"
    default_path = "/etc/docker/daemon.json"
    daemon: ClassVar[str | None] = "dockerd"
    path: str = default_path  # the file being edited (error messages name it)

    def entry(self, reg: Registration) -> dict[str, Any]:
        entry: dict[str, Any] = {"path": reg.binary}
        if reg.delegate:
            entry["runtimeArgs"] = ["--delegate", reg.delegate]
        return entry

    def at(self, path: str) -> Self:
        return replace(self, path=path)

    def add(self, text: str | None, reg: Registration) -> str:
        data = _parse(text, self.path)
        runtimes = data.get(RUNTIMES)
        if runtimes is None:
            runtimes = data[RUNTIMES] = {}
        elif not isinstance(runtimes, dict):
            raise RunncError("must be a JSON object", where=f"{self.path}: {RUNTIMES}")
        if runtimes.get(reg.name) == self.entry(reg) and text is not None:
            return text  # already there: not even reformatted
        runtimes[reg.name] = self.entry(reg)
        return _dump(data, text)

    def remove(self, text: str, before: str | None, reg: Registration) -> str:
        data = _parse(text, self.path)
        runtimes = data.get(RUNTIMES)
        if not isinstance(runtimes, dict) or reg.name not in runtimes:
            return text
        del runtimes[reg.name]
        if not runtimes and before is not None and RUNTIMES not in _parse(before, "backup"):
            del data[RUNTIMES]
        return _dump(data, text)

    def same(self, a: str, b: str) -> bool:
        return _parse(a, "a") == _parse(b, "b")

    def bare(self, text: str) -> bool:
        return _parse(text, self.path) in ({}, {RUNTIMES: {}})


CONFIG = DockerConfig()
