"""`<root>/<ID>/net.json`: what a container's guest got on the network, for `delete` and
`runnc-py net show`.

    {"version": 1,
     "facts":  NetworkFacts.to_dict(),            # what the namespace held before wiring
     "wired":  WiredNetwork.to_dict() | null,      # devices + undo log (null: not wired)
     "config": {"kind": "lkl-json", "text": "..."}}  # what the guest was told

One record per line (compact JSON), the newest last: `wire` appends one before each step (see
`journal`), `create` the final one, a repair one with `"wired": null`. A crash never leaves
`delete` without a complete record: `load` takes the newest complete line.
"""

from __future__ import annotations

import os

from runnc_py.errors import RunncError
from runnc_py.net.config import CONFIG_KINDS
from runnc_py.net.facts import NetworkFacts
from runnc_py.net.wired import FORMAT_VERSION, WiredNetwork
from runnc_py.oci import fastjson
from runnc_py.record import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

NET_JSON = "net.json"


class NetRecord(FrozenRecord):
    __slots__ = ("config", "config_kind", "facts", "wired")
    facts: NetworkFacts
    wired: WiredNetwork | None
    config_kind: str
    config: str

    def __init__(
        self,
        facts: NetworkFacts,
        wired: WiredNetwork | None,
        config_kind: str = "none",
        config: str = "",
    ) -> None:
        self._set(facts=facts, wired=wired, config_kind=config_kind, config=config)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "facts": self.facts.to_dict(),
            "wired": None if self.wired is None else self.wired.to_dict(),
            "config": {"kind": self.config_kind, "text": self.config},
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = NET_JSON) -> NetRecord:
        if not isinstance(data, dict):
            raise RunncError("expected a JSON object", where=where)
        if data.get("version") != FORMAT_VERSION:
            raise RunncError(
                f"format version {data.get('version')!r} is not {FORMAT_VERSION}", where=where
            )
        wired = data.get("wired")
        config = data.get("config", {})
        if not isinstance(config, dict):
            raise RunncError("expected a JSON object", where=f"{where}: config")
        kind, text = config.get("kind", "none"), config.get("text", "")
        if kind not in CONFIG_KINDS:
            raise RunncError(f"unknown configuration kind {kind!r}", where=f"{where}: config.kind")
        if not isinstance(text, str):
            raise RunncError("expected a string", where=f"{where}: config.text")
        return cls(
            facts=NetworkFacts.from_dict(data.get("facts"), f"{where}: facts"),
            wired=None if wired is None else WiredNetwork.from_dict(wired, f"{where}: wired"),
            config_kind=kind,
            config=text,
        )


def save(state_dir: str | os.PathLike[str], record: NetRecord) -> str:
    """Record `record` as the newest in `state_dir/net.json`; return its path."""
    path = os.path.join(state_dir, NET_JSON)
    _append(path, record, os.O_APPEND)
    return path


def journal(
    state_dir: str | os.PathLike[str], facts: NetworkFacts, kind: str = "none", text: str = ""
) -> Callable[[WiredNetwork], None]:
    """The `journal=` for `wire`: each intermediate record becomes the newest line of this
    container's (new) net.json, so `delete` finds whatever a crash left half-wired."""
    path = os.path.join(state_dir, NET_JSON)
    flags = [os.O_TRUNC]  # the first record starts a new file

    def save_intent(wired: WiredNetwork) -> None:
        _append(path, NetRecord(facts, wired, kind, text), flags[0])
        flags[0] = os.O_APPEND

    return save_intent


def _append(path: str, record: NetRecord, mode: int) -> None:
    """One record as one line, in one write().

    Appended, not written aside and renamed over the old file: a rename over an existing file
    makes ext4 write the new one out at once (auto_da_alloc), 1-8 ms per call here, an append
    costs microseconds, and `wire` records every step. A line cut short by a crash is ignored
    by `load` (the step it announced had not started); the newline in front keeps the next
    record off such a stump."""
    line = "\n" + fastjson.dumps(record.to_dict(), separators=(",", ":")) + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | mode, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise RunncError(f"cannot write: {exc.strerror}", where=path) from None


def load(state_dir: str | os.PathLike[str]) -> NetRecord:
    """Read and validate `state_dir/net.json`; RunncError names what is missing or wrong."""
    path = os.path.join(state_dir, NET_JSON)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise RunncError(
            "no network record (the container has no wired network)", where=path
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise RunncError(f"cannot read: {reason}", where=path) from None
    data, error = _newest(text)
    if error is not None:
        raise RunncError(f"not valid JSON: {error}", where=path) from None
    return NetRecord.from_dict(data, where=path)


def _newest(text: str) -> tuple[Any, str | None]:
    """The newest complete record: the last line that parses (what follows the last newline
    was cut short), or the whole text as one document (a file written by hand)."""
    lines = text.split("\n")
    for line in reversed(lines[:-1]):
        try:
            return fastjson.loads(line), None
        except (ValueError, RecursionError):
            continue
    try:
        return fastjson.loads(text), None
    except (ValueError, RecursionError):
        pass
    import json  # only to say what is wrong, in json's words

    try:
        return json.loads(text), None
    except (ValueError, RecursionError) as exc:
        return None, str(exc)


def describe(record: NetRecord) -> str:
    """Human-readable summary for `runnc-py net show`."""
    lines: list[str] = []
    nics = {n.iface: n for n in record.wired.devices} if record.wired else {}
    for iface in record.facts.interfaces:
        nic = nics.get(iface.name)
        head = f"{nic.guest_device} <- tap {nic.tap} <-> {iface.name}" if nic else iface.name
        lines.append(f"{head}: mac {iface.mac} mtu {iface.mtu}")
        lines += [f"  inet {a}" for a in iface.ipv4]
        lines += [f"  inet6 {a}" for a in iface.ipv6]
        lines += [f"  route {r}" for r in iface.routes]
    dns = record.facts.dns
    if dns.nameservers or dns.search:
        lines.append(
            f"dns: nameservers {' '.join(dns.nameservers) or '-'}; "
            f"search {' '.join(dns.search) or '-'}"
        )
    if record.wired:
        where = record.wired.netns or "(the runtime's own namespace)"
        lines.append(f"netns: {where}")
    lines.append(f"config ({record.config_kind}): {record.config or '-'}")
    return "\n".join(lines)
