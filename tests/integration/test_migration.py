"""oci/migration.py on this host: the no-op rejoin `create` starts early really writes a
cgroup.procs file of ours and leaves the process exactly where it was."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from runnc_py.oci import migration

pytestmark = pytest.mark.root


def test_rejoin_takes_and_changes_nothing() -> None:
    before = Path("/proc/self/cgroup").read_text()
    assert any(os.path.exists(p) for p in migration.procs_files(before))
    assert migration._rejoin_own_cgroup() is True
    assert Path("/proc/self/cgroup").read_text() == before


def test_start_returns_at_once_and_the_helper_thread_ends() -> None:
    before = Path("/proc/self/cgroup").read_text()
    tasks = len(os.listdir("/proc/self/task"))
    migration.start_grace_period()
    deadline = time.monotonic() + 10
    while len(os.listdir("/proc/self/task")) > tasks and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(os.listdir("/proc/self/task")) == tasks  # it did its write and ended
    assert Path("/proc/self/cgroup").read_text() == before
