"""State records, their on-disk store and the status derived from what is observed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from runnc_py.errors import RunncError
from runnc_py.oci.state import (
    FIFO_FILE,
    ContainerState,
    Lock,
    Store,
    check_id,
    derive_status,
    pid_matches,
    proc_start_time,
)


@pytest.mark.parametrize(
    ("phase", "alive", "fifo", "paused", "creator", "expected"),
    [
        ("creating", False, False, False, True, "creating"),
        ("creating", True, False, False, False, "stopped"),  # create was killed
        ("created", True, True, False, False, "created"),
        ("created", True, False, False, False, "running"),  # fifo consumed by start
        ("created", False, True, False, False, "stopped"),
        ("running", True, False, False, False, "running"),
        ("running", True, False, True, False, "paused"),
        ("running", False, False, True, False, "stopped"),
    ],
)
def test_derive_status(
    phase: str, alive: bool, fifo: bool, paused: bool, creator: bool, expected: str
) -> None:
    assert derive_status(phase, alive, fifo, paused, creator) == expected


@pytest.mark.parametrize("good", ["a", "abc-DEF_1.2+3", "x" * 255])
def test_good_ids(good: str) -> None:
    assert check_id(good) == good


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a b", "x" * 256, "é", "a\n", ".delegate"])
def test_bad_ids(bad: str) -> None:
    with pytest.raises(RunncError, match="invalid container ID"):
        check_id(bad)


def test_proc_start_time() -> None:
    me = proc_start_time(os.getpid())
    assert me is not None and me > 0
    assert pid_matches(os.getpid(), me)
    assert not pid_matches(os.getpid(), me + 1)  # a recycled pid has another start time
    assert proc_start_time(0) is None
    assert proc_start_time(2**22 + 1) is None


def test_zombie_counts_as_dead() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        import time

        deadline = time.monotonic() + 5
        while proc_start_time(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc_start_time(pid) is None  # a zombie until we reap it
        assert os.path.exists(f"/proc/{pid}")
    finally:
        os.waitpid(pid, 0)


def _state(**kw: object) -> ContainerState:
    base: dict[str, object] = {"id": "c1", "bundle": "/b", "rootfs": "/b/rootfs", "created": "t"}
    base.update(kw)
    return ContainerState(**base)  # type: ignore[arg-type]


def test_store_roundtrip_and_status(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "root"))
    directory = store.make_dir("c1")
    with pytest.raises(RunncError, match="already exists"):
        store.make_dir("c1")
    state = _state(pid=os.getpid(), pid_start=proc_start_time(os.getpid()), phase="created",
                   annotations={"a": "b"}, hooks={"poststop": [{"path": "/bin/true"}]})  # fmt: skip
    store.save(state)
    loaded = store.load("c1")
    assert loaded.to_json() == state.to_json()
    assert loaded.status(directory) == "running"
    Path(directory, FIFO_FILE).touch()
    assert loaded.status(directory) == "created"
    oci = loaded.oci("created")
    assert oci["pid"] == os.getpid() and oci["annotations"] == {"a": "b"}
    assert set(oci) == {"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created",
                        "owner", "annotations"}  # fmt: skip
    assert loaded.oci("stopped")["pid"] == 0
    assert store.ids() == ["c1"]
    with Lock(directory):
        store.remove("c1")
    assert store.ids() == []
    with pytest.raises(RunncError, match="does not exist"):
        store.load("c1")
    with pytest.raises(RunncError, match="does not exist"):
        Lock(directory).__enter__()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "corrupt state file"),
        (json.dumps({"id": "c1"}), "foreign"),
        (json.dumps({"runncPy": 99, "id": "c1"}), "state format"),
        (json.dumps({"runncPy": 1, "id": "c1"}), "corrupt state: bundle must be a string"),
        (json.dumps({"runncPy": 1, "id": 5, "bundle": "/b", "rootfs": "/r", "created": "t"}),
         "id must be a string"),
        (json.dumps({"runncPy": 1, "id": "c2", "bundle": "/b", "rootfs": "/r", "created": "t"}),
         "names another container"),
    ],
)  # fmt: skip
def test_bad_state_files(tmp_path: Path, content: str, message: str) -> None:
    store = Store(str(tmp_path))
    Path(store.make_dir("c1"), "state.json").write_text(content)
    with pytest.raises(RunncError, match=message):
        store.load("c1")


def test_missing_state_file_and_delegate_ids(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.make_dir("c1")
    with pytest.raises(RunncError, match="missing"):
        store.load("c1")
    os.makedirs(os.path.join(store.delegate_root(), "d1"))
    assert store.ids() == ["c1"]  # the delegate's directory is not a container
    with pytest.raises(RunncError, match="delegated"):
        store.make_dir("d1")


def test_deeply_nested_state_is_corrupt_not_a_crash(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    Path(store.make_dir("c1"), "state.json").write_text("[" * 200_000)
    with pytest.raises(RunncError, match="corrupt state file"):
        store.load("c1")
