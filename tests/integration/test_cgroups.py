"""Real cgroups on this host: v1 hierarchies (limits, pids, freezer, enforcement) and the
v2 unified tree where the host has one (hybrid hosts: no v1-bound controller there, so the
v2 resource limits are only unit-tested; hugetlb is used when the v2 tree offers it).

Every test works below a parent named after the test run and removes it, with any process it
started, even when the test fails.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from runnc_py.errors import RunncError
from runnc_py.oci.cgroup_plan import CGROUP_ROOT, plan_cgroup
from runnc_py.oci.cgroups import Cgroup, CgroupLayout

MiB = 1 << 20
V1 = os.path.isdir(os.path.join(CGROUP_ROOT, "memory")) and not os.path.exists(
    os.path.join(CGROUP_ROOT, "cgroup.controllers")
)
UNIFIED = os.path.join(CGROUP_ROOT, "unified")

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="cgroups need root"),
]
needs_v1 = pytest.mark.skipif(not V1, reason="no cgroup v1 hierarchies on this host")
needs_unified = pytest.mark.skipif(
    not os.path.exists(os.path.join(UNIFIED, "cgroup.controllers")),
    reason="no hybrid cgroup v2 tree at /sys/fs/cgroup/unified",
)


def _all_mounts() -> list[str]:
    mounts = list(CgroupLayout.detect().mounts.values())
    if os.path.isdir(UNIFIED):
        mounts.append(UNIFIED)
    return sorted(set(mounts))


@pytest.fixture
def parent() -> Iterator[str]:
    """A unique top-level cgroup path for this test; swept from every hierarchy afterwards."""
    name = f"/runnc-py-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield name
    for mount in _all_mounts():
        top = os.path.join(mount, name.lstrip("/"))
        if not os.path.isdir(top):
            continue
        for d, _subdirs, _files in os.walk(top, topdown=False):
            freezer = os.path.join(d, "freezer.state")
            if os.path.exists(freezer):
                _put(freezer, "THAWED")
            for pid in _read(os.path.join(d, "cgroup.procs")).split():
                os.kill(int(pid), signal.SIGKILL)
            for _ in range(100):
                try:
                    os.rmdir(d)
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        raise
                    time.sleep(0.01)
        assert not os.path.exists(top), f"could not clean {top}"


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; all killed and reaped at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _put(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _v1(controller: str, path: str, file: str) -> str:
    return _read(os.path.join(CGROUP_ROOT, controller, path.lstrip("/"), file)).strip()


def _exists_anywhere(path: str) -> list[str]:
    return [m for m in _all_mounts() if os.path.exists(os.path.join(m, path.lstrip("/")))]


# A child that says "tick" every 10 ms: frozen, it stops talking.
TICKER = "import os, time\nwhile True:\n    os.write(1, b'.')\n    time.sleep(0.01)\n"


def _drain(fd: int) -> int:
    """Bytes waiting on a non-blocking pipe."""
    total = 0
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return total
        if not chunk:
            return total
        total += len(chunk)


@needs_v1
def test_layout_on_this_host_is_v1() -> None:
    layout = CgroupLayout.detect()
    assert layout.version == 1
    for controller in ("memory", "pids", "cpu", "cpuset", "freezer"):
        assert layout.mounts[controller] == os.path.join(CGROUP_ROOT, controller)


@needs_v1
def test_create_writes_limits_and_remove_leaves_nothing(parent: str) -> None:
    resources = {
        "memory": {"limit": 64 * MiB, "swap": 96 * MiB, "reservation": 32 * MiB},
        "pids": {"limit": 16},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
    }
    plan = plan_cgroup("c1", f"{parent}/c1", resources)
    cg = Cgroup.create(plan)
    path = plan.path
    assert _v1("memory", path, "memory.limit_in_bytes") == str(64 * MiB)
    assert _v1("memory", path, "memory.soft_limit_in_bytes") == str(32 * MiB)
    if os.path.exists(os.path.join(CGROUP_ROOT, "memory", "memory.memsw.limit_in_bytes")):
        assert _v1("memory", path, "memory.memsw.limit_in_bytes") == str(96 * MiB)
    assert _v1("pids", path, "pids.max") == "16"
    assert _v1("cpu", path, "cpu.shares") == "512"
    assert _v1("cpu", path, "cpu.cfs_quota_us") == "50000"
    assert _v1("cpu", path, "cpu.cfs_period_us") == "100000"
    assert _v1("cpuset", path, "cpuset.cpus") == "0"
    assert _v1("cpuset", path, "cpuset.mems") == "0"
    # The intermediate level got the root's cpus/mems so it can hold tasks.
    assert _v1("cpuset", parent, "cpuset.cpus") == _v1("cpuset", "/", "cpuset.cpus")
    assert len(_exists_anywhere(path)) == len(cg.dirs()) >= 5

    # The state dir round trip gives a handle that can still remove it.
    again = Cgroup.from_json(cg.to_json())
    again.remove()
    assert _exists_anywhere(parent) == []
    again.remove()  # idempotent
    cg.remove()


@needs_v1
def test_add_pids_freeze_thaw(parent: str, procs: list) -> None:
    cg = Cgroup.create(plan_cgroup("c1", f"{parent}/c1", None))
    ticker = subprocess.Popen([sys.executable, "-c", TICKER], stdout=subprocess.PIPE)
    procs.append(ticker)
    assert ticker.stdout is not None
    fd = ticker.stdout.fileno()
    os.set_blocking(fd, False)
    cg.add(ticker.pid)
    assert cg.pids() == [ticker.pid]
    for d in cg.dirs():
        assert _read(os.path.join(d, "cgroup.procs")).split() == [str(ticker.pid)]

    cg.freeze()
    assert cg.is_frozen()
    assert _v1("freezer", cg.path, "freezer.state") == "FROZEN"
    _drain(fd)
    time.sleep(0.3)
    assert _drain(fd) == 0, "a frozen process kept running"
    with open(f"/proc/{ticker.pid}/stat") as f:
        assert f.read().split()[2] in ("D", "T")  # in the refrigerator

    cg.thaw()
    assert not cg.is_frozen()
    assert _v1("freezer", cg.path, "freezer.state") == "THAWED"
    time.sleep(0.2)
    assert _drain(fd) > 0, "a thawed process did not run again"

    ticker.kill()
    ticker.wait()
    assert cg.pids() == []
    cg.remove()
    assert _exists_anywhere(parent) == []


# Forks sleeping children until the kernel says EAGAIN; prints how many it got.
FORKER = """
import os, sys
sys.stdin.readline()  # wait until the test has moved us into the cgroup
r, w = os.pipe()
kids, error = [], None
for _ in range(20):
    try:
        pid = os.fork()
    except OSError as exc:
        error = exc.errno
        break
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    kids.append(pid)
os.close(w)
for pid in kids:
    os.waitpid(pid, 0)
print(len(kids), error)
"""


@needs_v1
def test_pids_limit_is_enforced(parent: str, procs: list) -> None:
    cg = Cgroup.create(plan_cgroup("c1", f"{parent}/c1", {"pids": {"limit": 5}}))
    child = subprocess.Popen(
        [sys.executable, "-c", FORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    procs.append(child)
    cg.add(child.pid)
    out, _ = child.communicate(b"go\n", timeout=30)
    forked, error = out.decode().split()
    assert (int(forked), error) == (4, str(errno.EAGAIN))  # the forker itself is the 5th
    assert int(_v1("pids", cg.path, "pids.events").split()[1]) >= 1  # "max N"
    cg.remove()


@needs_v1
def test_memory_limit_is_enforced(parent: str, procs: list) -> None:
    limit = 48 * MiB
    cg = Cgroup.create(
        plan_cgroup("c1", f"{parent}/c1", {"memory": {"limit": limit, "swap": limit}})
    )
    hog = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.readline(); b = b'x' * (256 << 20)"],
        stdin=subprocess.PIPE,
    )
    procs.append(hog)
    cg.add(hog.pid)
    hog.communicate(b"go\n", timeout=30)
    assert hog.returncode == -signal.SIGKILL  # the OOM killer, inside the cgroup
    oom = dict(line.split() for line in _v1("memory", cg.path, "memory.oom_control").splitlines())
    assert int(oom["oom_kill"]) == 1
    cg.remove()


@needs_v1
def test_update_raises_and_lowers_limits(parent: str) -> None:
    path = f"{parent}/c1"
    cg = Cgroup.create(plan_cgroup("c1", path, {"memory": {"limit": 64 * MiB, "swap": 64 * MiB}}))
    memsw = os.path.exists(os.path.join(CGROUP_ROOT, "memory", "memory.memsw.limit_in_bytes"))
    # Raising memory above the current memsw needs memsw first: the retry pass handles it.
    cg.update({"memory": {"limit": 256 * MiB, "swap": 512 * MiB}, "pids": {"limit": 7}})
    assert _v1("memory", path, "memory.limit_in_bytes") == str(256 * MiB)
    if memsw:
        assert _v1("memory", path, "memory.memsw.limit_in_bytes") == str(512 * MiB)
    assert _v1("pids", path, "pids.max") == "7"
    # ... and lowering needs memory first.
    cg.update({"memory": {"limit": 32 * MiB, "swap": 32 * MiB}, "pids": {"limit": -1}})
    assert _v1("memory", path, "memory.limit_in_bytes") == str(32 * MiB)
    if memsw:
        assert _v1("memory", path, "memory.memsw.limit_in_bytes") == str(32 * MiB)
    assert _v1("pids", path, "pids.max") == "max"

    with pytest.raises(RunncError, match=r"^linux.resources.cpu.shares: must be between"):
        cg.update({"pids": {"limit": 3}, "cpu": {"shares": 1}})
    assert _v1("pids", path, "pids.max") == "max"  # validation happens before any write
    cg.remove()


@needs_v1
def test_kernel_refusal_names_the_json_path_and_cleans_up(parent: str) -> None:
    bad_cpu = str((os.cpu_count() or 1) + 64)  # well formed, but no such CPU here
    plan = plan_cgroup("c1", f"{parent}/c1", {"cpu": {"cpus": bad_cpu}})
    with pytest.raises(RunncError) as info:
        Cgroup.create(plan)
    line = info.value.line()
    assert line.startswith("linux.resources.cpu.cpus: cannot write ")
    assert f"'{bad_cpu}' to " in line and "cpuset.cpus: " in line  # + the kernel's reason
    assert _exists_anywhere(parent) == []


@needs_v1
def test_remove_refuses_while_tasks_live(parent: str, procs: list) -> None:
    cg = Cgroup.create(plan_cgroup("c1", f"{parent}/c1", None))
    sleeper = subprocess.Popen(["sleep", "30"])
    procs.append(sleeper)
    cg.add(sleeper.pid)
    with pytest.raises(
        RunncError, match=rf"cannot remove cgroup: still holds pids \[{sleeper.pid}\]"
    ):
        cg.remove()
    sleeper.kill()
    sleeper.wait()
    cg.remove()
    assert _exists_anywhere(parent) == []


@needs_v1
def test_shared_parent_stays_while_busy(parent: str) -> None:
    a = Cgroup.create(plan_cgroup("a", f"{parent}/a", None))
    b = Cgroup.create(plan_cgroup("b", f"{parent}/b", None))
    a.remove()  # created the parent, but b still lives in it
    assert len(_exists_anywhere(f"{parent}/b")) == len(b.dirs())
    b.remove()
    assert _exists_anywhere(f"{parent}/b") == []
    # b did not create the parent and it is not /runnc-py: left, like runc leaves /docker
    # (the fixture sweeps it).


@needs_v1
def test_add_missing_pid(parent: str, procs: list) -> None:
    cg = Cgroup.create(plan_cgroup("c1", f"{parent}/c1", None))
    gone = subprocess.Popen(["true"])
    procs.append(gone)
    gone.wait()
    with pytest.raises(RunncError, match=rf"^cgroup add pid {gone.pid}: no such process$"):
        cg.add(gone.pid)
    cg.remove()


# --- the v2 unified tree (hybrid hosts mount it at /sys/fs/cgroup/unified)


@needs_unified
def test_v2_add_freeze_thaw_remove(parent: str, procs: list) -> None:
    layout = CgroupLayout.unified(UNIFIED)
    cg = Cgroup.create(plan_cgroup("c1", f"{parent}/c1", None), layout=layout)
    assert cg.version == 2 and cg.dirs() == [os.path.join(UNIFIED, parent[1:], "c1")]
    ticker = subprocess.Popen([sys.executable, "-c", TICKER], stdout=subprocess.PIPE)
    procs.append(ticker)
    assert ticker.stdout is not None
    fd = ticker.stdout.fileno()
    os.set_blocking(fd, False)
    cg.add(ticker.pid)
    assert cg.pids() == [ticker.pid]

    cg.freeze()
    assert cg.is_frozen()
    assert "frozen 1" in _read(os.path.join(cg.dirs()[0], "cgroup.events"))
    _drain(fd)
    time.sleep(0.3)
    assert _drain(fd) == 0, "a frozen process kept running"
    cg.thaw()
    assert not cg.is_frozen()
    time.sleep(0.2)
    assert _drain(fd) > 0

    ticker.kill()
    ticker.wait()
    Cgroup.from_json(cg.to_json()).remove()
    assert not os.path.exists(os.path.join(UNIFIED, parent[1:]))


@needs_unified
def test_v2_missing_controller_is_a_clear_error(parent: str) -> None:
    layout = CgroupLayout.unified(UNIFIED)
    available = _read(os.path.join(UNIFIED, "cgroup.controllers")).split()
    if "pids" in available:
        pytest.skip("pids is available in this v2 tree")
    with pytest.raises(RunncError) as info:
        Cgroup.create(plan_cgroup("c1", f"{parent}/c1", {"pids": {"limit": 3}}), layout=layout)
    assert info.value.line().startswith(
        "linux.resources.pids.limit: needs the cgroup v2 'pids' controller, not available"
    )
    assert not os.path.exists(os.path.join(UNIFIED, parent[1:]))


@pytest.fixture
def unified_subtree() -> Iterator[None]:
    """Put the v2 root's cgroup.subtree_control back as it was (the test enables hugetlb)."""
    control = os.path.join(UNIFIED, "cgroup.subtree_control")
    before = set(_read(control).split())
    yield
    for controller in set(_read(control).split()) - before:
        _put(control, f"-{controller}")


@needs_unified
def test_v2_controller_limit_for_real(parent: str, unified_subtree: None) -> None:
    if "hugetlb" not in _read(os.path.join(UNIFIED, "cgroup.controllers")).split():
        pytest.skip("no v2 controller free on this host (hugetlb is bound to v1)")
    layout = CgroupLayout.unified(UNIFIED)
    limits = {"hugepageLimits": [{"pageSize": "2MB", "limit": 8 * MiB}]}
    cg = Cgroup.create(plan_cgroup("c1", f"{parent}/c1", limits), layout=layout)
    leaf = cg.dirs()[0]
    assert "hugetlb" in _read(os.path.join(UNIFIED, parent[1:], "cgroup.subtree_control"))
    assert _read(os.path.join(leaf, "hugetlb.2MB.max")).strip() == str(8 * MiB)
    cg.update({"hugepageLimits": [{"pageSize": "2MB", "limit": 2 * MiB}]})
    assert _read(os.path.join(leaf, "hugetlb.2MB.max")).strip() == str(2 * MiB)
    cg.remove()
    assert not os.path.exists(os.path.join(UNIFIED, parent[1:]))
