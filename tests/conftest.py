"""Shared fixtures: freshly built test guests, the real `runnc-py` CLI, capability checks."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from runnc_py.paths import runnc_command

REPO = Path(__file__).resolve().parent.parent


def _load_build_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("runnc_build", REPO / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runnc_binary() -> list[str]:
    """What engines call (see runnc_py.paths)."""
    return runnc_command()


def is_root() -> bool:
    return os.geteuid() == 0


def kvm_usable() -> bool:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


_PRIVATE_CACHE: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """Tests neither read nor fill this host's caches (/var/lib/runnc-py): one private cache
    root per session, inherited by every runnc-py the tests start."""
    if "RUNNC_PY_CACHE" not in os.environ:
        _PRIVATE_CACHE.append(tempfile.mkdtemp(prefix="runnc-py-test-cache-"))
        os.environ["RUNNC_PY_CACHE"] = _PRIVATE_CACHE[0]


def pytest_unconfigure(config: pytest.Config) -> None:
    for path in _PRIVATE_CACHE:
        shutil.rmtree(path, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip root/KVM tests only where the capability is really absent, saying so."""
    skip_root = pytest.mark.skip(reason="needs root (namespaces, taps, cgroups); euid != 0")
    skip_kvm = pytest.mark.skip(reason="needs a usable /dev/kvm; cannot open it read-write")
    root, kvm = is_root(), kvm_usable()
    for item in items:
        if "root" in item.keywords and not root:
            item.add_marker(skip_root)
        if "kvm" in item.keywords and not kvm:
            item.add_marker(skip_kvm)


@pytest.fixture(scope="session")
def build_module():  # type: ignore[no-untyped-def]
    return _load_build_module()


@pytest.fixture(scope="session")
def guests(build_module, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """Our test unikernels built from the current sources: DIR/NAME.spt and DIR/abi1/NAME.spt."""
    out = tmp_path_factory.mktemp("guests")
    build_module.build_guests(out)
    return out


RunCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def runnc() -> RunCli:
    """Run the real `runnc-py` CLI: runnc("exec", path, timeout=10) -> CompletedProcess."""
    base = runnc_binary()

    def run(
        *args: str, timeout: float = 30, check: bool = False, **kwargs
    ) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
        return subprocess.run(
            [*base, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            **kwargs,
        )

    return run
