"""Pure parts of the cgroup shell: finding v1 mounts, and the handle's JSON for the state dir."""

from __future__ import annotations

import json

import pytest

from runnc_py.errors import RunncError
from runnc_py.oci.cgroup_plan import parse_v1_mounts
from runnc_py.oci.cgroups import Cgroup, CgroupLayout

# A hybrid host like our CI: split v1 hierarchies, systemd's named one, an empty v2 tree.
HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

# A Debian 10 / Ubuntu 18.04 style host: co-mounted controllers, optional fields, escapes.
COMOUNTED = """\
25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
26 24 0:23 / /sys/fs/cgroup/net_cls,net_prio rw shared:10 - cgroup cgroup rw,net_cls,net_prio
27 24 0:24 / /mnt/my\\040cgroups rw master:3 - cgroup cgroup rw,memory,cpuset
28 24 0:25 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
"""


def test_parse_v1_mounts_hybrid() -> None:
    assert parse_v1_mounts(HYBRID) == {
        "cpu": "/sys/fs/cgroup/cpu",
        "cpuacct": "/sys/fs/cgroup/cpuacct",
        "memory": "/sys/fs/cgroup/memory",
        "freezer": "/sys/fs/cgroup/freezer",
        "pids": "/sys/fs/cgroup/pids",
    }


def test_parse_v1_mounts_comounted_escaped_first_wins() -> None:
    assert parse_v1_mounts(COMOUNTED) == {
        "cpu": "/sys/fs/cgroup/cpu,cpuacct",
        "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
        "memory": "/mnt/my cgroups",
        "cpuset": "/mnt/my cgroups",
    }


def test_parse_v1_mounts_pure_v2_host_has_none() -> None:
    text = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"
    assert parse_v1_mounts(text) == {}


def test_dirs_dedupe_comounted_hierarchies() -> None:
    cg = Cgroup(1, "/runnc-py/c1", parse_v1_mounts(COMOUNTED))
    assert cg.dirs() == ["/mnt/my cgroups/runnc-py/c1", "/sys/fs/cgroup/cpu,cpuacct/runnc-py/c1"]
    assert cg.dir("cpuacct") == "/sys/fs/cgroup/cpu,cpuacct/runnc-py/c1"
    assert cg.dir("freezer") is None


def test_v2_handle_has_one_dir() -> None:
    cg = Cgroup(2, "/a/b", CgroupLayout.unified("/sys/fs/cgroup").mounts)
    assert cg.dirs() == ["/sys/fs/cgroup/a/b"]
    assert cg.dir() == cg.dir("memory") == "/sys/fs/cgroup/a/b"


def test_json_round_trip_through_text() -> None:
    cg = Cgroup(1, "/runnc-py/c1", parse_v1_mounts(HYBRID), ["/sys/fs/cgroup/pids/runnc-py"])
    back = Cgroup.from_json(json.loads(json.dumps(cg.to_json())))
    assert back.to_json() == cg.to_json()
    assert (back.version, back.path, back.created) == (1, "/runnc-py/c1", cg.created)


@pytest.mark.parametrize(
    ("entry", "detail"),
    [
        ([], "not an object"),
        ({"version": 3, "path": "/a", "mounts": {"": "/x"}}, "version 3"),
        ({"version": True, "path": "/a", "mounts": {"": "/x"}}, "version True"),
        ({"version": 2, "path": "/", "mounts": {"": "/x"}}, "path '/'"),
        ({"version": 2, "path": "a", "mounts": {"": "/x"}}, "path 'a'"),
        ({"version": 2, "path": "/a", "mounts": {}}, "mounts"),
        ({"version": 2, "path": "/a", "mounts": {"": "rel"}}, "mounts"),
        ({"version": 2, "path": "/a", "mounts": {"": "/x"}, "created": "/x/a"}, "created"),
    ],
)
def test_from_json_reports_corrupt_entries(entry: object, detail: str) -> None:
    with pytest.raises(RunncError) as info:
        Cgroup.from_json(entry)  # type: ignore[arg-type]
    assert info.value.line().startswith("state: cgroup: corrupt cgroup entry")
    assert detail in info.value.line()


@pytest.mark.parametrize(
    ("field", "path"),
    [
        (r"/sys/fs/cgroup/a\040b", "/sys/fs/cgroup/a b"),
        (r"/c\011d\012e\134f", "/c\td\ne\\f"),
        (r"/x\04", r"/x\04"),  # a cut-off escape stays as it is
        (r"/x\089", r"/x\089"),  # not octal
        ("/plain", "/plain"),
    ],
)
def test_parse_v1_mounts_unescapes_octal_mount_points(field: str, path: str) -> None:
    line = f"30 25 0:27 / {field} rw,nosuid - cgroup cgroup rw,memory\n"
    assert parse_v1_mounts(line) == {"memory": path}
