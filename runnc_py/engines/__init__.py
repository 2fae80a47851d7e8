"""Registering runnc-py with container engines: one module per engine's configuration file.

Each engine module is a pure core, "current text -> new text" (`add`) and back (`remove`), with
no file access; `runnc_py.engines.files` is the thin shell that reads, backs up, writes
atomically and prints diffs, and `runnc_py.engines.reload` tells (or makes) each daemon re-read
its configuration. See docs/engines.md, "Registering the runtime".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

DEFAULT_NAME = "runnc-py"
DEFAULT_BINARY = "/usr/local/bin/runnc-py"


@dataclass(frozen=True)
class Registration:
    """What `install` writes into every engine's configuration."""

    name: str = DEFAULT_NAME  # runtime name (Docker, podman) / CRI runtime handler (containerd)
    binary: str = DEFAULT_BINARY
    # Docker only: runtimeArgs `--delegate RUNTIME` (images without a unikernel go to it).
    delegate: str | None = None
    # podman only: this host's hard limits; below podman's default they become default_ulimits.
    nofile_hard: int | None = None
    nproc_hard: int | None = None


class EngineConfig(Protocol):
    """One engine's configuration file, as a pure text transformation."""

    engine: str  # "docker", "podman", "containerd"
    default_path: str
    daemon: str | None  # the daemon that must re-read the file (None: read on every command)
    path: str  # the file being edited: default_path, or what --config named

    def at(self, path: str) -> EngineConfig:
        """This engine's configuration kept in PATH."""
        ...

    def add(self, text: str | None, reg: Registration) -> str:
        """TEXT (None: no file yet) with the runtime registered; every other byte kept where
        the format allows. Idempotent: add(add(t)) == add(t)."""
        ...

    def remove(self, text: str, before: str | None, reg: Registration) -> str:
        """TEXT without what `add` put there. BEFORE is the file as it was before `add` (its
        backup; None: unknown, then only the runtime entry itself goes)."""
        ...

    def same(self, a: str, b: str) -> bool:
        """Whether A and B mean the same configuration (formatting aside)."""
        ...

    def bare(self, text: str) -> bool:
        """Whether TEXT holds nothing but what `add` writes into a new file, minus the runtime:
        a file install created can then be deleted by uninstall."""
        ...
