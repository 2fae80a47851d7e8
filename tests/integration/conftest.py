"""Fixtures for the root-only integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.netlab import Lab, network_lab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A Docker-like host/container namespace pair (see netlab.py), removed afterwards."""
    with network_lab(tmp_path) as made:
        yield made
