"""What the init does with each linux.namespaces entry."""

from __future__ import annotations

import pytest

from runnc_py.errors import RunncError
from runnc_py.oci.namespaces import NsAction, plan_namespaces
from runnc_py.oci.spec import Namespace


def test_docker_like_set() -> None:
    given = [
        Namespace("mount"), Namespace("network"), Namespace("uts"), Namespace("pid"),
        Namespace("ipc"), Namespace("cgroup"),
    ]  # fmt: skip
    assert plan_namespaces(given) == [NsAction("network", None), NsAction("uts", None),
                                      NsAction("ipc", None)]  # fmt: skip


def test_paths_are_joined_first() -> None:
    given = [
        Namespace("uts"),
        Namespace("network", "/run/netns/n"),
        Namespace("ipc", "/proc/1/ns/ipc"),
    ]
    assert plan_namespaces(given) == [
        NsAction("network", "/run/netns/n"),
        NsAction("ipc", "/proc/1/ns/ipc"),
        NsAction("uts", None),
    ]


def test_pid_path_is_ignored_user_refused_unknown_refused() -> None:
    assert plan_namespaces([Namespace("pid", "/proc/1/ns/pid"), Namespace("time")]) == []
    with pytest.raises(RunncError, match="user namespaces"):
        plan_namespaces([Namespace("user")])
    with pytest.raises(RunncError, match=r"linux.namespaces\[1\]"):
        plan_namespaces([Namespace("uts"), Namespace("bogus")])
