"""Image names: `NAME[:TAG]` checked, and the fully qualified form containerd records."""

from __future__ import annotations

import re
from dataclasses import dataclass

from runnc_py.errors import RunncError

# distribution/reference's grammar, reduced: lowercase path components, optional registry
# (with a dot, a port or `localhost`), a tag; no digests (an archive is named by tags).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?)"
_NAME = re.compile(rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
DEFAULT_DOMAIN = "docker.io"


@dataclass(frozen=True)
class Reference:
    name: str  # as given, without the tag
    tag: str

    @property
    def short(self) -> str:
        """`name:tag` as the user wrote it (Docker's RepoTags, the OCI ref.name)."""
        return f"{self.name}:{self.tag}"

    @property
    def full(self) -> str:
        """`docker.io/library/name:tag` (containerd's io.containerd.image.name)."""
        first, _, rest = self.name.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            return self.short
        path = self.name if rest else f"library/{self.name}"
        return f"{DEFAULT_DOMAIN}/{path}:{self.tag}"


def parse_reference(text: str, *, where: str = "-t") -> Reference:
    name, tag = text, "latest"
    slash, colon = text.rfind("/"), text.rfind(":")
    if colon > slash:
        name, tag = text[:colon], text[colon + 1 :]
    if not _NAME.match(name) or len(name) > 255:
        raise RunncError(
            f"invalid image name {name!r} (lowercase letters, digits, separators . _ - /)",
            where=where,
        )
    if not _TAG.match(tag):
        raise RunncError(f"invalid tag {tag!r}", where=where)
    return Reference(name, tag)
