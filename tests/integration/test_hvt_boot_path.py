"""`runnc-py exec` of an hvt guest imports nothing heavy up to the monitor once its caches are
warm, as tests/unit/test_import_budget.py checks for spt: preparing an hvt guest creates a VM,
so this one needs /dev/kvm. A check of structure (what is imported), never of time.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.test_import_budget import HEAVY_EXEC, boot_python, over_budget

pytestmark = pytest.mark.kvm


def test_hvt_exec_boot_path_with_warm_caches_imports_nothing_heavy(
    guests: Path, tmp_path: Path
) -> None:
    """Up to `boot_hvt`: the arguments parsed, the unikernel's facts and the monitor's filter
    read from the caches, the devices and the VM made, every capability dropped."""
    env = {**os.environ, "RUNNC_PY_CACHE": str(tmp_path / "cache")}
    hello = str(guests / "hvt" / "hello.hvt")
    code = (
        "from runnc_py.monitor.tender_args import parse_exec_args\n"
        "from runnc_py.monitor.launch import prepare\n"
        "import runnc_py.cli, runnc_py.monitor.exec_run, runnc_py.oci.security\n"
        f"prepare(parse_exec_args(['--mem=8', {hello!r}]).request()).close()\n"
        "runnc_py.oci.security.drop_capabilities()\n"
    )
    cold = boot_python(code, env)
    assert "elftools" in cold and "tomllib" in cold, "the first run validates and compiles"
    warm = boot_python(code, env)
    assert {"elftools", "pyseccomp", "tomllib"}.isdisjoint(warm), "the second hits the caches"
    assert over_budget(warm, HEAVY_EXEC) == []
