"""oci/migration.py: which cgroup.procs files a process's own cgroups are, from its
/proc/PID/cgroup text (pure)."""

from __future__ import annotations

from runnc_py.oci.migration import procs_files

HYBRID = """12:pids:/user.slice/user-0.slice
11:cpu,cpuacct:/
1:name=systemd:/user.slice
0::/user.slice/user-0.slice/
"""


def test_v1_controllers_and_the_v2_tree_in_order() -> None:
    assert procs_files(HYBRID) == [
        "/sys/fs/cgroup/pids/user.slice/user-0.slice/cgroup.procs",
        "/sys/fs/cgroup/cpu,cpuacct/cgroup.procs",
        "/sys/fs/cgroup/user.slice/user-0.slice/cgroup.procs",
        "/sys/fs/cgroup/unified/user.slice/user-0.slice/cgroup.procs",
    ]


def test_pure_v2_root_cgroup() -> None:
    assert procs_files("0::/\n") == [
        "/sys/fs/cgroup/cgroup.procs",
        "/sys/fs/cgroup/unified/cgroup.procs",
    ]


def test_odd_lines_are_skipped() -> None:
    odd = "garbage\n3:memory:relative\n4:memory:/a/../b\n5::/x\n6:a/b:/x\n"
    assert procs_files(odd) == []
