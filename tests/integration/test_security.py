"""apply_process_security for real, in a forked child that reports back through a pipe.

The child checks both what the kernel says (/proc/self/status, getrlimit) and what it can no
longer do (open more files than NOFILE, get root back, chown): a dropped capability that still
worked would fail these tests.
"""

from __future__ import annotations

import ctypes  # noqa: F401 - imported before forking, see in_child
import errno
import json
import os
import resource
import tempfile
import traceback
from collections.abc import Callable
from typing import Any

import prctl  # noqa: F401 - imported before forking, see in_child
import pytest

from runnc_py.errors import RunncError
from runnc_py.oci.security import (
    apply_process_security,
    drop_capabilities,
    parse_status,
    plan_process_security,
)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="changing uid and capabilities needs root"),
]

NOBODY = 65534


def in_child(body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `body` in a forked child; return its dict (or {"error": line} for a RunncError).

    Everything the child needs is imported before the fork (ctypes and prctl too, for the
    test that drops root before calling apply): after a uid change the child may no longer
    read the interpreter's files.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            os.close(r)
            try:
                result = body()
            except RunncError as exc:
                result = {"error": exc.line()}
            os.write(w, json.dumps(result).encode())
        except BaseException:
            os.write(w, json.dumps({"crash": traceback.format_exc()}).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    result = json.loads(b"".join(chunks) or b'{"crash": "no output"}')
    assert "crash" not in result, result
    assert os.waitstatus_to_exitcode(status) == 0
    return result


def _status() -> dict[str, str]:
    with open("/proc/self/status") as f:
        return parse_status(f.read())


def _errno_of(fn: Callable[[], object]) -> int | None:
    try:
        fn()
    except OSError as exc:
        return exc.errno
    except ValueError:  # Python's setrlimit turns EPERM into this
        return errno.EPERM
    return None


def _open_many(n: int) -> int | None:
    fds = []
    try:
        for _ in range(n):
            fds.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as exc:
        return exc.errno
    finally:
        for fd in fds:
            os.close(fd)
    return None


def _caps_and_ids(status: dict[str, str]) -> dict[str, str]:
    keys = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")
    return {k: status[k] for k in keys}


NO_CAPS = {k: "0000000000000000" for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


def test_nobody_with_rlimits_groups_and_no_capabilities() -> None:
    sec = plan_process_security(
        {
            "user": {"uid": NOBODY, "gid": NOBODY, "additionalGids": [5, 6], "umask": 0o27},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 64, "hard": 64}],
            "capabilities": {"bounding": ["CAP_SYS_ADMIN"], "effective": ["CAP_SYS_ADMIN"]},
            "noNewPrivileges": False,
            "oomScoreAdj": 500,
        }
    )

    def body() -> dict[str, Any]:
        apply_process_security(sec)
        with open("/proc/self/oom_score_adj") as f:
            oom = f.read().strip()
        umask = os.umask(0)
        return {
            "status": _caps_and_ids(_status()),
            "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
            "open_70": _open_many(70),
            "setuid_0": _errno_of(lambda: os.setuid(0)),
            "raise_nofile": _errno_of(
                lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 128))
            ),
            "oom": oom,
            "umask": umask,
        }

    got = in_child(body)
    assert got["status"] == {
        "Uid": f"{NOBODY}\t{NOBODY}\t{NOBODY}\t{NOBODY}",
        "Gid": f"{NOBODY}\t{NOBODY}\t{NOBODY}\t{NOBODY}",
        "Groups": "5 6",
        **NO_CAPS,
        "NoNewPrivs": "1",  # even though the spec said false: seccomp needs it
    }
    assert got["nofile"] == [64, 64]
    assert got["open_70"] == errno.EMFILE
    assert got["setuid_0"] == errno.EPERM
    assert got["raise_nofile"] == errno.EPERM
    assert got["oom"] == "500"
    assert got["umask"] == 0o27


def test_root_stays_uid_0_but_powerless() -> None:
    sec = plan_process_security({"user": {"uid": 0, "gid": 0}})
    with tempfile.NamedTemporaryFile() as f:

        def body() -> dict[str, Any]:
            apply_process_security(sec)
            return {
                "status": _caps_and_ids(_status()),
                "setuid": _errno_of(lambda: os.setuid(1)),  # CAP_SETUID gone
                "chown": _errno_of(lambda: os.chown(f.name, 1, 1)),  # CAP_CHOWN gone
            }

        got = in_child(body)
    assert got["status"] == {
        "Uid": "0\t0\t0\t0",
        "Gid": "0\t0\t0\t0",
        "Groups": "",  # root's supplementary groups are dropped too
        **NO_CAPS,
        "NoNewPrivs": "1",
    }
    assert got["setuid"] == errno.EPERM
    assert got["chown"] == errno.EPERM


def test_without_privileges_it_fails_with_one_line() -> None:
    sec = plan_process_security({"user": {"uid": 0, "gid": 0}})

    def body() -> dict[str, Any]:
        os.setresuid(NOBODY, NOBODY, NOBODY)  # lose every capability first
        apply_process_security(sec)
        return {"applied": True}

    got = in_child(body)
    assert got["error"].startswith("process: cannot drop the capability bounding set: ")
    assert "\n" not in got["error"]


def test_rlimit_above_our_hard_limit_names_the_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("NOFILE hard limit is already unlimited")
    sec = plan_process_security(
        {"rlimits": [{"type": "RLIMIT_NOFILE", "soft": hard, "hard": hard + 1}]}
    )

    def body() -> dict[str, Any]:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        # Without CAP_SYS_RESOURCE (absent from this host's bounding set) it must fail;
        # with it, it must succeed. Either way the outcome is checked.
        has_sys_resource = int(_status()["CapEff"], 16) >> 24 & 1
        try:
            apply_process_security(sec)
        except RunncError as exc:
            return {"error": exc.line(), "cap": has_sys_resource}
        return {"nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)), "cap": has_sys_resource}

    got = in_child(body)
    if got["cap"]:
        assert got["nofile"] == [hard, hard + 1]
    else:
        assert got["error"] == (
            f"process.rlimits: cannot set RLIMIT_NOFILE to {hard}:{hard + 1}: "
            "not allowed to raise maximum limit"
        )


@pytest.mark.parametrize("uid", [0, NOBODY])
def test_exec_drops_every_capability_but_keeps_the_callers_ids(uid: int) -> None:
    """`runnc-py exec` (drop_capabilities): root loses every set, the bounding set included;
    a user without CAP_SETPCAP cannot empty the bounding set and needs not (NNP). Ids stay."""

    def body() -> dict[str, Any]:
        if uid != 0:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        os.chdir(tempfile.gettempdir())
        drop_capabilities()
        return {"status": _caps_and_ids(_status()), "cwd": os.getcwd()}

    got = in_child(body)
    status = got["status"]
    assert status["Uid"] == f"{uid}\t{uid}\t{uid}\t{uid}"
    assert status["NoNewPrivs"] == "1"
    for key in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert status[key] == "0000000000000000", key
    if uid == 0:
        assert status["CapBnd"] == "0000000000000000"
    assert got["cwd"] == "/"
