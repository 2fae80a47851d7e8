"""Which guest configuration a container gets, and the one call that renders it.

The kind comes from the annotation `org.runnc-py.net.config` when the bundle has it (engines
copy `--annotation` / image annotations into config.json), otherwise from what the caller knows
about the image (an LKL or rumprun build, a MirageOS unikernel), otherwise `none`.
"""

from __future__ import annotations

from runnc_py.errors import RunncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from runnc_py.net.facts import NetworkFacts

CONFIG_ANNOTATION = "org.runnc-py.net.config"
# kind -> what the guest receives
CONFIG_KINDS: dict[str, str] = {
    "lkl-json": "LKL JSON, frankenlibc/Nabla dialect (--config argument)",
    "lkl-json-upstream": "LKL JSON, lkl/linux dialect",
    "solo5-cmdline": "MirageOS/Solo5 flags (--ipv4=ADDR/LEN --ipv4-gateway=GW ...)",
    "rumprun-json": 'rumprun JSON ({"net": {...}})',
    "none": "nothing: the guest configures itself or has no network",
}


def config_kind(annotations: Mapping[str, str] | None, default: str = "none") -> str:
    """The configuration kind for a container: annotation first, then `default`."""
    kind = (annotations or {}).get(CONFIG_ANNOTATION, default)
    if kind not in CONFIG_KINDS:
        raise RunncError(
            f"unknown network configuration kind {kind!r} (expected one of "
            f"{', '.join(CONFIG_KINDS)})",
            where=f"annotation {CONFIG_ANNOTATION}",
        )
    return kind


def guest_config(
    facts: NetworkFacts, kind: str, *, device_names: Sequence[str] | None = None
) -> str:
    """Render `facts` as `kind` (see CONFIG_KINDS); `none` renders as an empty string.

    `device_names` are the guest's names for the devices in facts order (LKL kinds only).
    """
    # The renderers are imported here: create's planning only checks the kind (config_kind),
    # and they pull in json, re and dataclasses (docs/boot-path.md).
    from runnc_py.net.lkl import render_lkl_json
    from runnc_py.net.rumprun import render_rumprun_json
    from runnc_py.net.solo5 import render_solo5_cmdline

    if kind == "lkl-json":
        return render_lkl_json(facts, "nabla", device_names=device_names)
    if kind == "lkl-json-upstream":
        return render_lkl_json(facts, "upstream", device_names=device_names)
    if kind == "solo5-cmdline":
        return render_solo5_cmdline(facts)
    if kind == "rumprun-json":
        return render_rumprun_json(facts)
    if kind == "none":
        return ""
    raise RunncError(
        f"unknown network configuration kind {kind!r} (expected one of {', '.join(CONFIG_KINDS)})",
        where="net",
    )
