"""The effectful shell of `install`/`uninstall`: read a configuration file, back it up once,
write it atomically, show the change as a unified diff.

Record of what install changed, next to each file it touched:
* `FILE.runnc-py.bak`: FILE's bytes before the first install changed it (kept until uninstall);
* `FILE.runnc-py.json`: `{"created": bool, "installed": "sha256:...", "names": [...]}`:
  whether FILE existed before install, the digest of what install last wrote, and the runtime
  names registered (`install --name`; uninstall restores the backup with the last of them).
`uninstall` uses them to remove exactly what install added: when FILE still has the digest
install wrote, the backup's bytes come back, or the file goes if install created it (an
install/uninstall round trip leaves the file byte-identical, whatever options install had);
otherwise (someone edited FILE since) only our entries go, structurally, and every other
change stays.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass

from runnc_py.engines import EngineConfig, Registration
from runnc_py.errors import RunncError

BACKUP_SUFFIX = ".runnc-py.bak"
RECORD_SUFFIX = ".runnc-py.json"
NEW_FILE_MODE = 0o644


@dataclass(frozen=True)
class Change:
    """What install/uninstall does to one file. `new` None: delete the file."""

    engine: str
    path: str
    old: str | None
    new: str | None
    backup: bool = False  # install: save `old` as the backup (first install only)
    record: str | None = None  # install: the record to write (see the module docstring)
    forget: bool = False  # uninstall: drop the backup and the record afterwards

    @property
    def changes(self) -> bool:
        return self.old != self.new

    def diff(self) -> str:
        lines = difflib.unified_diff(
            (self.old or "").splitlines(keepends=True),
            (self.new or "").splitlines(keepends=True),
            fromfile=self.path if self.old is not None else "/dev/null",
            tofile=self.path if self.new is not None else "/dev/null",
        )
        text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
        return text


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise RunncError(f"cannot read: {reason}", where=path) from None


# ---------------------------------------------------------------------------- plans (read only)


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def read_record(path: str) -> dict[str, object] | None:
    """FILE's install record, or None (never installed here, or the record is unreadable:
    uninstall then removes only the runtime entry)."""
    text = read_text(path + RECORD_SUFFIX)
    try:
        record = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _record_text(created: bool, installed: str, names: list[str]) -> str:
    return json.dumps({"created": created, "installed": installed, "names": sorted(names)}) + "\n"


def _names(record: dict[str, object] | None, default: str) -> list[str]:
    names = record.get("names") if record is not None else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return [default]  # a record without names: written for one registration
    return names


def plan_install(config: EngineConfig, path: str, reg: Registration) -> Change:
    config = config.at(path)
    old = read_text(path)
    new = config.add(old, reg)
    if new == old:
        return Change(config.engine, path, old, new)
    previous = read_record(path)
    created = old is None if previous is None else bool(previous.get("created"))
    names = sorted({*(_names(previous, reg.name) if previous else []), reg.name})
    record = _record_text(created, digest(new), names)
    return Change(config.engine, path, old, new, backup=previous is None, record=record)


def plan_uninstall(config: EngineConfig, path: str, reg: Registration) -> Change:
    """What uninstall does to PATH for REG.name. Other names install registered in the same
    file (`install --name`) keep their entries, the backup and the record, until the last."""
    config = config.at(path)
    current = read_text(path)
    record = read_record(path)
    backup = read_text(path + BACKUP_SUFFIX)
    created = bool(record and record.get("created"))
    recorded = record is not None or backup is not None
    if current is None:
        return Change(config.engine, path, None, None, forget=recorded)
    untouched = record is not None and record.get("installed") == digest(current)
    others = [n for n in _names(record, reg.name) if n != reg.name] if record else []
    if others:
        # Only our runtime entry goes (what the others share, e.g. podman's ulimits, stays).
        new: str | None = config.remove(current, None, reg)
        installed = digest(new) if untouched else str(record.get("installed"))  # type: ignore[union-attr]
        return Change(config.engine, path, current, new,
                      record=_record_text(created, installed, others))  # fmt: skip
    if untouched:
        new = None if created else backup  # untouched since install: as it was, exactly
    else:
        before = backup if backup is not None else ("" if created else None)
        new = config.remove(current, before, reg)
        if created and config.bare(new):
            new = None
    return Change(config.engine, path, current, new, forget=recorded)


# ---------------------------------------------------------------------------- effects


def apply(change: Change) -> None:
    """Carry CHANGE out: backup first, then the atomic write (or the removal), then the
    record."""
    if change.backup and change.old is not None:
        _write_atomic(change.path + BACKUP_SUFFIX, change.old, _mode(change.path))
    if change.changes:
        if change.new is None:
            _unlink(change.path)
        else:
            _write_atomic(change.path, change.new, _mode(change.path))
    if change.record is not None:  # after the file: a record never names what was not written
        _write_atomic(change.path + RECORD_SUFFIX, change.record, NEW_FILE_MODE)
    if change.forget:
        _unlink(change.path + BACKUP_SUFFIX)
        _unlink(change.path + RECORD_SUFFIX)


def _mode(path: str) -> int:
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return NEW_FILE_MODE


def _write_atomic(path: str, text: str, mode: int) -> None:
    """Write TEXT to PATH through a temporary file in the same directory and a rename, so a
    daemon starting meanwhile reads either the old file or the new one, never half of one."""
    directory = os.path.dirname(path) or "."
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".runnc-py-", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise RunncError(f"cannot write: {exc.strerror}", where=path) from None
    finally:
        if tmp is not None:
            _unlink(tmp)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise RunncError(f"cannot remove: {exc.strerror}", where=path) from None
