"""State is not trusted (docs/state.md): a foreign or writable --root, a symlinked container
directory, a state.json naming someone else's pid or cgroup mounts, a corrupt state.json.

Each test is the attack the adversarial review tried, made deterministic: the victim is a
`sleep` of ours that must survive every verb.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runnc_py.errors import RunncError
from runnc_py.oci import lifecycle
from runnc_py.oci.log import RuntimeLog
from runnc_py.oci.state import proc_start_time
from tests.integration import test_lifecycle
from tests.integration.test_lifecycle import Runtime, assert_gone, last_error, wait_exit, wait_for

rt = test_lifecycle.rt
subreaper = test_lifecycle.subreaper

pytestmark = pytest.mark.root


@pytest.fixture
def victim() -> Iterator[subprocess.Popen[bytes]]:
    """A process that is not the container's: no verb may signal it."""
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    proc.kill()
    proc.wait()


def alive(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is None


def sleeping_guest(rt: Runtime, cid: str) -> int:
    """A started container whose guest sleeps (until killed): its init pid."""
    pid, out = rt.created(cid, rt.bundle("time.spt", ("sleep=60",)))
    assert rt("start", cid).returncode == 0
    wait_for(lambda: "sleeping" in out.read_text(), what="the guest to sleep")
    return pid


def tamper(rt: Runtime, cid: str, **fields: Any) -> None:
    path = rt.root / cid / "state.json"
    data = json.loads(path.read_text())
    data.update(fields)
    path.write_text(json.dumps(data))


def test_new_root_is_private(rt: Runtime) -> None:
    cid = rt.new_id()
    rt.created(cid, rt.bundle())
    assert rt.root.stat().st_mode & 0o777 == 0o700
    assert rt("delete", "--force", cid).returncode == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda root: os.chown(root, 65534, 65534), "owned by uid 65534"),
        (lambda root: os.chmod(root, 0o777), "writable by others"),
    ],
)
def test_root_someone_else_can_write_is_refused(rt: Runtime, change: Any, message: str) -> None:
    cid = rt.new_id()
    pid, _ = rt.created(cid, rt.bundle())
    change(rt.root)
    try:
        for verb in (["state", cid], ["kill", cid, "9"], ["delete", "--force", cid]):
            done = rt(*verb)
            assert done.returncode == 1, verb
            assert message in last_error(rt), verb
        assert proc_start_time(pid) is not None  # untouched
    finally:
        os.chown(rt.root, 0, 0)
        os.chmod(rt.root, 0o700)
    assert rt("delete", "--force", cid).returncode == 0
    assert_gone(rt, cid, pid)


def test_symlinked_container_dir_is_refused(rt: Runtime, tmp_path: Path) -> None:
    victim_dir = tmp_path / "victim"
    victim_dir.mkdir()
    for name in ("lock", "state.json", "precious"):
        (victim_dir / name).write_text("keep me")
    rt.root.mkdir(mode=0o700)
    cid = rt.new_id()
    (rt.root / cid).symlink_to(victim_dir)
    done = rt("delete", "--force", cid)
    assert done.returncode == 1
    assert "is a symlink" in last_error(rt)
    assert sorted(p.name for p in victim_dir.iterdir()) == ["lock", "precious", "state.json"]


@pytest.mark.parametrize("pid_start", [None, 1, "x"])
def test_state_naming_a_foreign_pid_never_signals_it(
    rt: Runtime, victim: subprocess.Popen[bytes], pid_start: Any
) -> None:
    cid = rt.new_id()
    pid = sleeping_guest(rt, cid)
    tamper(rt, cid, pid=victim.pid, pidStart=pid_start)
    rt("kill", cid, "9")
    rt("kill", "--all", cid, "9")
    assert rt("delete", "--force", cid).returncode == 0
    assert alive(victim)
    # The real guest was in the container's cgroup: the fallback found and killed it.
    assert wait_exit(pid) == 137
    assert_gone(rt, cid, pid)


def test_kill_all_ignores_recorded_cgroup_mounts(
    rt: Runtime, victim: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    fake = tmp_path / "fake-cgroup"
    (fake / "runnc-py" / "x").mkdir(parents=True)
    cid = rt.new_id()
    (fake / "runnc-py" / cid).mkdir()
    (fake / "runnc-py" / cid / "cgroup.procs").write_text(f"{victim.pid}\n")
    pid = sleeping_guest(rt, cid)
    state = json.loads((rt.root / cid / "state.json").read_text())
    cgroup = state["cgroup"]
    cgroup["mounts"] = {controller: str(fake) for controller in cgroup["mounts"]}
    tamper(rt, cid, cgroup=cgroup)
    assert rt("kill", "--all", cid, "9").returncode == 0
    assert wait_exit(pid) == 137  # the real guest, found in the real cgroup
    assert alive(victim)
    assert rt("delete", cid).returncode == 0
    assert_gone(rt, cid, pid)


def test_cgroup_path_that_climbs_out_is_refused(rt: Runtime) -> None:
    cid = rt.new_id()
    pid, _ = rt.created(cid, rt.bundle())
    state = json.loads((rt.root / cid / "state.json").read_text())
    tamper(rt, cid, cgroup=state["cgroup"] | {"path": f"/runnc-py/{cid}/../.."})
    assert rt("kill", "--all", cid, "9").returncode == 1
    assert "not plain" in last_error(rt)
    tamper(rt, cid, cgroup=state["cgroup"])
    assert rt("delete", "--force", cid).returncode == 0
    assert_gone(rt, cid, pid)


@pytest.mark.parametrize("damage", [b"", b'{"runncPy": 1, "id"', b"\x00" * 64])
def test_delete_force_of_corrupt_state_still_removes_the_guest(
    rt: Runtime, damage: bytes
) -> None:
    cid = rt.new_id()
    pid = sleeping_guest(rt, cid)
    (rt.root / cid / "state.json").write_bytes(damage)
    assert rt("delete", "--force", cid).returncode == 0
    assert wait_exit(pid) == 137
    assert_gone(rt, cid, pid)
    warning = [e["msg"] for e in rt.log_entries() if e["level"] == "warning"][-1]
    assert "state unusable" in warning and f"/runnc-py/{cid}" in warning


# ---------------------------------------------------------------------------- property

_json_scalar = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
_json_value = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def foreign() -> Iterator[tuple[int, int]]:
    proc = subprocess.Popen(["sleep", "600"])
    start = proc_start_time(proc.pid)
    assert start is not None
    yield proc.pid, start
    assert proc.poll() is None, "a tampered state.json got a foreign process signalled"
    proc.kill()
    proc.wait()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_state_json_gives_an_answer_and_spares_foreign_pids(
    tmp_path_factory: pytest.TempPathFactory, foreign: tuple[int, int], data: st.DataObject
) -> None:
    pid, start = foreign
    wrong_start = st.none() | st.integers().filter(lambda v: v != start) | _json_value
    state = data.draw(
        st.fixed_dictionaries(
            {"runncPy": st.just(1) | _json_value, "id": st.just("c") | _json_value},
            optional={
                "bundle": st.text(max_size=5) | _json_value,
                "rootfs": st.text(max_size=5) | _json_value,
                "created": st.text(max_size=5) | _json_value,
                "pid": st.just(pid) | _json_value,
                "pidStart": wrong_start,
                "creator": st.just(pid) | _json_value,
                "creatorStart": wrong_start,
                "phase": st.sampled_from(["creating", "created", "running"]) | _json_value,
                "paused": _json_value,
                "annotations": _json_value,
                "hooks": st.just({}) | _json_value,
                "cgroup": _json_value,
                "rootfsImage": _json_value,
            },
        )
    )
    root = tmp_path_factory.mktemp("root")
    cid = f"c{uuid.uuid4().hex[:8]}"
    state["id"] = cid if state["id"] == "c" else state["id"]
    (root / cid).mkdir()
    (root / cid / "lock").touch()
    (root / cid / "state.json").write_text(json.dumps(state))
    g = lifecycle_globals(root)
    for verb in (
        lambda: lifecycle.state_json(g, cid),
        lambda: lifecycle.kill(g, cid, "SIGKILL", all_=True),
        lambda: lifecycle.delete(g, cid),
        lambda: lifecycle.delete(g, cid, force=True),
    ):
        with contextlib.suppress(RunncError):
            verb()
    assert os.path.exists(f"/proc/{pid}")
    assert not (root / cid).exists()  # `delete --force` always removes the directory


def lifecycle_globals(root: Path) -> Any:
    from runnc_py.cli import Globals

    return Globals(root=str(root), log=RuntimeLog())
