"""Making a daemon re-read its configuration after install/uninstall, or saying how to.

* dockerd re-reads `runtimes` on SIGHUP (`systemctl reload docker` does exactly that);
* containerd reads config.toml only at start: it must be restarted;
* podman has no daemon: every podman command reads containers.conf afresh.

Without systemd, a containerd we did not start is not restarted by us (we cannot restart it with
its original command line and environment): the hint says so instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass

from runnc_py.errors import RunncError

SYSTEMD_RUN_DIR = "/run/systemd/system"  # exists only when systemd is PID 1
DOCKER_PIDFILE = "/var/run/docker.pid"
UNITS = {"dockerd": "docker", "containerd": "containerd"}


@dataclass(frozen=True)
class Reload:
    """How DAEMON gets the new configuration: `command` to run, `pid` to SIGHUP, or only
    `hint` for the user."""

    daemon: str
    hint: str
    command: tuple[str, ...] = ()
    pid: int | None = None


def find_pid(daemon: str) -> int | None:
    """The oldest process named DAEMON (by /proc/PID/comm), or None."""
    if daemon == "dockerd":
        try:
            with open(DOCKER_PIDFILE) as f:
                pid = int(f.read().strip())
            if _comm(pid) == daemon:
                return pid
        except (OSError, ValueError):
            pass
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and _comm(int(p)) == daemon)
    return pids[0] if pids else None


def _comm(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def plan_reload(daemon: str | None, *, systemd: bool, pid: int | None) -> Reload | None:
    """Pure: what to do for DAEMON given whether systemd runs and the daemon's pid."""
    if daemon is None:
        return None
    unit = UNITS[daemon]
    if daemon == "dockerd":
        if systemd:
            return Reload(daemon, f"systemctl reload {unit}", command=("systemctl", "reload", unit))
        if pid is None:
            return Reload(daemon, "dockerd is not running: it reads the file when it starts")
        return Reload(daemon, f"kill -HUP {pid}  # dockerd re-reads its runtimes", pid=pid)
    if systemd:
        return Reload(daemon, f"systemctl restart {unit}", command=("systemctl", "restart", unit))
    if pid is None:
        return Reload(daemon, f"{daemon} is not running: it reads the file when it starts")
    return Reload(
        daemon, f"restart {daemon} (pid {pid}, not under systemd): it reads the file only at start"
    )


def reload_for(daemon: str | None) -> Reload | None:
    if daemon is None:
        return None
    return plan_reload(daemon, systemd=os.path.isdir(SYSTEMD_RUN_DIR), pid=find_pid(daemon))


def carry_out(action: Reload) -> bool:
    """Do ACTION; False when there is nothing we can do (the hint stays the user's job)."""
    if action.command:
        done = subprocess.run(action.command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RunncError(done.stderr.strip() or "failed", where=" ".join(action.command))
        return True
    if action.pid is not None:
        try:
            os.kill(action.pid, signal.SIGHUP)
        except OSError as exc:
            raise RunncError(f"cannot signal: {exc.strerror}", where=action.daemon) from None
        return True
    return False
