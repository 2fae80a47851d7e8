"""Pure process-security planning from the OCI `process` object, and the status check."""

from __future__ import annotations

import resource

import pytest

from runnc_py.errors import RunncError
from runnc_py.oci.security import (
    RLIMITS,
    ProcessSecurity,
    parse_status,
    plan_process_security,
    status_problems,
)

U64_MAX = 2**64 - 1


def test_defaults_are_root_with_nothing_else() -> None:
    assert plan_process_security({}) == ProcessSecurity(
        uid=0, gid=0, additional_gids=(), rlimits=(), no_new_privileges=True
    )


def test_docker_like_process() -> None:
    process = {
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [10, 1000, 10], "umask": 0o22},
        "rlimits": [
            {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": U64_MAX},
            {"type": "RLIMIT_LOCKS", "soft": 5, "hard": 5},
        ],
        "noNewPrivileges": False,
        "oomScoreAdj": 500,
        # Requested capabilities are ignored: a unikernel needs none (module docstring).
        "capabilities": {"bounding": ["CAP_NET_ADMIN"], "effective": ["CAP_NET_ADMIN"]},
    }
    assert plan_process_security(process) == ProcessSecurity(
        uid=1000,
        gid=1000,
        additional_gids=(10, 1000),  # duplicates dropped, order kept
        rlimits=(
            (resource.RLIMIT_NOFILE, 1024, 4096),
            (resource.RLIMIT_CORE, 0, resource.RLIM_INFINITY),
            (10, 5, 5),  # RLIMIT_LOCKS, which Python's resource module does not name
        ),
        no_new_privileges=True,  # always: the seccomp filter needs it
        umask=0o22,
        oom_score_adj=500,
    )


def test_every_linux_rlimit_is_known() -> None:
    assert sorted(RLIMITS.values()) == list(range(16))
    assert RLIMITS["RLIMIT_NOFILE"] == resource.RLIMIT_NOFILE


def _nofile(soft: object, hard: object) -> dict:
    return {"rlimits": [{"type": "RLIMIT_NOFILE", "soft": soft, "hard": hard}]}


@pytest.mark.parametrize(
    ("process", "message"),
    [
        ([], "process: must be an object"),
        ({"user": 5}, "process.user: must be an object"),
        ({"user": {"uid": -1}}, "process.user.uid: must be between 0 and 4294967294, got -1"),
        ({"user": {"uid": 2**32 - 1}}, "process.user.uid: must be between 0 and 4294967294"),
        ({"user": {"uid": "0"}}, "process.user.uid: must be an integer, got '0'"),
        ({"user": {"uid": True}}, "process.user.uid: must be an integer, got True"),
        ({"user": {"gid": 1.0}}, "process.user.gid: must be an integer, got 1.0"),
        ({"user": {"additionalGids": 5}}, "process.user.additionalGids: must be an array"),
        ({"user": {"additionalGids": [1, -3]}}, "process.user.additionalGids[1]: must be"),
        ({"user": {"umask": 0o1000}}, "process.user.umask: must be between 0 and 511"),
        ({"oomScoreAdj": -1001}, "process.oomScoreAdj: must be between -1000 and 1000"),
        ({"noNewPrivileges": "yes"}, "process.noNewPrivileges: must be true or false"),
        ({"rlimits": {}}, "process.rlimits: must be an array"),
        ({"rlimits": [5]}, "process.rlimits[0]: must be an object"),
        (
            {"rlimits": [{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]},
            "process.rlimits[0].type: unknown rlimit type 'RLIMIT_FOO'",
        ),
        (
            {"rlimits": [{"type": "nofile", "soft": 1, "hard": 1}]},
            "process.rlimits[0].type: unknown rlimit type 'nofile'",
        ),
        (
            {
                "rlimits": [
                    {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
                    {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2},
                ]
            },
            "process.rlimits[1].type: RLIMIT_NOFILE is set twice",
        ),
        (_nofile(10, 5), "process.rlimits[0]: soft limit 10 is above the hard limit 5"),
        (_nofile(-1, 5), "process.rlimits[0].soft: must be between 0 and"),
        (_nofile(1, 2**64), "process.rlimits[0].hard: must be between 0 and"),
        (_nofile(None, 5), "process.rlimits[0].soft: must be an integer, got None"),
    ],
)
def test_plan_errors(process: object, message: str) -> None:
    with pytest.raises(RunncError) as info:
        plan_process_security(process)  # type: ignore[arg-type]
    assert message in info.value.line()


STATUS_OK = """\
Name:\tpython3
Umask:\t0022
State:\tR (running)
Uid:\t65534\t65534\t65534\t65534
Gid:\t65534\t65534\t65534\t65534
Groups:\t5 6
CapInh:\t0000000000000000
CapPrm:\t0000000000000000
CapEff:\t0000000000000000
CapBnd:\t0000000000000000
CapAmb:\t0000000000000000
NoNewPrivs:\t1
"""

NOBODY = ProcessSecurity(uid=65534, gid=65534, additional_gids=(5, 6))


def test_parse_status() -> None:
    status = parse_status(STATUS_OK)
    assert status["Uid"] == "65534\t65534\t65534\t65534"
    assert status["Groups"] == "5 6"


def test_status_problems_none_when_as_planned() -> None:
    assert status_problems(STATUS_OK, NOBODY) == []


def test_status_problems_names_each_leftover() -> None:
    bad = (
        STATUS_OK.replace("CapBnd:\t0000000000000000", "CapBnd:\t000001ffffffffff")
        .replace("NoNewPrivs:\t1", "NoNewPrivs:\t0")
        .replace("Uid:\t65534\t65534\t65534\t65534", "Uid:\t65534\t0\t65534\t65534")
        .replace("Groups:\t5 6", "Groups:\t0 5 6")
    )
    assert status_problems(bad, NOBODY) == [
        "CapBnd=000001ffffffffff",
        "NoNewPrivs=0",
        "Uid=65534\t0\t65534\t65534",
        "Groups=0 5 6",
    ]
