"""config.json `mounts` through the real runtime: the engine's resolv.conf/hosts/hostname land
in an LKL-shaped guest's own ext4 image (read back with debugfs), a host bind mount the guest
cannot see fails `create` with one line and leaves nothing, unless `org.runnc-py.mounts=ignore`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration import test_lifecycle
from tests.integration.test_lifecycle import Runtime, assert_gone, last_error, wait_exit

pytestmark = pytest.mark.root

rt = test_lifecycle.rt
subreaper = test_lifecycle.subreaper

ENGINE_FILES = {
    "/etc/resolv.conf": "nameserver 10.0.0.53\nsearch example.test\n",
    "/etc/hosts": "127.0.0.1 localhost\n10.88.0.7 uk-engine\n",
    "/etc/hostname": "uk-engine\n",
}


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("RUNNC_PY_CACHE", str(cache))
    return cache


def with_mounts(bundle: Path, mounts: list[dict[str, object]]) -> Path:
    config = json.loads((bundle / "config.json").read_text())
    config["mounts"] = mounts
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def engine_mounts(tmp: Path) -> list[dict[str, object]]:
    """What an engine puts in `mounts`: kernel filesystems plus its per-container files."""
    mounts: list[dict[str, object]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev/shm", "type": "bind", "source": str(tmp), "options": ["rbind"]},
    ]
    for destination, text in ENGINE_FILES.items():
        source = tmp / destination.rsplit("/", 1)[1]
        source.write_text(text)
        mounts.append({"destination": destination, "type": "bind", "source": str(source)})
    return mounts


def debugfs_cat(image: Path, path: str) -> str:
    done = subprocess.run(["debugfs", "-R", f"cat {path}", str(image)], capture_output=True)
    return done.stdout.decode()


def test_engine_files_are_written_into_the_guests_image(rt: Runtime, tmp_path: Path) -> None:
    bundle = with_mounts(rt.bundle("rootfs.spt", ("sleep=30",)), engine_mounts(tmp_path))
    (bundle / "rootfs" / "etc").mkdir()
    (bundle / "rootfs" / "etc" / "hosts").write_text("from the image\n")  # replaced
    cid = rt.new_id("mnt")
    pid, out = rt.created(cid, bundle)
    copy = Path(json.loads((rt.root / cid / "state.json").read_text())["rootfsImage"])
    for destination, text in ENGINE_FILES.items():
        assert debugfs_cat(copy, destination) == text
    fsck = subprocess.run(["e2fsck", "-fn", str(copy)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout
    assert (bundle / "rootfs" / "etc" / "hosts").read_text() == "from the image\n"
    assert rt("start", cid).returncode == 0
    assert rt("kill", cid, "TERM").returncode == 0
    assert wait_exit(pid) == 143
    assert "rootfs: ext4 ok" in out.read_text()
    assert rt("delete", cid).returncode == 0
    assert not copy.exists()


def test_host_bind_mount_is_refused_with_one_line(
    rt: Runtime, tmp_path: Path, private_cache: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    mounts = [
        *engine_mounts(tmp_path),
        {"destination": "/data", "type": "bind", "source": str(data)},
    ]
    cid = rt.new_id("vol")
    done, _ = rt.create(cid, with_mounts(rt.bundle("rootfs.spt"), mounts))
    assert done.returncode != 0
    assert last_error(rt) == (
        f"config.json: mounts[5]: bind mount {data} -> /data cannot reach a unikernel (it has "
        "no host filesystem); drop the mount, or set annotation org.runnc-py.mounts=ignore"
    )
    assert_gone(rt, cid)
    assert not (private_cache / "containers").exists()


def test_ignore_annotation_runs_without_the_mount(rt: Runtime, tmp_path: Path) -> None:
    mounts = [{"destination": "/data", "type": "bind", "source": str(tmp_path)}]
    bundle = rt.bundle("hello.spt", annotations={"org.runnc-py.mounts": "ignore"})
    cid = rt.new_id("ign")
    done = rt("run", "--bundle", str(with_mounts(bundle, mounts)), cid)
    assert done.returncode == 0, done.stderr
    assert "Hello, World" in done.stdout
