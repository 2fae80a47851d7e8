"""fastjson must read and write exactly what the json module does, for plain JSON values."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runnc_py.oci import fastjson

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(values, st.sampled_from([None, 0, 2, 4]))
def test_dumps_matches_json(value: object, indent: int | None) -> None:
    assert fastjson.dumps(value, indent=indent) == json.dumps(value, indent=indent)


@given(values)
def test_loads_roundtrip(value: object) -> None:
    text = json.dumps(value, indent=1)
    assert fastjson.loads(text) == json.loads(text)
    assert fastjson.loads(text.encode()) == json.loads(text)


def test_tuples_specials_and_padding() -> None:
    assert fastjson.dumps((1, "é")) == json.dumps((1, "é"))
    assert fastjson.dumps([math.inf, -math.inf]) == "[Infinity, -Infinity]"
    assert fastjson.dumps(math.nan) == "NaN"
    assert fastjson.loads("  \n[NaN, Infinity]\t")[1] == math.inf
    assert fastjson.loads(' {"a": 1} ') == {"a": 1}


@pytest.mark.parametrize("bad", ["", "  ", "{", '{"a": }', "[1] x", '"\x01"', "{'a': 1}", "nul"])
def test_loads_rejects_what_json_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        json.loads(bad)
    with pytest.raises(ValueError):
        fastjson.loads(bad)


def test_dumps_rejects_non_json() -> None:
    with pytest.raises(TypeError):
        fastjson.dumps({1: "x"})
    with pytest.raises(TypeError):
        fastjson.dumps({"a": object()})


def test_errors_without_json_imported() -> None:
    """The engine entry point runs with -I -S: nothing has imported json when state.json is bad."""
    import subprocess
    import sys
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[2])
    code = (
        f"import sys; sys.path.insert(0, {repo!r})\n"
        "from runnc_py.oci import fastjson\n"
        "assert 'json' not in sys.modules\n"
        "for bad in ('{not json', '[1,', '\"\\\\x\"'):\n"
        "    try:\n"
        "        fastjson.loads(bad)\n"
        "    except ValueError as exc:\n"
        "        print('ValueError', isinstance(exc, ValueError))\n"
    )
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ValueError", "True"] * 3


@pytest.mark.parametrize("text", ["[1,]", "x", "{}x", '{"a":}', "", "  ", '{"a": 1} {"b": 2}'])
def test_errors_are_jsons_own(text: str) -> None:
    """Malformed input gets json's message (what and where: line, column), not an offset guess."""
    with pytest.raises(ValueError) as ours:
        fastjson.loads(text)
    with pytest.raises(ValueError) as theirs:
        json.loads(text)
    assert str(ours.value) == str(theirs.value)
