"""JSON for the hot verbs without the `json` package, whose import pulls in `re` and `enum`.

The engine entry point starts Python without `site` (`-IS`), so nothing has imported `re` yet:
`import json` alone is ~5 ms of a ~19 ms `state` call. `loads` drives the C scanner of the
`_json` accelerator directly (it needs no regular expressions); `dumps` writes the plain values
state files and `state` output hold (dict, list, str, int, float, bool, None) with `_json`'s C
string escaper. Both fall back to `json` when `_json` is missing (other interpreters). The
output is what `json.dumps(obj, indent=indent)` gives for those values.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    import _json

    _encode_str = _json.encode_basestring_ascii
except ImportError:  # pragma: no cover - CPython always ships _json
    _json = None


class _ScanContext:
    """The attributes `_json.make_scanner` reads from a JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scanner = _json.make_scanner(_ScanContext()) if _json is not None else None
_WHITESPACE = " \t\n\r"


def _pairs_scanner(hook: Any) -> Any:
    """A scanner whose objects are built by HOOK from their (key, value) pairs."""
    context = _ScanContext()
    context.object_pairs_hook = hook
    return _json.make_scanner(context)


def loads(text: str | bytes, object_pairs_hook: Any = None) -> Any:
    """Decode TEXT; ValueError on malformed input (as json.loads raises JSONDecodeError).
    OBJECT_PAIRS_HOOK as json.loads takes it (whatever it raises propagates)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if _json is None:  # pragma: no cover
        import json

        return json.loads(text, object_pairs_hook=object_pairs_hook)
    scanner = _scanner if object_pairs_hook is None else _pairs_scanner(object_pairs_hook)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = scanner(text, start)
    except (StopIteration, SystemError):
        # SystemError: the C scanner raises json.decoder.JSONDecodeError, but only finds that
        # class in sys.modules, so with `json` not imported it fails without an exception set.
        # Either way the real parser says what is wrong, with line and column.
        return _explain(text, object_pairs_hook, f"no JSON value at offset {start}")
    if text[end:].strip(_WHITESPACE):
        return _explain(text, object_pairs_hook, f"extra data at offset {end}")
    return value


def _explain(text: str, object_pairs_hook: Any, fallback: str) -> Any:
    """Raise json's own error for TEXT: only ever the error path, so `json` costs nothing."""
    import json

    json.loads(text, object_pairs_hook=object_pairs_hook)  # raises JSONDecodeError (ValueError)
    raise ValueError(fallback)  # json accepted what the scanner refused: should not happen


def dumps(obj: Any, indent: int | None = None, separators: tuple[str, str] | None = None) -> str:
    """Encode OBJ like json.dumps(obj, indent=INDENT, separators=SEPARATORS) for plain JSON
    values."""
    if _json is None:  # pragma: no cover
        import json

        return json.dumps(obj, indent=indent, separators=separators)
    if separators is None:
        separators = (", " if indent is None else ",", ": ")
    out: list[str] = []
    _write(obj, out, indent, 0, separators)
    return "".join(out)


def _write(
    obj: Any, out: list[str], indent: int | None, level: int, seps: tuple[str, str] = (", ", ": ")
) -> None:
    if isinstance(obj, str):
        out.append(_encode_str(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        if obj != obj or obj in (float("inf"), float("-inf")):
            out.append("NaN" if obj != obj else ("Infinity" if obj > 0 else "-Infinity"))
        else:
            out.append(float.__repr__(obj))
    elif isinstance(obj, dict):
        if not obj:
            out.append("{}")
            return
        inner, close = _layout(indent, level)
        out.append("{")
        for i, (key, value) in enumerate(obj.items()):
            if not isinstance(key, str):
                raise TypeError(f"keys must be str, not {type(key).__name__}")
            out.append((seps[0] if i else "") + inner + _encode_str(key) + seps[1])
            _write(value, out, indent, level + 1, seps)
        out.append(close + "}")
    elif isinstance(obj, (list, tuple)):
        if not obj:
            out.append("[]")
            return
        inner, close = _layout(indent, level)
        out.append("[")
        for i, value in enumerate(obj):
            out.append((seps[0] if i else "") + inner)
            _write(value, out, indent, level + 1, seps)
        out.append(close + "]")
    else:
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _layout(indent: int | None, level: int) -> tuple[str, str]:
    """(before each item, before the closing bracket)."""
    if indent is None:
        return "", ""
    return "\n" + " " * (indent * (level + 1)), "\n" + " " * (indent * level)
