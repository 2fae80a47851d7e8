"""How to call runnc-py itself from a child process (demo, benchmarks, tests)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

# What `build.py setup` writes and engines are pointed at (see README).
ENTRY_POINT = Path("/usr/local/bin/runnc-py")


def runnc_command() -> list[str]:
    """The entry point engines use if installed, else pip's console script, else the module."""
    if ENTRY_POINT.exists():
        return [str(ENTRY_POINT)]
    script = Path(sys.executable).parent / "runnc-py"
    if script.exists():
        return [str(script)]
    found = shutil.which("runnc-py")
    return [found] if found else [sys.executable, "-m", "runnc_py.cli"]
