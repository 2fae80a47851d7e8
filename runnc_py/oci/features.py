"""`features` (the runtime spec's features document) and `spec` (a config.json template). Pure.

The features document describes what this runtime implements, not what the host offers (as
the runtime spec asks): the hooks all run, the namespaces listed are the ones a config may name
without being refused (some are accepted and deliberately not entered, see namespaces.py), the
cgroup versions are both handled, and seccomp is our own per-monitor policy rather than the
config's `linux.seccomp` (which is not used), so it is reported as not configurable.
"""

from __future__ import annotations

from typing import Any

from runnc_py import __version__
from runnc_py.oci.spec import HOOK_KINDS
from runnc_py.oci.state import OCI_VERSION

OCI_VERSION_MIN = "1.0.0"


def features() -> dict[str, Any]:
    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_KINDS),
        # No mount is ever performed for a unikernel: none of config.json's mounts apply.
        "mountOptions": [],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "uts"],
            # Every capability is dropped before the guest runs, whatever is asked.
            "capabilities": [],
            "cgroup": {
                "v1": True,
                "v2": True,
                "systemd": False,
                "systemdUser": False,
                "rdma": False,
            },
            "seccomp": {"enabled": False},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
        },
        "annotations": {
            "org.runnc-py.version": __version__,
            "org.runnc-py.monitors": "spt",
        },
    }


def spec_template(unikernel: str = "/unikernel.spt", args: tuple[str, ...] = ()) -> dict[str, Any]:
    """A config.json for a bundle whose rootfs holds UNIKERNEL (see docs/oci.md)."""
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": [unikernel, *args],
            "env": [],
            "cwd": "/",
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runnc-py",
        "annotations": {"org.runnc-py.monitor": "auto"},
        "linux": {
            "resources": {"memory": {"limit": 64 * 1024 * 1024}},
            "namespaces": [{"type": "network"}, {"type": "ipc"}, {"type": "uts"}],
        },
    }
