"""The CLI's click-free fast path: which command lines it takes, and that it stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runnc_py.cli import Globals, _fast_path, globals_from, split_globals


@pytest.mark.parametrize(
    ("argv", "opts", "at"),
    [
        (["state", "x"], {}, 0),
        (["--root", "/r", "--log", "l", "--log-format", "json", "kill", "x"],
         {"--root": "/r", "--log": "l", "--log-format": "json"}, 6),
        (["--root=/r", "--debug", "--systemd-cgroup", "start", "x"],
         {"--root": "/r", "--debug": True, "--systemd-cgroup": True}, 3),
        (["--delegate", "/usr/sbin/runc", "delete", "x"], {"--delegate": "/usr/sbin/runc"}, 2),
    ],
)  # fmt: skip
def test_split_globals(argv: list[str], opts: dict[str, object], at: int) -> None:
    assert split_globals(argv) == (opts, at)


@pytest.mark.parametrize("argv", [["--root"], ["--help"], ["-v"], ["--bogus", "state", "x"], []])
def test_split_globals_gives_up(argv: list[str]) -> None:
    assert split_globals(argv) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["state", "x"],
        ["kill", "x"],
        ["kill", "x", "KILL"],
        ["kill", "--all", "x", "9"],
        ["kill", "-a", "x"],
        ["start", "x"],
        ["delete", "x"],
        ["delete", "--force", "x"],
        ["--root", "/r", "delete", "-f", "x"],
        ["create", "x"],
        ["create", "--bundle", "b", "--pid-file", "p", "--console-socket", "s", "x"],
        ["create", "-b", "b", "--no-pivot", "--no-new-keyring", "--preserve-fds", "0", "x"],
        ["create", "--bundle=b", "--pid-file=p", "x"],
    ],
)
def test_fast_path_taken(argv: list[str]) -> None:
    assert _fast_path(argv) is not None


@pytest.mark.parametrize(
    "argv",
    [
        ["state"],
        ["state", "x", "y"],
        ["state", "--help"],
        ["kill", "x", "9", "extra"],
        ["delete", "--bogus", "x"],
        ["create", "--bundle", "b"],
        ["create", "--bundle"],
        ["create", "--detach", "x"],
        ["create", "x", "y"],
        ["list"],
        ["--log-format", "xml", "state", "x"],
    ],
)
def test_fast_path_declined(argv: list[str]) -> None:
    assert _fast_path(argv) is None


def test_fast_create_options() -> None:
    from runnc_py.cli import FAST

    parsed = FAST["create"].parse(
        ["-b", "/b", "--pid-file=/p", "--no-pivot", "--console-socket", "/s", "id"]
    )
    assert parsed == (
        {"bundle": "/b", "pid_file": "/p", "no_pivot": True, "console_socket": "/s"},
        ["id"],
    )
    assert FAST["kill"].parse(["-a", "id", "9"]) == ({"all": True}, ["id", "9"])


def test_globals_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNC_PY_DELEGATE", "/usr/bin/crun")
    g = globals_from(
        {"--root": "/r", "--log": "l", "--debug": True}, ["--root", "/r", "state", "x"]
    )
    assert isinstance(g, Globals)
    assert (g.root, g.log.path, g.log.fmt, g.log.debug) == ("/r", "l", "text", True)
    assert g.delegate == "/usr/bin/crun" and g.argv == ["--root", "/r", "state", "x"]
    assert globals_from({"--delegate": "/x"}, []).delegate == "/x"


def test_hot_verbs_import_no_heavy_modules() -> None:
    """state/kill/start/delete must not pay for click, json/re, dataclasses, pyelftools...

    Checked under `python -S -I` as the engine entry point runs: nothing else imported them."""
    repo = str(Path(__file__).resolve().parents[2])
    code = (
        f"import sys; sys.path.insert(0, {repo!r})\n"
        "from runnc_py.cli import _fast_path\n"
        "from runnc_py.oci import lifecycle, signals\n"
        "heavy = ['click', 'dataclasses', 'elftools', 'seccomp', 'pyroute2', 'prctl', 'subprocess',"
        " 'json', 're', 'enum', 'contextlib', 'typing', 'runnc_py.oci.cgroups',"
        " 'runnc_py.monitor.launch', 'runnc_py.oci.spec']\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_update_ignores_unset_fields() -> None:
    from runnc_py.oci.lifecycle import changed_resources

    docker = {
        "memory": {"limit": 314572800, "reservation": 0, "swap": 314572800, "kernel": 0},
        "cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": "", "mems": ""},
        "pids": {"limit": 0},
        "blockIO": {},
    }
    assert changed_resources(docker) == {"memory": {"limit": 314572800, "swap": 314572800}}
    assert changed_resources({"pids": {"limit": -1}}) == {"pids": {"limit": -1}}
