"""The README's main job: `runnc-py demo` boots the bundled hello unikernel and explains it."""

from __future__ import annotations

import pytest

from tests.conftest import REPO, RunCli


@pytest.mark.root
def test_demo_boots_the_bundled_guest(build_module, runnc: RunCli) -> None:  # type: ignore[no-untyped-def]
    bundled = REPO / "runnc_py" / "guests"
    if not (bundled / "hello.spt").exists():  # `build.py setup` puts them there
        build_module.build_guests(bundled)
    proc = runnc("demo", timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Hello, World\nCommand line is: 'hello from runnc-py'\n" in proc.stdout
    assert "Seccomp     2" in proc.stdout
    assert "NoNewPrivs  1" in proc.stdout
