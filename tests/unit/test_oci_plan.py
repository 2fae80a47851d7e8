"""Bundle -> launch plan: safe paths in the rootfs, unikernel detection, memory, command line."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

from runnc_py.errors import RunncError
from runnc_py.oci.plan import (
    HOST_OVERHEAD,
    MIB,
    NotAUnikernel,
    guest_args,
    guest_mem_mb,
    has_solo5_abi_note,
    is_unikernel,
    plan_from_spec,
    resolve_in_root,
)
from runnc_py.oci.spec import parse_spec


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "app" / "bin").mkdir(parents=True)
    (root / "app" / "bin" / "u.spt").write_bytes(b"x")
    (root / "abs-link").symlink_to("/app/bin/u.spt")
    (root / "app" / "rel-link").symlink_to("bin/u.spt")
    (root / "escape").symlink_to("../../../../etc/passwd")
    (root / "escape-abs").symlink_to("/etc")
    (root / "loop").symlink_to("loop")
    (root / "file").write_bytes(b"")
    (tmp_path / "outside.spt").write_bytes(b"secret")
    return root


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/app/bin/u.spt", "app/bin/u.spt"),
        ("app/./bin//u.spt", "app/bin/u.spt"),
        ("/abs-link", "app/bin/u.spt"),  # absolute symlinks restart at the rootfs
        ("/app/rel-link", "app/bin/u.spt"),
        ("/../../app/bin/u.spt", "app/bin/u.spt"),  # `..` stops at the rootfs
        ("/app/bin/../../app/bin/u.spt", "app/bin/u.spt"),
    ],
)
def test_resolve_inside(rootfs: Path, path: str, expected: str) -> None:
    assert resolve_in_root(str(rootfs), path, where="w") == str(rootfs / expected)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/escape", "not found"),  # ../../etc/passwd re-rooted: no /etc/passwd in the rootfs
        ("/escape-abs/passwd", "not found"),
        ("/../outside.spt", "not found"),
        ("/loop", "too many symbolic links"),
        ("/file/x", "not a directory"),
        ("/missing.spt", "not found"),
    ],
)
def test_resolve_never_leaves_the_rootfs(rootfs: Path, path: str, message: str) -> None:
    with pytest.raises(RunncError, match=message):
        resolve_in_root(str(rootfs), path, where="w")


@pytest.mark.parametrize(
    ("annotation", "limit", "expected"),
    [
        (None, None, None),
        (None, 64 * MIB, 56),
        (None, 64 * MIB + MIB - 1, 56),
        (None, 4096 * MIB, 4088),
        ("100", 64 * MIB, 100),
        ("2", None, 2),
    ],
)
def test_guest_memory_rule(annotation: str | None, limit: int | None, expected: int | None) -> None:
    assert guest_mem_mb(annotation, limit) == expected
    assert HOST_OVERHEAD == 8 * MIB


@pytest.mark.parametrize(
    ("annotation", "limit", "message"),
    [("x", None, "whole number"), ("1", None, "at least 2"), (None, 9 * MIB, "minimum is 10 MiB")],
)
def test_guest_memory_refusals(annotation: str | None, limit: int | None, message: str) -> None:
    with pytest.raises(RunncError, match=message):
        guest_mem_mb(annotation, limit)


def test_guest_args_modes() -> None:
    assert guest_args(("a", "b"), ("K=V",), "args") == ("a", "b")
    assert guest_args(("a",), ("K=V", "P=/x"), "env") == ("K=V", "P=/x", "--", "a")
    assert guest_args((), (), "env") == ("--",)
    # Escaped for the LKL port's tokenizer (runnc_py.net.cmdline); a non-KEY=VALUE is refused.
    assert guest_args(("x y",), ("K=has space",), "env") == ("K=has\\ space", "--", "x\\ y")
    with pytest.raises(RunncError, match=r"process\.env\[0\]"):
        guest_args((), ("NOEQUALS",), "env")
    with pytest.raises(RunncError, match="unknown mode"):
        guest_args((), (), "json")


def _spec(
    root: Path, args: list[str], annotations: dict[str, str] | None = None, **linux: Any
) -> Any:
    data = {
        "ociVersion": "1.0.2",
        "process": {"args": args, "env": ["PATH=/bin"], "cwd": "/app"},
        "root": {"path": str(root)},
        "annotations": annotations or {},
        "linux": copy.deepcopy(linux),
    }
    return parse_spec(data, str(root.parent))


def test_plan_from_spec(rootfs: Path) -> None:
    (rootfs / "disk.img").write_bytes(bytes(4096))
    plan = plan_from_spec(
        _spec(
            rootfs,
            ["bin/u.spt", "--x", "y"],  # relative to process.cwd
            {
                "org.runnc-py.monitor": "spt",
                "org.runnc-py.block.storage": "/disk.img",
                "org.runnc-py.block-sector-size.storage": "4096",
                "org.runnc-py.net.service0": "tap7",
                "org.runnc-py.net-mac.service0": "02:00:00:00:00:07",
                "org.runnc-py.exec-heap": "true",
                "other.annotation": "ignored",
            },
            resources={"memory": {"limit": 128 * MIB}},
        )
    )
    assert plan.unikernel == str(rootfs / "app/bin/u.spt")
    assert plan.args == ("--x", "y")
    assert plan.mem_mb == 120
    assert plan.blocks == {"storage": str(rootfs / "disk.img")}
    assert plan.block_sector_sizes == {"storage": 4096}
    assert plan.nets == {"service0": "tap7"}
    assert plan.net_macs == {"service0": "02:00:00:00:00:07"}
    assert plan.monitor == "spt" and plan.exec_heap is True


def test_plan_unikernel_annotation(rootfs: Path) -> None:
    (rootfs / "entry").write_bytes(b"#!/bin/sh\n")
    named = {"org.runnc-py.unikernel": "/abs-link"}
    plan = plan_from_spec(_spec(rootfs, ["/entry", "a"], named))
    assert plan.unikernel == str(rootfs / "app/bin/u.spt") and plan.args == ("/entry", "a")
    plan = plan_from_spec(_spec(rootfs, ["/abs-link", "a"], named))
    assert plan.args == ("a",)  # args[0] naming the unikernel is its program name


@pytest.mark.parametrize(
    ("args", "annotations", "error", "message"),
    [
        (["/file"], {}, NotAUnikernel, "not a unikernel"),
        (["sh"], {}, NotAUnikernel, "not a unikernel"),
        (["/nope.spt"], {}, RunncError, "not found"),
        (["/app"], {}, RunncError, "not a regular file"),
        (["/abs-link"], {"org.runnc-py.typo": "1"}, RunncError, "unknown runnc-py annotation"),
        (["/abs-link"], {"org.runnc-py.net.": "tap0"}, RunncError, "unknown runnc-py annotation"),
        (["/abs-link"], {"org.runnc-py.exec-heap": "maybe"}, RunncError, "true or false"),
        (["/abs-link"], {"org.runnc-py.block.b": "/escape"}, RunncError, "not found"),
        (["/abs-link"], {"org.runnc-py.cmdline": "json"}, RunncError, "unknown mode"),
    ],
)
def test_plan_refusals(
    rootfs: Path, args: list[str], annotations: dict[str, str], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        plan_from_spec(_spec(rootfs, args, annotations))


def test_unikernel_detection(guests: Path, tmp_path: Path) -> None:
    hello = guests / "hello.spt"
    renamed = tmp_path / "hello"
    renamed.write_bytes(hello.read_bytes())
    assert has_solo5_abi_note(str(renamed)) and is_unikernel(str(renamed))
    assert has_solo5_abi_note(str(guests / "abi1" / "hello.spt"))
    assert not has_solo5_abi_note(os.path.realpath("/bin/true"))
    assert not has_solo5_abi_note(str(tmp_path / "missing"))
    (tmp_path / "short").write_bytes(b"\x7fELF")
    assert not has_solo5_abi_note(str(tmp_path / "short"))
    assert is_unikernel(str(tmp_path / "short.nabla"))  # by name alone
