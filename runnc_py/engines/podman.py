"""podman's containers.conf: `[engine.runtimes] NAME = [BINARY]`, and `[containers]
default_ulimits` for the limits this host cannot give.

podman asks the runtime for RLIMIT_NOFILE and RLIMIT_NPROC of 1048576 (both soft and hard)
unless containers.conf says otherwise; where the host's hard limits are lower (this kind of host:
nofile 20000), every container then fails with "cannot set RLIMIT_NOFILE to 1048576", runc's
and ours alike. `add` writes `nofile=H:H` / `nproc=H:H` with the host's hard limit H, unless the
file already sets that limit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar, Self

from runnc_py.engines import Registration, tomledit
from runnc_py.errors import RunncError

PODMAN_DEFAULT_LIMIT = 1048576  # podman's define.RLimitDefaultValue
RUNTIMES_PATH = ("engine", "runtimes")
ULIMITS_PATH = ("containers", "default_ulimits")


def wanted_ulimits(reg: Registration) -> list[str]:
    """`default_ulimits` entries this host needs (podman's --ulimit spelling)."""
    wanted = []
    for name, hard in (("nofile", reg.nofile_hard), ("nproc", reg.nproc_hard)):
        if hard is not None and hard < PODMAN_DEFAULT_LIMIT:
            wanted.append(f"{name}={hard}:{hard}")
    return wanted


def _limit_name(entry: object) -> str:
    return str(entry).split("=", 1)[0].strip()


@dataclass(frozen=True)
class PodmanConfig:
    engine = "podman"
    # What a root podman reads after /usr/share/containers/containers.conf (the package's).
    default_path = "/etc/containers/containers.conf"
    daemon: ClassVar[str | None] = None  # podman reads containers.conf on every command
    path: str = default_path  # the file being edited (error messages name it)

    def _missing_ulimits(self, doc: Any, reg: Registration) -> list[str]:
        present = tomledit.lookup(doc, ULIMITS_PATH) or []
        if not isinstance(present, list):
            raise RunncError("must be an array", where=f"{self.path}: default_ulimits")
        have = {_limit_name(e) for e in present}
        return [u for u in wanted_ulimits(reg) if _limit_name(u) not in have]

    def at(self, path: str) -> Self:
        return replace(self, path=path)

    def add(self, text: str | None, reg: Registration) -> str:
        where = self.path
        doc = tomledit.parse(text, where)
        registered = tomledit.lookup(doc, (*RUNTIMES_PATH, reg.name)) == [reg.binary]
        missing = self._missing_ulimits(doc, reg)
        if text is not None and registered and not missing:
            return text
        if missing:
            had = tomledit.lookup(doc, ULIMITS_PATH[:1]) is not None
            containers = tomledit.ensure_table(doc, ULIMITS_PATH[:1], where)
            if "default_ulimits" in containers:
                for entry in missing:
                    containers["default_ulimits"].append(entry)
            else:
                tomledit.fill(containers, {"default_ulimits": missing}, new=not had)
        had = tomledit.lookup(doc, RUNTIMES_PATH) is not None
        runtimes = tomledit.ensure_table(doc, RUNTIMES_PATH, where)
        tomledit.fill(runtimes, {reg.name: [reg.binary]}, new=not had)
        return tomledit.dump(doc)

    def remove(self, text: str, before: str | None, reg: Registration) -> str:
        where = self.path
        doc = tomledit.parse(text, where)
        old = None if before is None else tomledit.plain(before, "backup")
        runtimes = tomledit.lookup(doc, RUNTIMES_PATH)
        changed = False
        if runtimes is not None and reg.name in runtimes:
            del runtimes[reg.name]
            tomledit.prune(doc, RUNTIMES_PATH, old)
            changed = True
        # Ulimits: only what `add` appended (unknown without the backup: left alone).
        ulimits = tomledit.lookup(doc, ULIMITS_PATH)
        if old is not None and isinstance(ulimits, list):
            kept = set(map(str, tomledit.lookup(old, ULIMITS_PATH) or []))
            for i in reversed(range(len(ulimits))):
                entry = str(ulimits[i])
                if entry not in kept and _limit_name(entry) in ("nofile", "nproc"):
                    del ulimits[i]
                    changed = True
            if not ulimits and tomledit.lookup(old, ULIMITS_PATH) is None:
                del doc[ULIMITS_PATH[0]][ULIMITS_PATH[1]]
                tomledit.prune(doc, ULIMITS_PATH[:1], old)
        return tomledit.dump(doc, before) if changed else text

    def same(self, a: str, b: str) -> bool:
        return tomledit.plain(a, "a") == tomledit.plain(b, "b")

    def bare(self, text: str) -> bool:
        return tomledit.plain(text, self.path) == {}


CONFIG = PodmanConfig()
