"""Pure cgroup planning: paths, validation with JSON paths, and the v1/v2 writes."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runnc_py.errors import RunncError
from runnc_py.oci.cgroup_plan import (
    CgroupWrite,
    Limits,
    cgroup_path,
    cpu_weight,
    expand_slice,
    levels,
    parse_resources,
    plan_cgroup,
    required_controllers,
    v1_writes,
    v2_swap_max,
    v2_writes,
)

MiB = 1 << 20


@pytest.mark.parametrize(
    ("cid", "path", "systemd", "expected"),
    [
        ("c1", None, False, "/runnc-py/c1"),
        ("c1", "", False, "/runnc-py/c1"),
        ("c1", "/docker/c1", False, "/docker/c1"),
        ("c1", "/a//b/./c/", False, "/a/b/c"),
        ("c1", "//a", False, "/a"),
        ("c1", "pods/p1", False, "/runnc-py/pods/p1"),
        ("c1", "system.slice:docker:abc", False, "/system.slice/docker-abc.scope"),
        ("c1", "system.slice:docker:abc", True, "/system.slice/docker-abc.scope"),
        ("c1", "machine-pod1.slice:crio:x", True, "/machine.slice/machine-pod1.slice/crio-x.scope"),
        ("c1", ":libpod:x", True, "/system.slice/libpod-x.scope"),
        ("c1", "user.slice::x", True, "/user.slice/x.scope"),
        ("c1", "-.slice:p:x", True, "/p-x.scope"),
        ("c1", "system.slice:p:sub.slice", True, "/system.slice/sub.slice"),
        ("c1", None, True, "/system.slice/runnc-py-c1.scope"),
    ],
)
def test_cgroup_path(cid: str, path: str | None, systemd: bool, expected: str) -> None:
    assert cgroup_path(cid, path, systemd) == expected


@pytest.mark.parametrize(
    ("cid", "path", "systemd", "message"),
    [
        ("c1", "/", False, "linux.cgroupsPath: must not be the root cgroup"),
        ("c1", "/a/../..", False, "linux.cgroupsPath: must not contain '..': '/a/../..'"),
        ("c1", "../x", False, "linux.cgroupsPath: must not contain '..': '../x'"),
        ("c1", "/docker/c1", True, 'expected "slice:prefix:name" with --systemd-cgroup'),
        ("c1", "system:docker:abc", False, "invalid systemd slice 'system'"),
        ("c1", "a--b.slice:p:x", False, "empty '-' component"),
        ("c1", "system.slice:p:", False, "has an empty name"),
        ("", None, False, "cgroup: invalid container id ''"),
        ("a/b", None, False, "cgroup: invalid container id 'a/b'"),
        ("..", None, False, "cgroup: invalid container id '..'"),
    ],
)
def test_cgroup_path_errors(cid: str, path: str | None, systemd: bool, message: str) -> None:
    with pytest.raises(RunncError) as info:
        cgroup_path(cid, path, systemd)
    assert message in info.value.line()
    assert "\n" not in info.value.line()


def test_cgroup_path_must_be_a_string() -> None:
    with pytest.raises(RunncError, match=r"linux.cgroupsPath: must be a string"):
        cgroup_path("c1", 42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("slice_", "expected"),
    [
        ("-.slice", "/"),
        ("system.slice", "/system.slice"),
        ("a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"),
    ],
)
def test_expand_slice(slice_: str, expected: str) -> None:
    assert expand_slice(slice_) == expected


_component = st.text(alphabet="abcxyz09._-:", min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..")
)


@given(st.lists(_component, min_size=1, max_size=5), st.booleans())
def test_plain_paths_stay_normalised_and_below_root(parts: list[str], absolute: bool) -> None:
    raw = ("/" if absolute else "") + "/".join(parts)
    try:
        path = cgroup_path("c1", raw)
    except RunncError:
        return  # e.g. a systemd form with a bad slice: refused, fine
    assert path.startswith("/") and path != "/"
    assert ".." not in path.split("/")
    assert posixpath.normpath(path) == path
    if not absolute and raw.count(":") != 2:
        assert path.startswith("/runnc-py/")


def test_levels() -> None:
    assert levels("/a/b/c") == ["/a", "/a/b", "/a/b/c"]
    assert levels("/x") == ["/x"]


FULL = {
    "memory": {"limit": 64 * MiB, "swap": 96 * MiB, "reservation": 32 * MiB},
    "pids": {"limit": 16},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
    "hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}],
    "devices": [{"allow": False, "access": "rwm"}],  # not applied: see the module docstring
}


def test_parse_resources_full() -> None:
    assert parse_resources(FULL) == Limits(
        memory_limit=64 * MiB,
        memory_swap=96 * MiB,
        memory_reservation=32 * MiB,
        pids_limit=16,
        cpu_shares=512,
        cpu_quota=50000,
        cpu_period=100000,
        cpus="0-1",
        mems="0",
        hugepages=(("2MB", 4 * MiB),),
    )


def test_parse_resources_empty_and_zero_cpu_fields_are_unset() -> None:
    assert parse_resources(None) == Limits()
    assert parse_resources({}) == Limits()
    assert parse_resources({"cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": ""}}) == Limits()


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ([], "linux.resources: must be an object"),
        ({"memory": 5}, "linux.resources.memory: must be an object"),
        ({"memory": {"limit": 0}}, "linux.resources.memory.limit: must be > 0 or -1 (unlimited)"),
        ({"memory": {"limit": -2}}, "linux.resources.memory.limit: must be > 0 or -1"),
        ({"memory": {"limit": "1G"}}, "linux.resources.memory.limit: must be an integer, got '1G'"),
        ({"memory": {"limit": True}}, "linux.resources.memory.limit: must be an integer, got True"),
        ({"memory": {"limit": 1.5}}, "linux.resources.memory.limit: must be an integer"),
        ({"memory": {"swap": MiB}}, "linux.resources.memory.swap: needs linux.resources.memory"),
        (
            {"memory": {"limit": 2 * MiB, "swap": MiB}},
            "linux.resources.memory.swap: must be >= memory.limit (2097152)",
        ),
        ({"memory": {"reservation": 0}}, "linux.resources.memory.reservation: must be > 0"),
        ({"pids": {"limit": "10"}}, "linux.resources.pids.limit: must be an integer"),
        ({"cpu": {"shares": 1}}, "linux.resources.cpu.shares: must be between 2 and 262144"),
        ({"cpu": {"shares": 262145}}, "linux.resources.cpu.shares: must be between 2 and"),
        ({"cpu": {"quota": 999}}, "linux.resources.cpu.quota: must be >= 1000 (µs) or -1"),
        ({"cpu": {"quota": -5}}, "linux.resources.cpu.quota: must be >= 1000"),
        ({"cpu": {"period": 999}}, "linux.resources.cpu.period: must be between 1000 and"),
        ({"cpu": {"period": 1_000_001}}, "linux.resources.cpu.period: must be between"),
        ({"cpu": {"cpus": "0-"}}, "linux.resources.cpu.cpus: must be a list like '0-3,5'"),
        ({"cpu": {"cpus": "a"}}, "linux.resources.cpu.cpus: must be a list like"),
        ({"cpu": {"cpus": "3-1"}}, "linux.resources.cpu.cpus: range '3-1' is reversed"),
        ({"cpu": {"mems": 0}}, "linux.resources.cpu.mems: must be a list like"),
        ({"hugepageLimits": {}}, "linux.resources.hugepageLimits: must be an array"),
        (
            {"hugepageLimits": [{"pageSize": "2M", "limit": 1}]},
            "linux.resources.hugepageLimits[0].pageSize: must be like '2MB'",
        ),
        (
            {"hugepageLimits": [{"pageSize": "2MB", "limit": 1}, {"pageSize": "1GB"}]},
            "linux.resources.hugepageLimits[1].limit: must be an integer >= 0",
        ),
    ],
)
def test_parse_resources_errors(resources: object, message: str) -> None:
    with pytest.raises(RunncError) as info:
        parse_resources(resources)  # type: ignore[arg-type]
    assert message in info.value.line()


def test_update_errors_can_name_another_root() -> None:
    with pytest.raises(RunncError, match=r"^resources.pids.limit: must be an integer"):
        parse_resources({"pids": {"limit": "x"}}, where="resources")


def _rows(writes: tuple[CgroupWrite, ...]) -> list[tuple[str, str, str, str | None]]:
    return [(w.controller, w.dir, w.file, w.value) for w in writes]


def test_v1_writes_full() -> None:
    plan = plan_cgroup("c1", "/t/c1", FULL)
    assert plan.path == "/t/c1"
    assert _rows(plan.v1) == [
        ("cpuset", "/t", "cpuset.cpus", None),
        ("cpuset", "/t", "cpuset.mems", None),
        ("cpuset", "/t/c1", "cpuset.cpus", None),
        ("cpuset", "/t/c1", "cpuset.mems", None),
        ("memory", "/t/c1", "memory.soft_limit_in_bytes", str(32 * MiB)),
        ("memory", "/t/c1", "memory.limit_in_bytes", str(64 * MiB)),
        ("memory", "/t/c1", "memory.memsw.limit_in_bytes", str(96 * MiB)),
        ("pids", "/t/c1", "pids.max", "16"),
        ("cpu", "/t/c1", "cpu.shares", "512"),
        ("cpu", "/t/c1", "cpu.cfs_period_us", "100000"),
        ("cpu", "/t/c1", "cpu.cfs_quota_us", "50000"),
        ("cpuset", "/t/c1", "cpuset.cpus", "0-1"),
        ("cpuset", "/t/c1", "cpuset.mems", "0"),
        ("hugetlb", "/t/c1", "hugetlb.2MB.limit_in_bytes", str(4 * MiB)),
    ]
    # The inherit writes are housekeeping: a host without a cpuset hierarchy skips them.
    assert all(w.optional for w in plan.v1[:4])
    assert not any(w.optional for w in plan.v1[4:])
    assert plan.v1[6].source == "linux.resources.memory.swap"


def test_v2_writes_full() -> None:
    plan = plan_cgroup("c1", "/t/c1", FULL)
    enable = [
        (c, parent, "cgroup.subtree_control", f"+{c}")
        for parent in ("/", "/t")
        for c in ("cpu", "cpuset", "hugetlb", "memory", "pids")
    ]
    assert _rows(plan.v2) == [
        *enable,
        ("memory", "/t/c1", "memory.low", str(32 * MiB)),
        ("memory", "/t/c1", "memory.max", str(64 * MiB)),
        ("memory", "/t/c1", "memory.swap.max", str(32 * MiB)),  # swap alone: 96 - 64
        ("pids", "/t/c1", "pids.max", "16"),
        ("cpu", "/t/c1", "cpu.weight", str(cpu_weight(512))),
        ("cpu", "/t/c1", "cpu.max", "50000 100000"),
        ("cpuset", "/t/c1", "cpuset.cpus", "0-1"),
        ("cpuset", "/t/c1", "cpuset.mems", "0"),
        ("hugetlb", "/t/c1", "hugetlb.2MB.max", str(4 * MiB)),
    ]
    assert required_controllers(plan.v2) == {
        "cpu": "linux.resources.cpu.shares",
        "cpuset": "linux.resources.cpu.cpus",
        "hugetlb": "linux.resources.hugepageLimits[0]",
        "memory": "linux.resources.memory.reservation",
        "pids": "linux.resources.pids.limit",
    }


def test_no_resources_writes_only_structure() -> None:
    plan = plan_cgroup("c1", None, None)
    assert plan.v2 == ()
    assert required_controllers(plan.v1) == {}  # all optional cpuset inheritance
    assert {w.dir for w in plan.v1} == {"/runnc-py", "/runnc-py/c1"}


@pytest.mark.parametrize(
    ("resources", "v1", "v2"),
    [
        ({"memory": {"limit": -1, "swap": -1}}, ["-1", "-1"], ["max", "max"]),
        ({"pids": {"limit": -1}}, ["max"], ["max"]),
        ({"pids": {"limit": 0}}, ["max"], ["max"]),
        ({"cpu": {"quota": -1}}, ["-1"], ["max"]),
        ({"cpu": {"period": 50000}}, ["50000"], ["max 50000"]),
        ({"cpu": {"quota": -1, "period": 50000}}, ["50000", "-1"], ["max 50000"]),
        ({"cpu": {"quota": 20000}}, ["20000"], ["20000"]),
        ({"memory": {"limit": MiB, "swap": MiB}}, [str(MiB), str(MiB)], [str(MiB), "0"]),
    ],
)
def test_value_conversions(resources: dict, v1: list[str], v2: list[str]) -> None:
    limits = parse_resources(resources)
    assert [w.value for w in v1_writes("/x", limits, structure=False)] == v1
    assert [w.value for w in v2_writes("/x", limits) if w.dir == "/x"] == v2


SWAP_FILES = ("memory.memsw.limit_in_bytes", "memory.swap.max")


def test_unlimited_swap_is_optional_but_a_real_swap_limit_is_not() -> None:
    unlimited = parse_resources({"memory": {"limit": MiB, "swap": -1}})
    limited = parse_resources({"memory": {"limit": MiB, "swap": 2 * MiB}})
    for writes in (v1_writes("/x", unlimited, structure=False), v2_writes("/x", unlimited)):
        assert [w.optional for w in writes if w.file in SWAP_FILES] == [True]
    for writes in (v1_writes("/x", limited, structure=False), v2_writes("/x", limited)):
        assert [w.optional for w in writes if w.file in SWAP_FILES] == [False]


@pytest.mark.parametrize(
    ("shares", "weight"), [(2, 1), (1024, 39), (262144, 10000), (100, 4), (512, 20)]
)
def test_cpu_weight_table(shares: int, weight: int) -> None:
    assert cpu_weight(shares) == weight


@given(st.integers(2, 262143))
def test_cpu_weight_monotonic_and_in_range(shares: int) -> None:
    assert 1 <= cpu_weight(shares) <= cpu_weight(shares + 1) <= 10000


def test_v2_swap_max() -> None:
    assert v2_swap_max(64 * MiB, -1) == "max"
    assert v2_swap_max(64 * MiB, 64 * MiB) == "0"
    assert v2_swap_max(64 * MiB, 100 * MiB) == str(36 * MiB)


# The checks below replaced regular expressions (create's import budget, docs/boot-path.md);
# the expressions they replaced are the oracle.
_CPU_LIST_RE = r"[0-9]{1,6}(-[0-9]{1,6})?(,[0-9]{1,6}(-[0-9]{1,6})?)*"
_PAGE_SIZE_RE = r"[0-9]{1,6}[KMG]B"
_CPU_CHARS = st.text(alphabet="0123456789-,٣ \n", max_size=20)


@given(_CPU_CHARS)
def test_cpu_list_check_accepts_what_the_old_pattern_did(text: str) -> None:
    import re

    expected = re.fullmatch(_CPU_LIST_RE, text.strip()) is not None
    resources = {"cpu": {"cpus": text}}
    if not text:
        assert parse_resources(resources).cpus is None
    elif expected and all(
        not hi or int(hi) >= int(lo) for lo, _, hi in (p.partition("-") for p in text.split(","))
    ):
        assert parse_resources(resources).cpus == text.strip()
    else:
        with pytest.raises(RunncError, match=r"linux\.resources\.cpu\.cpus: "):
            parse_resources(resources)


@given(st.text(alphabet="0123456789KMGB٣kb \n", max_size=10))
def test_page_size_check_accepts_what_the_old_pattern_did(size: str) -> None:
    import re

    resources = {"hugepageLimits": [{"pageSize": size, "limit": 1}]}
    if re.fullmatch(_PAGE_SIZE_RE, size):
        assert parse_resources(resources).hugepages == ((size, 1),)
    else:
        with pytest.raises(RunncError, match=r"pageSize: must be like '2MB' or '1GB', got "):
            parse_resources(resources)
