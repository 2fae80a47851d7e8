"""The C front end (csrc/front) against the Python CLI, on the same real containers.

Two front ends are built for this module from the current sources: one that hands over to the
Python CLI, run with RUNNC_PY_FRONT_TRACE (every hand-over appends its reason to that file, so
a test sees which calls the C code did itself), and one whose Python entry does not exist,
which proves a call needed no interpreter at all. The Python side is runnc_py.cli.main, as the
installed Python entry runs it. Containers are made by the Python `create` (the C front end has
none) with the lifecycle tests' fixtures.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration import test_lifecycle
from tests.integration.test_lifecycle import Runtime, assert_gone, cgroup_dirs, wait_exit

pytestmark = pytest.mark.root

rt = test_lifecycle.rt
subreaper = test_lifecycle.subreaper

# What the installed Python entry runs. Not `-m runnc_py.cli`: cli.py would run as __main__,
# and the click commands would not find its Globals class in the context.
PYTHON_CLI = [sys.executable, "-c", "import sys; from runnc_py.cli import main; sys.exit(main())"]
# Annotations whose escaping differs between JSON writers: non-ASCII, control, DEL, astral.
AWKWARD = {"org.example.é": 'caf\u00e9 \u007f\t"q" \\ \x01 \U0001f600', "plain": "1"}


class Fronts:
    """The two test builds of the C front end and the hand-over trace."""

    def __init__(self, traced: Path, standalone: Path, trace: Path) -> None:
        self.traced, self.standalone, self.trace = traced, standalone, trace
        self.env = {**os.environ, "RUNNC_PY_FRONT_TRACE": str(trace)}

    def handovers(self) -> list[str]:
        """Reasons of the hand-overs since the last call (and forget them)."""
        if not self.trace.exists():
            return []
        lines = self.trace.read_text().splitlines()
        self.trace.unlink()
        return lines


@pytest.fixture(scope="module")
def fronts(build_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Fronts:
    out = tmp_path_factory.mktemp("front")
    trace = out / "handovers"
    shim = out / "python-entry"
    # The hand-over passes argv unchanged: "$@" is what the engine gave the front end.
    shim.write_text(f'#!/bin/sh\nexec {shlex.join(PYTHON_CLI)} "$@"\n')
    shim.chmod(0o755)
    traced = build_module.build_front(out / "runnc-py", shim)
    standalone = build_module.build_front(out / "runnc-py-alone", out / "no-such-entry")
    return Fronts(traced, standalone, trace)


Call = Callable[..., subprocess.CompletedProcess[str]]


def caller(rt: Runtime, program: list[str], env: dict[str, str] | None = None) -> Call:
    """PROGRAM with the runtime's --root/--log globals, as rt itself calls runnc-py."""
    globals_ = ["--root", str(rt.root), "--log", str(rt.log), "--log-format", "json"]

    def call(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*program, *globals_, *args], capture_output=True, text=True, timeout=timeout, env=env
        )

    return call


def both(rt: Runtime, fronts: Fronts) -> tuple[Call, Call]:
    return caller(rt, [str(fronts.traced)], fronts.env), caller(rt, PYTHON_CLI)


def state_text(call: Call, cid: str) -> str:
    done = call("state", cid)
    assert done.returncode == 0, done.stderr
    return done.stdout


def assert_same_state(c: Call, py: Call, cid: str, status: str) -> None:
    text = state_text(c, cid)
    assert text == state_text(py, cid)
    assert json.loads(text)["status"] == status


def assert_same_answer(c: Call, py: Call, *args: str) -> subprocess.CompletedProcess[str]:
    """The C front end and the Python CLI answer ARGS alike (status, stdout, stderr)."""
    mine, theirs = c(*args), py(*args)
    assert (mine.returncode, mine.stdout, mine.stderr) == (
        theirs.returncode,
        theirs.stdout,
        theirs.stderr,
    ), args
    return theirs


def error_entries(rt: Runtime) -> list[str]:
    """The --log error messages so far (and forget them)."""
    msgs = [e["msg"] for e in rt.log_entries() if e["level"] == "error"]
    if rt.log.exists():
        rt.log.unlink()
    return msgs


# ---------------------------------------------------------------------------- the fast path


def test_lifecycle_through_the_c_front_end(rt: Runtime, fronts: Fronts) -> None:
    """create (Python) -> state/start/state/kill/state/delete in C, each state byte-equal to
    Python's, and no call handed over."""
    c, py = both(rt, fronts)
    cid = rt.new_id("front")
    bundle = rt.bundle("time.spt", ("sleep=30",), annotations=AWKWARD)
    pid, _ = rt.created(cid, bundle)
    fronts.handovers()

    assert_same_state(c, py, cid, "created")
    assert c("start", cid).returncode == 0
    assert_same_state(c, py, cid, "running")
    saved = json.loads((rt.root / cid / "state.json").read_text())
    assert saved["phase"] == "running" and not (rt.root / cid / "exec.fifo").exists()

    assert c("kill", cid, "sigkill").returncode == 0
    assert wait_exit(pid) == 128 + signal.SIGKILL
    assert_same_state(c, py, cid, "stopped")
    done = c("delete", cid)
    assert done.returncode == 0, done.stderr
    assert_gone(rt, cid, pid)
    assert fronts.handovers() == []  # every C call above was done in C
    assert error_entries(rt) == []


def test_needs_no_interpreter(rt: Runtime, fronts: Fronts) -> None:
    """The same verbs through a front end whose Python entry does not exist."""
    alone = caller(rt, [str(fronts.standalone)])
    cid = rt.new_id("alone")
    pid, out = rt.created(cid, rt.bundle("hello.spt"))
    assert json.loads(state_text(alone, cid))["status"] == "created"
    assert alone("start", cid).returncode == 0
    assert wait_exit(pid) == 0
    assert "Hello, World" in out.read_text()
    assert alone("delete", cid).returncode == 0
    assert_gone(rt, cid, pid)
    # The shim's second delete: answered here too, as Python words it.
    done = alone("delete", cid)
    assert (done.returncode, done.stderr) == (1, f"runnc-py: {cid}: container does not exist\n")
    # ... and what it cannot do itself fails loudly instead of half-done.
    done = alone("pause", cid)
    assert done.returncode == 1 and "no-such-entry" in done.stderr


def test_python_resumes_what_c_wrote(rt: Runtime, fronts: Fronts) -> None:
    """After a C `start`, the Python verbs read the saved state (pause needs Python)."""
    c, py = both(rt, fronts)
    cid = rt.new_id("mixed")
    pid, _ = rt.created(cid, rt.bundle("time.spt", ("sleep=30",)))
    assert c("start", cid).returncode == 0
    assert py("pause", cid).returncode == 0
    assert_same_state(c, py, cid, "paused")
    fronts.handovers()
    # SIGKILL to a paused container must thaw its cgroup: that is Python's job.
    assert c("kill", cid, "KILL").returncode == 0
    assert fronts.handovers() != []
    assert wait_exit(pid) == 128 + signal.SIGKILL
    assert py("delete", cid).returncode == 0
    assert_gone(rt, cid, pid)


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("TERM", 15),
        ("sigterm", 15),
        (" 15 ", 15),
        ("usr1", 10),
        ("SIGRTMIN+0", 34),
        ("RTMAX-2", 62),
    ],
)
def test_signal_spellings(rt: Runtime, fronts: Fronts, name: str, number: int) -> None:
    c, _ = both(rt, fronts)
    cid = rt.new_id("sig")
    pid, _ = rt.created(cid, rt.bundle("time.spt", ("sleep=30",)))
    assert c("start", cid).returncode == 0
    fronts.handovers()
    assert c("kill", cid, name).returncode == 0
    assert wait_exit(pid) == 128 + number
    assert fronts.handovers() == []


def test_global_flag_spellings(rt: Runtime, fronts: Fronts) -> None:
    """runc's global flags in every form engines use are parsed in C; a bad --log-format is
    Python's to report."""
    cid = rt.new_id("flags")
    pid, _ = rt.created(cid, rt.bundle("time.spt", ("sleep=30",)))
    fronts.handovers()
    py = caller(rt, PYTHON_CLI)
    expected = state_text(py, cid)
    spellings = [
        ["--root", str(rt.root)],
        [f"--root={rt.root}", "--debug", "--systemd-cgroup"],
        ["--log", str(rt.log), "--log-format=json", "--root", str(rt.root), "--delegate", "runc"],
        ["--delegate=runc", "--log-format", "text", f"--log={rt.log}", f"--root={rt.root}"],
    ]
    for spelling in spellings:
        done = subprocess.run(
            [str(fronts.traced), *spelling, "state", cid],
            capture_output=True,
            text=True,
            env=fronts.env,
        )
        assert (done.returncode, done.stdout) == (0, expected), spelling
    assert fronts.handovers() == []
    bad = ["--root", str(rt.root), "--log-format", "xml", "state", cid]
    mine = subprocess.run(
        [str(fronts.traced), *bad], capture_output=True, text=True, env=fronts.env
    )
    theirs = subprocess.run([*PYTHON_CLI, *bad], capture_output=True, text=True)
    assert (mine.returncode, mine.stderr) == (theirs.returncode, theirs.stderr)
    assert mine.returncode != 0 and fronts.handovers() == ["not a fast-path command line"]
    os.kill(pid, signal.SIGKILL)
    wait_exit(pid)


# ---------------------------------------------------------------------------- same errors


def corrupt(path: Path) -> None:
    (path / "state.json").write_text("{not json")


def foreign(path: Path) -> None:
    (path / "state.json").write_text(json.dumps({"id": path.name, "ociVersion": "1.0.2"}))


def newer_format(path: Path) -> None:
    state = json.loads((path / "state.json").read_text())
    (path / "state.json").write_text(json.dumps(state | {"runncPy": 2}))


def bad_pid(path: Path) -> None:
    state = json.loads((path / "state.json").read_text())
    (path / "state.json").write_text(json.dumps(state | {"pid": -3}))


def open_to_others(path: Path) -> None:
    path.chmod(0o777)


def state_writable_by_group(path: Path) -> None:
    (path / "state.json").chmod(0o660)


def state_symlinked(path: Path) -> None:
    (path / "state.json").rename(path / "real.json")
    (path / "state.json").symlink_to(path / "real.json")


def symlinked(path: Path) -> None:
    real = path.with_name(path.name + ".real")
    path.rename(real)
    path.symlink_to(real)


SPOILERS = [
    corrupt,
    foreign,
    newer_format,
    bad_pid,
    open_to_others,
    symlinked,
    state_writable_by_group,
    state_symlinked,
]


@pytest.mark.parametrize("spoil", SPOILERS, ids=lambda f: f.__name__)
def test_same_errors_for_spoiled_containers(
    rt: Runtime, fronts: Fronts, spoil: Callable[[Path], None]
) -> None:
    c, py = both(rt, fronts)
    cid = rt.new_id("spoiled")
    pid, _ = rt.created(cid, rt.bundle("time.spt", ("sleep=30",)))
    spoil(rt.root / cid)
    error_entries(rt)
    fronts.handovers()
    for verb in (("state", cid), ("start", cid), ("kill", cid, "KILL"), ("delete", cid)):
        theirs = assert_same_answer(c, py, *verb)
        assert theirs.returncode != 0, verb
        logged = error_entries(rt)
        assert len(logged) == 2 and logged[0] == logged[1], verb
        assert len(fronts.handovers()) == 1, verb
    os.kill(pid, signal.SIGKILL)
    wait_exit(pid)
    if spoil is symlinked:  # what the fixture's cleanup cannot reach
        (rt.root / cid).unlink()
        (rt.root / cid).with_name(cid + ".real").rename(rt.root / cid)
    (rt.root / cid).chmod(0o711)


def test_same_errors_for_missing_and_bad_input(rt: Runtime, fronts: Fronts) -> None:
    c, py = both(rt, fronts)
    cid = rt.new_id("live")
    pid, _ = rt.created(cid, rt.bundle("time.spt", ("sleep=30",)))
    error_entries(rt)
    fronts.handovers()
    # (arguments, handed over?): a missing container is the one error C words itself.
    cases = [
        (("state", "no-such-container"), False),
        (("delete", "no-such-container"), False),
        (("delete", "--force", "no-such-container"), False),
        (("start", "no-such-container"), False),
        (("kill", "no-such-container", "KILL"), False),
        (("kill", cid, "SIGNOPE"), True),
        (("kill", cid, "65"), True),
        (("state", "bad/id"), True),
        (("state",), True),
        (("start", cid), True),  # run by the first start: refused for both
        (("delete", cid), True),  # running
    ]
    assert c("start", cid).returncode == 0
    error_entries(rt)
    fronts.handovers()
    for args, handed_over in cases:
        theirs = assert_same_answer(c, py, *args)
        assert theirs.returncode != 0, args
        logged = error_entries(rt)
        assert len(logged) == 2 and logged[0] == logged[1], args
        assert len(fronts.handovers()) == handed_over, args
    os.kill(pid, signal.SIGKILL)
    wait_exit(pid)


def test_missing_container_logged_alike_in_both_formats(rt: Runtime, fronts: Fronts) -> None:
    """The --log entry C writes for a missing container is Python's, field for field and
    byte for byte but the time, in json and in text; with and without a state root."""
    assert not rt.root.exists()  # no container made yet
    rt.root.mkdir(mode=0o700)
    for fmt in ("json", "text"):
        if fmt == "text":
            rt.root.rmdir()
        log = rt.tmp / f"missing.{fmt}"
        for program, env in ((str(fronts.traced), fronts.env), (None, None)):
            argv = [*(PYTHON_CLI if program is None else [program])]
            done = subprocess.run(
                [*argv, "--root", str(rt.root), "--log", str(log), "--log-format", fmt,
                 "delete", "gone"],
                capture_output=True, text=True, env=env,
            )  # fmt: skip
            expected = (1, "runnc-py: gone: container does not exist\n")
            assert (done.returncode, done.stderr) == expected
        entries = log.read_text().splitlines()
        assert len(entries) == 2
        if fmt == "json":
            mine, theirs = (json.loads(e) for e in entries)
            assert list(mine) == list(theirs) == ["level", "msg", "time"]
            assert mine | {"time": ""} == theirs | {"time": ""}
            assert [len(e) for e in entries] == [len(entries[1])] * 2
        else:
            cut = [e.split(" ", 1) for e in entries]
            assert cut[0][1] == cut[1][1] == 'level=error msg="gone: container does not exist"'
            assert len(cut[0][0]) == len(cut[1][0])
    assert fronts.handovers() == []


def test_delegated_container_is_handed_over(rt: Runtime, fronts: Fronts) -> None:
    """An ID that is the delegate runtime's is not "missing": Python hands it on or refuses."""
    c, py = both(rt, fronts)
    (rt.root / ".delegate" / "theirs").mkdir(parents=True)
    try:
        fronts.handovers()
        theirs = assert_same_answer(c, py, "state", "theirs")
        assert "delegate" in theirs.stderr and theirs.returncode == 1
        assert fronts.handovers() == ["container directory untrusted, or delegated"]
    finally:
        (rt.root / ".delegate" / "theirs").rmdir()
        (rt.root / ".delegate").rmdir()


def test_start_after_the_init_died(rt: Runtime, fronts: Fronts) -> None:
    c, py = both(rt, fronts)
    cid = rt.new_id("dead")
    pid, _ = rt.created(cid, rt.bundle("time.spt", ("sleep=30",)))
    os.kill(pid, signal.SIGKILL)
    wait_exit(pid)
    mine, theirs = c("start", cid), py("start", cid)
    assert (mine.returncode, mine.stderr) == (theirs.returncode, theirs.stderr)
    assert theirs.returncode == 1 and "start" in theirs.stderr
    # Its exec.fifo is still there: delete in C removes it with the rest.
    assert (rt.root / cid / "exec.fifo").exists()
    fronts.handovers()
    assert c("delete", cid).returncode == 0
    assert fronts.handovers() == []
    assert_gone(rt, cid, pid)


def test_unknown_key_is_left_to_python(rt: Runtime, fronts: Fronts) -> None:
    """A key the C side does not know may be a newer format's: Python reads it (and would
    keep it when saving), so C hands over even where Python succeeds."""
    c, py = both(rt, fronts)
    cid = rt.new_id("newkey")
    pid, _ = rt.created(cid, rt.bundle("time.spt", ("sleep=30",)))
    path = rt.root / cid / "state.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"futureField": 1}))
    fronts.handovers()
    assert state_text(c, cid) == state_text(py, cid)
    assert fronts.handovers() == ["state.json missing, untrusted or not format 1"]
    os.kill(pid, signal.SIGKILL)
    wait_exit(pid)


def test_untrusted_root_is_handed_over(rt: Runtime, fronts: Fronts) -> None:
    c, py = both(rt, fronts)
    cid = rt.new_id("root")
    pid, _ = rt.created(cid, rt.bundle("time.spt", ("sleep=30",)))
    fronts.handovers()
    rt.root.chmod(0o777)
    try:
        assert_same_answer(c, py, "state", cid)
        assert len(fronts.handovers()) == 1
    finally:
        rt.root.chmod(0o700)
    os.kill(pid, signal.SIGKILL)
    wait_exit(pid)


# ---------------------------------------------------------------------------- hand-over


def test_hooks_net_json_and_flags_are_handed_over(rt: Runtime, fronts: Fronts) -> None:
    """What the C front end leaves to Python still happens, through Python."""
    c, _ = both(rt, fronts)
    cid = rt.new_id("hooks")
    record = rt.tmp / "hooks"
    record.mkdir()
    hooks = {
        kind: [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {record}/{kind}"]}]
        for kind in ("poststart", "poststop")
    }
    pid, _ = rt.created(cid, rt.bundle("time.spt", ("sleep=30",), hooks=hooks))
    fronts.handovers()
    assert c("state", cid).returncode == 0
    assert fronts.handovers() == []  # hooks do not matter to `state`
    assert c("start", cid).returncode == 0
    assert fronts.handovers() == ["poststart hooks"]
    assert json.loads((record / "poststart").read_text())["status"] == "running"
    assert c("kill", cid, "KILL").returncode == 0
    assert fronts.handovers() == []
    wait_exit(pid)
    assert c("delete", cid).returncode == 0
    assert fronts.handovers() == ["poststop hooks"]
    assert json.loads((record / "poststop").read_text())["status"] == "stopped"
    assert_gone(rt, cid, pid)

    # A network journal: only delete needs it (Python unwires); the others are done in C.
    cid = rt.new_id("net")
    pid, _ = rt.created(cid, rt.bundle("time.spt", ("sleep=30",)))
    (rt.root / cid / "net.json").write_text("{}")
    fronts.handovers()
    assert c("start", cid).returncode == 0 and c("kill", cid, "9").returncode == 0
    wait_exit(pid)
    assert fronts.handovers() == []
    c("delete", cid)
    assert fronts.handovers() == ["network wiring to undo"]

    # Flags and verbs of the Python CLI alone.
    cid = rt.new_id("flags")
    pid, _ = rt.created(cid, rt.bundle("time.spt", ("sleep=30",)))
    fronts.handovers()
    assert c("kill", "--all", cid, "KILL").returncode == 0
    wait_exit(pid)
    assert c("list").returncode == 0
    assert fronts.handovers() == ["not a fast-path command line"] * 2
    assert c("delete", cid, "--force").returncode == 0  # stopped: the plain delete, in C
    assert fronts.handovers() == []
    assert_gone(rt, cid, pid)


def test_forced_delete_of_a_live_container_is_python_s(rt: Runtime, fronts: Fronts) -> None:
    c, _ = both(rt, fronts)
    cid = rt.new_id("force")
    pid, _ = rt.created(cid, rt.bundle("time.spt", ("sleep=30",)))
    assert c("start", cid).returncode == 0
    fronts.handovers()
    assert c("delete", "-f", cid).returncode == 0
    assert fronts.handovers() == ["not stopped, or an interrupted create"]
    assert wait_exit(pid) == 128 + signal.SIGKILL
    assert_gone(rt, cid, pid)


def test_busy_cgroup_is_handed_over_before_anything_goes(rt: Runtime, fronts: Fronts) -> None:
    """A stopped container whose cgroup still holds a task: C removes nothing; Python kills
    the stray task and removes it all."""
    c, _ = both(rt, fronts)
    cid = rt.new_id("busy")
    pid, _ = rt.created(cid, rt.bundle("time.spt", ("sleep=30",)))
    stray = subprocess.Popen(["sleep", "60"])
    try:
        joined = [d for d in cgroup_dirs(f"/runnc-py/{cid}") if d.exists()]
        assert joined
        for d in joined:
            (d / "cgroup.procs").write_text(str(stray.pid))
        os.kill(pid, signal.SIGKILL)
        wait_exit(pid)
        fronts.handovers()
        done = c("delete", cid)
        assert fronts.handovers() == ["cgroup not removable as recorded"]
        assert done.returncode == 0, done.stderr
        assert stray.wait(timeout=10) == -signal.SIGKILL
        assert_gone(rt, cid, pid)
    finally:
        stray.kill()
        stray.wait()


def edit_state(rt: Runtime, cid: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = rt.root / cid / "state.json"
    state = json.loads(path.read_text())
    change(state)
    path.write_text(json.dumps(state))


def test_recorded_cgroup_mounts_are_never_used(rt: Runtime, fronts: Fronts) -> None:
    """Rule 5: mounts in state.json that point elsewhere change nothing; C removes the
    cgroup on the mounts it detects, and leaves the decoys alone."""
    c, _ = both(rt, fronts)
    cid = rt.new_id("mounts")
    pid, _ = rt.created(cid, rt.bundle("time.spt", ("sleep=30",)))
    decoy = rt.tmp / "decoy"
    (decoy / "runnc-py" / cid).mkdir(parents=True)

    def point_elsewhere(state: dict[str, Any]) -> None:
        state["cgroup"]["mounts"] = dict.fromkeys(state["cgroup"]["mounts"], str(decoy))

    edit_state(rt, cid, point_elsewhere)
    os.kill(pid, signal.SIGKILL)
    wait_exit(pid)
    fronts.handovers()
    assert c("delete", cid).returncode == 0
    assert fronts.handovers() == []
    assert_gone(rt, cid, pid)
    assert (decoy / "runnc-py" / cid).is_dir()


def test_created_entries_outside_the_path_go_to_python(rt: Runtime, fronts: Fronts) -> None:
    """Rule 5: a `created` entry that is not a mount + a proper ancestor of the path is
    handed over before anything is removed; Python drops it, and the directory stays."""
    c, _ = both(rt, fronts)
    cid = rt.new_id("created")
    pid, _ = rt.created(cid, rt.bundle("time.spt", ("sleep=30",)))
    joined = [d for d in cgroup_dirs(f"/runnc-py/{cid}") if d.exists()]
    bystander = joined[0].parent.parent / f"rt-bystander-{cid}"
    bystander.mkdir()
    try:
        edit_state(rt, cid, lambda s: s["cgroup"]["created"].append(str(bystander)))
        os.kill(pid, signal.SIGKILL)
        wait_exit(pid)
        fronts.handovers()
        done = c("delete", cid)
        assert fronts.handovers() == ["cgroup not removable as recorded"]
        assert done.returncode == 0, done.stderr
        assert bystander.is_dir()
        assert_gone(rt, cid, pid)
    finally:
        bystander.rmdir()
