"""The engines `install` knows, by name."""

from __future__ import annotations

import shutil

from runnc_py.engines import EngineConfig, containerd, docker, podman

CONFIGS: dict[str, EngineConfig] = {
    "docker": docker.CONFIG,
    "podman": podman.CONFIG,
    "containerd": containerd.CONFIG,
}
# The program whose presence means the engine is installed here.
PROGRAMS = {"docker": "dockerd", "podman": "podman", "containerd": "containerd"}


def present() -> list[str]:
    """The engines installed on this host (their program is on PATH)."""
    return [name for name, program in PROGRAMS.items() if shutil.which(program)]
