"""containerd's config.toml: a CRI runtime handler, `runtime_type = "io.containerd.runc.v2"`
whose shim calls our binary (`options.BinaryName`), and which passes `org.runnc-py.*` pod and
container annotations through to config.json.

Where the handler goes depends on the file's `version` (containerd 1.6, Debian 12's, reads
versions 1 and 2; containerd 2 adds version 3):

* 2: `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.NAME]`
* 1 (no `version` key): `[plugins.cri.containerd.runtimes.NAME]`
* 3: `[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.NAME]`

A file that does not exist yet is written as version 2.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar, Self

import tomlkit

from runnc_py.engines import Registration, tomledit
from runnc_py.errors import RunncError

RUNTIME_TYPE = "io.containerd.runc.v2"
# CRI hands the runtime only the pod/container annotations its handler lists: ours, so a pod
# can set e.g. `org.runnc-py.mem` (containerd matches `*` as a wildcard).
PASS_THROUGH = "org.runnc-py.*"
ANNOTATION_LISTS = ("pod_annotations", "container_annotations")
CRI_PLUGIN = {1: "cri", 2: "io.containerd.grpc.v1.cri", 3: "io.containerd.cri.v1.runtime"}
NEW_FILE_VERSION = 2


def version_of(data: Any, where: str) -> int:
    version = data.get("version", 1)
    if version not in CRI_PLUGIN:
        raise RunncError(
            f"unknown config version {version!r} (known: {', '.join(map(str, CRI_PLUGIN))})",
            where=f"{where}: version",
        )
    return int(version)


def runtimes_path(version: int) -> tuple[str, ...]:
    return ("plugins", CRI_PLUGIN[version], "containerd", "runtimes")


@dataclass(frozen=True)
class ContainerdConfig:
    engine = "containerd"
    default_path = "/etc/containerd/config.toml"
    daemon: ClassVar[str | None] = "containerd"
    path: str = default_path  # the file being edited (error messages name it)

    def at(self, path: str) -> Self:
        return replace(self, path=path)

    def add(self, text: str | None, reg: Registration) -> str:
        where = self.path
        doc = tomledit.parse(text, where)
        if text is None or not text.strip():
            doc["version"] = NEW_FILE_VERSION
        path = runtimes_path(version_of(doc, where))
        current = tomledit.lookup(doc, (*path, reg.name))
        if (
            text is not None
            and current is not None
            and current.get("runtime_type") == RUNTIME_TYPE
            and tomledit.lookup(current, ("options", "BinaryName")) == reg.binary
            and all(PASS_THROUGH in (current.get(key) or ()) for key in ANNOTATION_LISTS)
        ):
            return text
        handler = tomledit.ensure_table(doc, (*path, reg.name), where)
        values: dict[str, object] = {"runtime_type": RUNTIME_TYPE}
        for key in ANNOTATION_LISTS:
            present = handler.get(key)
            if present is None:
                values[key] = [PASS_THROUGH]
            elif not isinstance(present, list):
                raise RunncError("must be an array", where=f"{where}: {key}")
            elif PASS_THROUGH not in present:
                present.append(PASS_THROUGH)
        tomledit.fill(handler, values, new=current is None)
        options = handler.get("options")
        if options is None:
            options = tomlkit.table()
            tomledit.fill(options, {"BinaryName": reg.binary}, new=True)
            handler["options"] = options
        else:
            options["BinaryName"] = reg.binary
        return tomledit.dump(doc)

    def remove(self, text: str, before: str | None, reg: Registration) -> str:
        where = self.path
        doc = tomledit.parse(text, where)
        path = runtimes_path(version_of(doc, where))
        runtimes = tomledit.lookup(doc, path)
        if runtimes is None or reg.name not in runtimes:
            return text
        del runtimes[reg.name]
        tomledit.prune(doc, path, None if before is None else tomledit.plain(before, "backup"))
        return tomledit.dump(doc, before)

    def same(self, a: str, b: str) -> bool:
        return tomledit.plain(a, "a") == tomledit.plain(b, "b")

    def bare(self, text: str) -> bool:
        return tomledit.plain(text, self.path) in ({}, {"version": NEW_FILE_VERSION})


CONFIG = ContainerdConfig()
