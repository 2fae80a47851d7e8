"""Images packaged for urunc's Solo5 targets, read as runnc-py settings.

urunc (github.com/urunc-dev/urunc) describes a unikernel with `com.urunc.unikernel.*` keys,
either as config.json annotations (plain values) or in `/urunc.json` in the rootfs, where
each value is base64-encoded (current urunc also accepts a `b64:` prefix, and plain text that
is no valid base64). Like urunc, the annotations are used when they are complete (type,
hypervisor and binary set), else /urunc.json.

Mapping (Solo5 targets only; urunc's qemu/firecracker/... guests are not unikernels we run):

| urunc key | runnc-py |
|---|---|
| `hypervisor` `spt` / `hvt` | `org.runnc-py.monitor` |
| `binary` | `org.runnc-py.unikernel` |
| `cmdline` (older urunc) | the guest command line, instead of process.args |
| `block` + `solo5BlkDev` | `org.runnc-py.block.<solo5BlkDev, default rootfs>` |
| `mountRootfs` true/false | `org.runnc-py.rootfs` ext4/none (+ `rootfs.device` = solo5BlkDev) |
| `unikernelType` | must be rumprun or mirage (urunc's Solo5 guests) |
| `solo5NetDev`, `unikernelVersion`, `initrd`, `blkMntPoint` | not needed (see below) |

`solo5NetDev` needs no mapping: `create` wires every network device of the manifest that no
annotation attaches.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from runnc_py.errors import RunncError

URUNC_PREFIX = "com.urunc.unikernel."
URUNC_FILE = "/urunc.json"
MAX_URUNC_BYTES = 64 * 1024
OUR = "org.runnc-py."
SOLO5_MONITORS = ("spt", "hvt")
SOLO5_TYPES = ("rumprun", "mirage")
REQUIRED = ("unikernelType", "hypervisor", "binary")
DEFAULT_BLOCK_DEVICE = "rootfs"


@dataclass(frozen=True)
class UruncSettings:
    """What an urunc image asks for, in our terms."""

    settings: dict[str, str] = field(default_factory=dict)  # org.runnc-py.* keys
    cmdline: tuple[str, ...] | None = None  # replaces process.args[1:] when given


def fields_of(annotations: Mapping[str, str]) -> dict[str, str]:
    """urunc's keys in ANNOTATIONS, without the prefix."""
    return {
        k[len(URUNC_PREFIX) :]: v
        for k, v in annotations.items()
        if k.startswith(URUNC_PREFIX) and isinstance(v, str)
    }


def complete(fields: Mapping[str, str]) -> bool:
    return all(fields.get(k) for k in REQUIRED)


def decode_value(text: str) -> str:
    """A /urunc.json value: `b64:` + base64, else base64 when it decodes to UTF-8, else text."""
    if text.startswith("b64:"):
        try:
            return base64.b64decode(text[4:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise RunncError(f"invalid base64 value {text!r}", where=URUNC_FILE) from None
    try:
        return base64.b64decode(text, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return text


def parse_urunc_file(data: bytes) -> dict[str, str]:
    """/urunc.json as urunc fields (decoded values, no prefix)."""
    if len(data) > MAX_URUNC_BYTES:
        raise RunncError(f"larger than {MAX_URUNC_BYTES} bytes", where=URUNC_FILE)
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunncError(f"not valid JSON: {exc}", where=URUNC_FILE) from None
    if not isinstance(raw, dict):
        raise RunncError("must hold a JSON object", where=URUNC_FILE)
    return {k: decode_value(v) for k, v in fields_of(raw).items()}


def to_settings(fields: Mapping[str, str], *, where: str) -> UruncSettings:
    """urunc FIELDS as runnc-py settings; refuses what is no Solo5 unikernel."""
    missing = [k for k in REQUIRED if not fields.get(k)]
    if missing:
        raise RunncError(
            f"urunc image lacks {', '.join(URUNC_PREFIX + k for k in missing)}", where=where
        )
    monitor = fields["hypervisor"]
    if monitor not in SOLO5_MONITORS:
        raise RunncError(
            f"urunc hypervisor {monitor!r} is no Solo5 target (runnc-py runs spt and hvt)",
            where=where,
        )
    kind = fields["unikernelType"]
    if kind not in SOLO5_TYPES:
        raise RunncError(
            f"urunc unikernelType {kind!r} is not a Solo5 guest (known: {', '.join(SOLO5_TYPES)})",
            where=where,
        )
    settings = {OUR + "unikernel": fields["binary"], OUR + "monitor": monitor}
    device = fields.get("solo5BlkDev") or DEFAULT_BLOCK_DEVICE
    if fields.get("block"):
        settings[OUR + f"block.{device}"] = fields["block"]
    mount = fields.get("mountRootfs", "").lower()
    if mount in ("true", "1"):
        settings[OUR + "rootfs"] = "ext4"
        settings[OUR + "rootfs.device"] = device
    elif mount in ("false", "0"):
        settings[OUR + "rootfs"] = "none"
    elif mount:
        raise RunncError(
            f"{URUNC_PREFIX}mountRootfs must be true or false, got {mount!r}", where=where
        )
    cmdline = fields.get("cmdline")
    return UruncSettings(settings, tuple(cmdline.split()) if cmdline else None)
