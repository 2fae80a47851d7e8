"""Which config.json mounts reach a unikernel (runnc_py.oci.mounts): pure rules, no root."""

from __future__ import annotations

from pathlib import Path

import pytest

from runnc_py.errors import RunncError
from runnc_py.oci.mounts import EngineFile, debugfs_commands, plan_mounts

DOCKER_MOUNTS = [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"},
    {"destination": "/dev/shm", "type": "bind", "source": "/var/lib/x/shm", "options": ["rbind"]},
    {"destination": "/etc/resolv.conf", "type": "bind", "source": "/var/lib/d/resolv.conf"},
    {"destination": "/etc/hostname", "type": "bind", "source": "/var/lib/d/hostname"},
    {"destination": "/etc/hosts", "type": "bind", "source": "/var/lib/d/hosts"},
]


def test_engine_files_are_picked_and_plumbing_and_kernel_filesystems_pass() -> None:
    files = plan_mounts(DOCKER_MOUNTS, {})
    assert files == (
        EngineFile("/var/lib/d/resolv.conf", "/etc/resolv.conf"),
        EngineFile("/var/lib/d/hostname", "/etc/hostname"),
        EngineFile("/var/lib/d/hosts", "/etc/hosts"),
    )


def test_a_user_bind_mount_is_refused_with_one_line_naming_it() -> None:
    mounts = [*DOCKER_MOUNTS, {"destination": "/data", "source": "/srv/d", "options": ["rbind"]}]
    with pytest.raises(RunncError) as err:
        plan_mounts(mounts, {})
    line = err.value.line()
    assert line.startswith("config.json: mounts[7]: bind mount /srv/d -> /data cannot reach")
    assert "org.runnc-py.mounts=ignore" in line and "\n" not in line


def test_ignore_annotation_drops_user_mounts_but_keeps_engine_files() -> None:
    mounts = [{"destination": "/data", "type": "bind", "source": "/srv/d"}, *DOCKER_MOUNTS]
    files = plan_mounts(mounts, {"org.runnc-py.mounts": "ignore"})
    assert [f.destination for f in files] == ["/etc/resolv.conf", "/etc/hostname", "/etc/hosts"]


def test_unknown_mounts_mode_is_refused() -> None:
    with pytest.raises(RunncError, match=r"annotation org.runnc-py.mounts: unknown mode 'skip'"):
        plan_mounts([], {"org.runnc-py.mounts": "skip"})


def test_last_mount_of_a_destination_wins() -> None:
    mounts = [
        {"destination": "/etc/hosts", "type": "bind", "source": "/a"},
        {"destination": "/etc//hosts", "type": "bind", "source": "/b"},
    ]
    assert plan_mounts(mounts, {}) == (EngineFile("/b", "/etc/hosts"),)


def test_debugfs_commands_make_etc_only_when_missing_and_replace_existing(tmp_path: Path) -> None:
    files = [EngineFile("/s/resolv", "/etc/resolv.conf"), EngineFile("/s/hosts", "/etc/hosts")]
    assert debugfs_commands(files, str(tmp_path)).splitlines() == [
        'mkdir "/etc"',
        'cd "/etc"',
        'write "/s/resolv" "resolv.conf"',
        'cd "/etc"',
        'write "/s/hosts" "hosts"',
    ]
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hosts").write_text("old")
    assert debugfs_commands(files, str(tmp_path)).splitlines()[-3:] == [
        'cd "/etc"',
        'rm "hosts"',
        'write "/s/hosts" "hosts"',
    ]


def test_etc_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "etc").symlink_to("/etc")
    with pytest.raises(RunncError, match="/etc in the rootfs is not a directory"):
        debugfs_commands([EngineFile("/s/hosts", "/etc/hosts")], str(tmp_path))
