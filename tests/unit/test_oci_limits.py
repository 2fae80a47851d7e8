"""Issue 9 item 9: numbers, limits and sizes a bundle may give are bounded and parsed strictly.

Each refusal is one RunncError line naming the field; the CLI tests prove that `create`
refuses before anything exists (no container directory under --root).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runnc_py.errors import RunncError
from runnc_py.oci import cgroup_plan
from runnc_py.oci.plan import MAX_GUEST_MB, guest_mem_mb
from runnc_py.oci.spec import (
    MAX_ANNOTATION_BYTES,
    MAX_ANNOTATIONS,
    MAX_CONFIG_BYTES,
    MAX_JSON_DEPTH,
    load_spec,
    parse_spec,
)
from runnc_py.oci.state import check_id
from runnc_py.rootfs.size import parse_size
from runnc_py.strictnum import decimal, json_int

BASE: dict[str, Any] = {
    "ociVersion": "1.0.2",
    "process": {"args": ["/hello.spt"], "cwd": "/"},
    "root": {"path": "rootfs"},
    "linux": {"resources": {"memory": {"limit": 64 << 20}}},
}
LENIENT = [" 64", "64 ", "+64", "-64", "6_4", "６４", "٦٤", "६४", "0x40", "64.0", "", "1" * 21]


# ---------------------------------------------------------------------------- strict integers


@pytest.mark.parametrize("text", LENIENT)
def test_decimal_takes_ascii_digits_only(text: str) -> None:
    with pytest.raises(RunncError, match="ASCII digits"):
        decimal(text, where="w")


def test_decimal_range_and_leading_zeros() -> None:
    assert decimal("0064", where="w") == 64
    assert decimal("18446744073709551615", where="w") == 2**64 - 1
    with pytest.raises(RunncError, match="at most 10 MiB, got 11"):
        decimal("11", where="w", high=10, unit="MiB")


@pytest.mark.parametrize("value", [True, 1.0, "1", None, 2**63, -(2**63) - 1])
def test_json_int_is_an_int64(value: Any) -> None:
    with pytest.raises(RunncError):
        json_int(value, where="w")


@pytest.mark.parametrize("text", LENIENT)
def test_mem_annotation_is_strict(text: str) -> None:
    with pytest.raises(RunncError, match=r"org\.runnc-py\.mem"):
        guest_mem_mb(text, None)


def test_mem_annotation_upper_bound_is_checked_at_create() -> None:
    # Before: accepted here, then OverflowError at `start`.
    with pytest.raises(RunncError, match=f"at most {MAX_GUEST_MB} MiB"):
        guest_mem_mb("999999999999", None)
    assert guest_mem_mb(str(MAX_GUEST_MB), None) == MAX_GUEST_MB


def test_memory_limit_that_gives_a_huge_guest_is_one_line() -> None:
    with pytest.raises(RunncError, match=r"memory\.limit: .* more than"):
        guest_mem_mb(None, 2**63 - 1)


@pytest.mark.parametrize("text", [" 64M", "+64M", "６４M", "64 M", "1e3", "99999T"])
def test_rootfs_sizes_are_strict(text: str) -> None:
    with pytest.raises(RunncError):
        parse_size(text, where="annotation org.runnc-py.rootfs.size")


# ---------------------------------------------------------------------------- memory.limit


@pytest.mark.parametrize("limit", [2**64 + 5, 2**63, -(2**63) - 1])
def test_memory_limit_beyond_int64_is_refused_not_wrapped(limit: int) -> None:
    data = copy.deepcopy(BASE)
    data["linux"]["resources"]["memory"]["limit"] = limit
    with pytest.raises(RunncError) as info:
        parse_spec(data, "/b")
    assert info.value.line().startswith("config.json: linux.resources.memory.limit: must be at")
    # The cgroup plan, reached also by `update -r`, refuses it on its own.
    with pytest.raises(RunncError, match=r"memory\.limit: must be at"):
        cgroup_plan.parse_resources({"memory": {"limit": limit}})


def test_cgroup_numbers_are_bounded() -> None:
    with pytest.raises(RunncError, match=r"pids\.limit: must be at most"):
        cgroup_plan.parse_resources({"pids": {"limit": 2**40}})
    for cpus in ("０-1", "9" * 5000, "0-" + "1" * 5000):
        with pytest.raises(RunncError, match="cpus"):
            cgroup_plan.parse_resources({"cpu": {"cpus": cpus}})


# ---------------------------------------------------------------------------- config.json shape


def _write(bundle: Path, text: str) -> None:
    (bundle / "config.json").write_text(text)


def test_deep_nesting_is_one_line(tmp_path: Path) -> None:
    # Before: RecursionError out of the JSON scanner.
    _write(tmp_path, '{"a":' * 200_000 + "1" + "}" * 200_000)
    with pytest.raises(RunncError, match="nested deeper than") as info:
        load_spec(str(tmp_path))
    assert "\n" not in info.value.line()
    # Deep but below the scanner's own limit: our depth check catches it.
    data = copy.deepcopy(BASE)
    data["x"] = json.loads("[" * (MAX_JSON_DEPTH + 5) + "]" * (MAX_JSON_DEPTH + 5))
    with pytest.raises(RunncError, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        parse_spec(data, "/b")


def test_config_size_cap(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["pad"] = "x" * MAX_CONFIG_BYTES
    _write(tmp_path, json.dumps(data))
    with pytest.raises(RunncError, match=f"larger than {MAX_CONFIG_BYTES} bytes"):
        load_spec(str(tmp_path))


def test_annotation_caps() -> None:
    data = copy.deepcopy(BASE)
    data["annotations"] = {f"k{i}": "" for i in range(MAX_ANNOTATIONS + 1)}
    with pytest.raises(RunncError, match=f"at most {MAX_ANNOTATIONS} are accepted"):
        parse_spec(data, "/b")
    data["annotations"] = {"big": "x" * MAX_ANNOTATION_BYTES}
    with pytest.raises(RunncError, match=f"at most {MAX_ANNOTATION_BYTES} are accepted"):
        parse_spec(data, "/b")
    data["annotations"] = {f"k{i}": "v" * 50 for i in range(MAX_ANNOTATIONS)}
    assert len(parse_spec(data, "/b").annotations) == MAX_ANNOTATIONS


def test_create_refuses_two_million_annotations_with_one_line(tmp_path: Path, runnc) -> None:  # type: ignore[no-untyped-def]
    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    data = copy.deepcopy(BASE)
    notes = ",".join(f'"a{i}":""' for i in range(2_000_000))
    text = json.dumps(data)[:-1] + ', "annotations": {' + notes + "}}"
    _write(bundle, text)
    root = tmp_path / "root"
    done = runnc("--root", root, "create", "--bundle", bundle, f"limits-{os.getpid()}")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "config.json" in lines[0] and "larger than" in lines[0], lines
    assert not root.exists() or os.listdir(root) == []


# ---------------------------------------------------------------------------- IDs


@pytest.mark.parametrize("bad", [".delegate", "x" * 256])
def test_reserved_and_overlong_ids(bad: str) -> None:
    with pytest.raises(RunncError, match="invalid container ID"):
        check_id(bad)
    assert check_id("x" * 255)


# ---------------------------------------------------------------------------- any shape


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_PATHS = [
    (),
    ("ociVersion",),
    ("process",),
    ("process", "args"),
    ("process", "env"),
    ("process", "terminal"),
    ("root",),
    ("root", "path"),
    ("annotations",),
    ("annotations", "org.runnc-py.mem"),
    ("hooks",),
    ("hooks", "prestart"),
    ("linux",),
    ("linux", "namespaces"),
    ("linux", "resources"),
    ("linux", "resources", "memory"),
    ("linux", "resources", "memory", "limit"),
    ("linux", "resources", "pids"),
    ("linux", "resources", "cpu"),
    ("linux", "resources", "cpu", "cpus"),
    ("linux", "resources", "cpu", "shares"),
    ("linux", "resources", "pids", "limit"),
    ("linux", "resources", "hugepageLimits"),
    ("linux", "cgroupsPath"),
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_PATHS), _JSON)
def test_any_config_shape_gives_a_spec_or_one_runnc_error(
    path: tuple[str, ...], value: Any
) -> None:
    data: Any = copy.deepcopy(BASE)
    if not path:
        data = value
    else:
        node = data
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node
        if isinstance(node, dict):
            node[path[-1]] = value
    try:
        spec = parse_spec(data, "/b")
        cgroup_plan.parse_resources(spec.resources)
        guest_mem_mb(spec.annotations.get("org.runnc-py.mem"), spec.memory_limit)
    except RunncError as exc:
        assert "\n" not in exc.line()
