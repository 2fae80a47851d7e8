"""Fixtures for the root-only integration tests."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.netlab import Lab, network_lab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A Docker-like host/container namespace pair (see netlab.py), removed afterwards."""
    with network_lab(tmp_path) as made:
        yield made


@pytest.fixture
def netns() -> Iterator[str]:
    """An empty network namespace of the test's own, deleted afterwards."""
    name = f"rnc-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
