"""`runnc-py exec` argument parsing: our spelling and solo5-spt's give the same request."""

from __future__ import annotations

import pytest

from runnc_py.errors import RunncError
from runnc_py.monitor.tender_args import parse_exec_args


@pytest.mark.parametrize(
    "argv",
    [
        [
            "--mem",
            "64",
            "--net",
            "service0=tap0",
            "--net-mac",
            "service0=02:00:00:00:00:01",
            "--block",
            "storage=disk.img",
            "app.spt",
            "--",
            "a",
            "b",
        ],
        [
            "--mem=64",
            "--net:service0=tap0",
            "--net-mac:service0=02:00:00:00:00:01",
            "--block:storage=disk.img",
            "app.spt",
            "a",
            "b",
        ],
        [
            "--mem=64",
            "--net=service0=tap0",
            "--net-mac=service0=02:00:00:00:00:01",
            "--block=storage=disk.img",
            "--",
            "app.spt",
            "a",
            "b",
        ],
    ],
)
def test_both_spellings_give_the_same_request(argv: list[str]) -> None:
    req = parse_exec_args(argv).request()
    assert req.unikernel == "app.spt"
    assert req.args == ("a", "b")
    assert req.mem_mb == 64
    assert dict(req.nets) == {"service0": "tap0"}
    assert dict(req.net_macs) == {"service0": "02:00:00:00:00:01"}
    assert dict(req.blocks) == {"storage": "disk.img"}


def test_guest_arguments_may_look_like_options() -> None:
    parsed = parse_exec_args(["app.spt", "--mem=1", "--", "-x"])
    assert parsed.args == ["--mem=1", "--", "-x"]
    assert parsed.mem is None


def test_flags_and_sector_size() -> None:
    req = parse_exec_args(
        [
            "--x-exec-heap",
            "--block-sector-size:storage=4096",
            "--block:storage=d",
            "--monitor",
            "spt",
            "--policy=p.toml",
            "k.spt",
        ]
    ).request()
    assert req.x_exec_heap and req.monitor == "spt" and req.policy == "p.toml"
    assert dict(req.block_sector_sizes) == {"storage": 4096}


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], "missing UNIKERNEL"),
        (["--mem"], "missing value"),
        (["--bogus", "k.spt"], "--bogus"),
        (["--net:service0", "k.spt"], "NAME=VALUE"),
        (["--block", "=x", "k.spt"], "NAME=VALUE"),
    ],
)
def test_malformed_arguments(argv: list[str], needle: str) -> None:
    with pytest.raises(RunncError, match=needle):
        parse_exec_args(argv)


def test_non_numeric_memory() -> None:
    with pytest.raises(RunncError, match="whole number"):
        parse_exec_args(["--mem=lots", "k.spt"]).request()


def test_help() -> None:
    assert parse_exec_args(["--help"]).help


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--process", "/tmp/p.json", "-d", "--pid-file", "/x", "ctr1"], ("ctr1", "/tmp/p.json")),
        (["-d", "--process=/p", "ctr2", "sh"], ("ctr2", "/p")),
        (["--tty", "ctr3", "ls", "-l"], ("ctr3", None)),
    ],
)
def test_runc_exec_target(argv: list[str], expected: tuple[str, str | None]) -> None:
    from runnc_py.monitor.tender_args import runc_exec_target

    assert runc_exec_target(argv) == expected
