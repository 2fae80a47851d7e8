"""Render a UnikernelImage for people (text) and programs (a JSON-ready dict). Pure.

The dict's shape is a stable interface (`runnc-py inspect --json`): keys are only ever added.
Numbers are JSON integers; flags are readelf-style "r-x" strings.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runnc_py.unikernel.elf import UnikernelImage

SCHEMA_VERSION = 1


def image_to_dict(image: UnikernelImage) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "path": image.path,
        "target": image.target.name.lower(),
        "abi_version": image.abi_version,
        "machine": image.machine,
        "entry": image.entry,
        "kernel_end": image.kernel_end,
        "segments": [
            {
                "vaddr": s.vaddr,
                "offset": s.offset,
                "filesz": s.filesz,
                "memsz": s.memsz,
                "flags": s.rwx,
            }
            for s in image.segments
        ],
        "manifest_version": image.manifest.version,
        "devices": [
            {"index": e.index, "name": e.name, "type": e.type_name}
            for e in image.manifest.devices()
        ],
    }


def image_to_text(image: UnikernelImage) -> str:
    lines = [
        f"path:        {image.path}",
        f"target:      {image.target.name.lower()}",
        f"abi version: {image.abi_version}",
        f"machine:     {image.machine}",
        f"entry:       {image.entry:#x}",
        f"kernel_end:  {image.kernel_end:#x}",
        "segments:",
        f"  {'vaddr':<18} {'filesz':>10} {'memsz':>10}  flags",
    ]
    lines += [
        f"  {s.vaddr:<#18x} {s.filesz:>#10x} {s.memsz:>#10x}  {s.rwx}" for s in image.segments
    ]
    devices = image.manifest.devices()
    if devices:
        lines.append("devices:")
        lines.append(f"  {'index':>5}  {'name':<20} type")
        lines += [f"  {e.index:>5}  {e.name:<20} {e.type_name}" for e in devices]
    else:
        lines.append("devices:     none")
    return "\n".join(lines)
