"""An image's runnc-py settings: what `image build` writes and how `create` reads them back.

Engines drop OCI image annotations and Docker never copies image labels into config.json, but
every engine hands the runtime the image's files (the rootfs). So the settings travel three
ways: as labels (for humans: `docker inspect`, `podman image inspect`), as OCI manifest
annotations (for tools that read them), and as the file `/runnc-py.json` in the image's top
layer, which is what `create` reads. Its content is a flat JSON object of the same keys as the
annotations (`{"org.runnc-py.unikernel": "/hello.spt", "org.runnc-py.mem": "64"}`), all values
strings; a config.json annotation of the same key wins over it (per-container override).

Pure: no file access here (the file is read in runnc_py.image.readback).
"""

from __future__ import annotations

from runnc_py.errors import RunncError
from runnc_py.oci import fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

PREFIX = "org.runnc-py."  # runnc_py.oci.plan.PREFIX (not imported: plan imports us)
SETTINGS_FILE = "/runnc-py.json"
MARK_LABEL = PREFIX + "image"  # "1": this image holds a runnc-py unikernel
MAX_SETTINGS_BYTES = 64 * 1024
MONITORS = ("spt", "hvt")


def parse_pairs(items: Iterable[str], *, where: str) -> dict[str, str]:
    """`K=V` items (repeatable --annotation) as a dict; a later K wins."""
    pairs: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key or key != key.strip():
            raise RunncError(f"expected KEY=VALUE, got {item!r}", where=where)
        pairs[key] = value
    return pairs


def image_settings(
    unikernel: str,
    *,
    monitor: str | None = None,
    mem_mb: int | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every setting the image carries: the unikernel's path in the image, --monitor, --mem
    and the --annotation pairs (which may be anything; only org.runnc-py.* are ours)."""
    settings = {PREFIX + "unikernel": unikernel}
    if monitor is not None:
        if monitor not in MONITORS:
            raise RunncError(f"must be spt or hvt, got {monitor!r}", where="--monitor")
        settings[PREFIX + "monitor"] = monitor
    if mem_mb is not None:
        settings[PREFIX + "mem"] = str(mem_mb)
    for key, value in (annotations or {}).items():
        settings[key] = value
    return settings


def labels(settings: Mapping[str, str]) -> dict[str, str]:
    return {MARK_LABEL: "1", **settings}


def settings_file(settings: Mapping[str, str]) -> bytes:
    """The bytes of /runnc-py.json: our own keys only, sorted."""
    ours = {k: v for k, v in sorted(settings.items()) if k.startswith(PREFIX)}
    return (fastjson.dumps(ours, indent=2) + "\n").encode()


def parse_settings_file(data: bytes, *, where: str = SETTINGS_FILE) -> dict[str, str]:
    """/runnc-py.json back to settings: an object of org.runnc-py.* string values."""
    if len(data) > MAX_SETTINGS_BYTES:
        raise RunncError(f"larger than {MAX_SETTINGS_BYTES} bytes", where=where)
    try:
        raw = _loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunncError(f"not valid JSON: {exc}", where=where) from None
    if not isinstance(raw, dict):
        raise RunncError("must hold a JSON object", where=where)
    for key, value in raw.items():
        if not key.startswith(PREFIX):
            raise RunncError(f"unknown key {key!r} (only {PREFIX}* settings)", where=where)
        if not isinstance(value, str):
            raise RunncError(f"{key}: value must be a string", where=where)
    return raw


def _loads(data: bytes) -> object:
    """DATA parsed as `json.loads` parses it, through fastjson (create's import budget).

    fastjson takes UTF-8 only and words its errors its own way; anything it refuses goes
    through `json` itself, so other encodings (json.detect_encoding) are still read and every
    error says what json says.
    """
    try:
        return fastjson.loads(data)
    except (ValueError, UnicodeDecodeError):
        import json  # only here: importing it costs create ~5 ms (it pulls in re)

        return json.loads(data)
