"""config.json validation: good specs load, every bad field is named by its JSON path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from runnc_py.errors import RunncError
from runnc_py.oci.spec import Hook, Namespace, load_spec, parse_spec

GOOD: dict[str, Any] = {
    "ociVersion": "1.0.2",
    "process": {"args": ["/hello.spt", "a"], "env": ["A=1"], "cwd": "/", "terminal": False},
    "root": {"path": "rootfs"},
    "hostname": "h",
    "annotations": {"k": "v"},
    "hooks": {
        "prestart": [{"path": "/bin/true", "args": ["true"], "env": ["X=1"], "timeout": 3}],
        "poststop": [{"path": "/bin/false"}],
    },
    "linux": {
        "namespaces": [{"type": "network", "path": "/run/netns/x"}, {"type": "uts"}],
        "resources": {"memory": {"limit": 1 << 30}},
        "cgroupsPath": "/docker/abc",
    },
}


def test_good_spec() -> None:
    spec = parse_spec(GOOD, "/b")
    assert spec.root_path == "/b/rootfs"
    assert spec.args == ("/hello.spt", "a") and spec.env == ("A=1",)
    assert spec.hooks["prestart"] == (Hook("/bin/true", ("true",), ("X=1",), 3),)
    assert spec.hooks["poststop"] == (Hook("/bin/false"),)
    assert spec.namespaces == (Namespace("network", "/run/netns/x"), Namespace("uts"))
    assert spec.memory_limit == 1 << 30
    assert spec.cgroups_path == "/docker/abc"
    assert spec.annotations == {"k": "v"}


def test_absolute_root_and_unlimited_memory() -> None:
    data = copy.deepcopy(GOOD)
    data["root"]["path"] = "/elsewhere/rootfs"
    data["linux"]["resources"]["memory"]["limit"] = -1
    spec = parse_spec(data, "/b")
    assert spec.root_path == "/elsewhere/rootfs"
    assert spec.memory_limit is None


def _set(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is KeyError:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        ("ociVersion", "2.0.0", "ociVersion"),
        ("ociVersion", 1, "ociVersion"),
        ("root", KeyError, "root"),
        ("root.path", "", "root.path"),
        ("process", KeyError, "process"),
        ("process.args", KeyError, "process.args"),
        ("process.args", [], "process.args[0]"),
        ("process.args", ["/a", 3], "process.args[1]"),
        ("process.env", "A=1", "process.env"),
        ("process.terminal", 1, "process.terminal"),
        ("annotations", {"k": 1}, "annotations['k']"),
        ("hooks", {"prestartt": []}, "hooks"),
        ("hooks.prestart.0.path", "relative", "hooks.prestart[0].path"),
        ("hooks.prestart.0.timeout", 0, "hooks.prestart[0].timeout"),
        ("hooks.prestart.0.timeout", True, "hooks.prestart[0].timeout"),
        ("linux.namespaces", [{"type": "uts"}, {"type": "uts"}], "linux.namespaces[1]"),
        ("linux.namespaces", [{"type": "network", "path": "x"}], "linux.namespaces[0].path"),
        ("linux.resources", {"memory": {"limit": "1G"}}, "linux.resources.memory.limit"),
        ("linux.cgroupsPath", 5, "linux.cgroupsPath"),
    ],
)
def test_bad_field_is_named(path: str, value: Any, where: str) -> None:
    with pytest.raises(RunncError) as info:
        parse_spec(_set(path, value), "/b")
    assert info.value.where == f"config.json: {where}"
    assert "\n" not in info.value.line()


def test_load_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(RunncError, match=r"no config\.json"):
        load_spec(str(tmp_path))
    (tmp_path / "config.json").write_text("{nope")
    with pytest.raises(RunncError, match="not valid JSON"):
        load_spec(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps(GOOD))
    assert load_spec(str(tmp_path)).root_path == str(tmp_path / "rootfs")
