"""`create` reading an image's settings back from the container's rootfs (effectful shell of
runnc_py.image.settings and runnc_py.image.urunc).

Precedence, lowest first: urunc's settings (its config.json annotations when complete, else
/urunc.json), then /runnc-py.json, then the config.json annotations `org.runnc-py.*` (what a
user sets per container wins over what the image says).
"""

from __future__ import annotations

import os

from runnc_py.errors import RunncError
from runnc_py.image.settings import SETTINGS_FILE, parse_settings_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from runnc_py.image.urunc import UruncSettings

READ_LIMIT = 64 * 1024 + 1
URUNC_PREFIX = "com.urunc.unikernel."  # runnc_py.image.urunc's (imported only when needed)
URUNC_FILE = "/urunc.json"


class EffectiveSettings:
    """The annotations `create` acts on, and a guest command line an urunc image fixes.
    (A plain class: a dataclass costs `create`, on the engines' hot path, half a millisecond.)"""

    __slots__ = ("annotations", "cmdline")

    def __init__(
        self, annotations: Mapping[str, str], cmdline: tuple[str, ...] | None = None
    ) -> None:
        self.annotations = annotations
        self.cmdline = cmdline


def _read_in_root(root_fd: int, path: str) -> bytes | None:
    """PATH's bytes inside the rootfs, or None when there is no such file."""
    from runnc_py.oci.rootpath import open_regular_file

    where = f"{path} in the rootfs"
    try:
        fd = open_regular_file(root_fd, path, os.O_RDONLY | os.O_NONBLOCK, where=where)
    except RunncError as exc:
        if "not found in the rootfs" in exc.message:
            return None
        raise
    try:
        return os.read(fd, READ_LIMIT)
    except OSError as exc:
        raise RunncError(f"cannot read: {exc.strerror}", where=where) from None
    finally:
        os.close(fd)


def effective_settings(annotations: Mapping[str, str], root_fd: int) -> EffectiveSettings:
    """ANNOTATIONS (config.json's) merged over what the image in ROOT_FD carries."""
    merged: dict[str, str] = {}
    cmdline = None
    urunc = _urunc_settings(annotations, root_fd)
    if urunc is not None:
        merged.update(urunc.settings)
        cmdline = urunc.cmdline
    data = _read_in_root(root_fd, SETTINGS_FILE)
    if data is not None:
        merged.update(parse_settings_file(data, where=f"{SETTINGS_FILE} in the rootfs"))
    if not merged:
        return EffectiveSettings(annotations)
    merged.update(annotations)
    return EffectiveSettings(merged, cmdline)


def _urunc_settings(annotations: Mapping[str, str], root_fd: int) -> UruncSettings | None:
    """urunc's settings from the annotations when complete, else from /urunc.json, else None.
    runnc_py.image.urunc (base64 and all) is imported only for an urunc image."""
    data = None
    if not any(k.startswith(URUNC_PREFIX) for k in annotations):
        data = _read_in_root(root_fd, URUNC_FILE)
        if data is None:
            return None
    from runnc_py.image import urunc

    fields = urunc.fields_of(annotations)
    if urunc.complete(fields):
        return urunc.to_settings(fields, where=f"annotations {URUNC_PREFIX}*")
    if data is None:
        data = _read_in_root(root_fd, URUNC_FILE)
        if data is None:
            return None
    return urunc.to_settings(urunc.parse_urunc_file(data), where=f"{URUNC_FILE} in the rootfs")
