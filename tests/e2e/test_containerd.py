"""containerd's own client: `ctr run --runc-binary runnc-py` (the runc v2 shim calling us).

The `containerd` fixture (conftest.py) runs a private containerd; images are imported from
archives built here (no registry).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import RUNTIME, Containerd
from tests.e2e.images import unikernel_image

pytestmark = [pytest.mark.e2e, pytest.mark.root]


@pytest.fixture(scope="module")
def image(
    containerd: Containerd, guests: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    work = tmp_path_factory.mktemp("ctr-image")
    name = f"docker.io/runnc-py-e2e/hello:{uuid.uuid4().hex[:12]}"
    archive = unikernel_image(guests / "hello.spt", name, work / "hello.tar")
    done = containerd.ctr("images", "import", str(archive))
    assert done.returncode == 0, done.stderr
    yield name
    containerd.ctr("images", "rm", name)


def ctr_run(containerd: Containerd, image: str, *args: str) -> tuple[int, str, str]:
    cid = f"runnc-py-e2e-{uuid.uuid4().hex[:8]}"
    done = containerd.ctr("run", "--rm", "--runc-binary", RUNTIME, image, cid, *args)
    return done.returncode, done.stdout, done.stderr


def test_ctr_run_hello(containerd: Containerd, image: str) -> None:
    code, out, err = ctr_run(containerd, image, "from", "ctr")
    assert code == 0, err
    assert "Hello, World" in out
    assert "Command line is: 'from ctr'" in out


def test_ctr_run_exit_status(containerd: Containerd, image: str) -> None:
    code, out, err = ctr_run(containerd, image, "exit=3")
    assert code == 3, err
    assert "Command line is: 'exit=3'" in out


def test_ctr_leaves_nothing(containerd: Containerd, image: str) -> None:
    ctr_run(containerd, image)
    assert containerd.ctr("tasks", "ls", "-q").stdout.strip() == ""
    assert containerd.ctr("containers", "ls", "-q").stdout.strip() == ""
