"""What a rootfs can be built from, detected from the path, and each kind's cache identity.

- a directory (a bundle's rootfs, maybe a read-only overlay mount): read as is;
- an OCI image layout directory (`oci-layout`, `index.json`, `blobs/`) or the same packed in a
  tar (an "OCI archive"): index → manifest → layers;
- a `docker save` tarball (`manifest.json` → `Layers`, diff_ids from the config);
- any other tar (plain, gzip or zstd), e.g. `docker export`: one layer.

Layer blobs are read in place (from the directory, or as members of the outer tar) and never
unpacked to disk; their digests are verified while they stream (see tarstream).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from runnc_py.errors import RunncError
from runnc_py.rootfs.paths import split_name
from runnc_py.rootfs.tarstream import GZIP_MAGIC, ZSTD_MAGIC, bounded_tarinfo

_DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
_MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}
_INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
_MAX_JSON = 16 << 20  # manifests and configs are small; refuse absurd ones before parsing
# An image archive (docker save, OCI archive) has a few members per layer. A tar with more is
# a plain layer: detection stops reading its headers there (a tar of 10**6 files would
# otherwise be indexed whole, in memory, before the build even starts).
MAX_ARCHIVE_MEMBERS = 10_000
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "s390x": "s390x"}

KIND_TEXT = {
    "directory": "directory",
    "oci-layout": "OCI image layout",
    "oci-archive": "OCI image archive (tar)",
    "docker-save": "docker-save tarball",
    "tar": "tar archive (one layer)",
}


@dataclass(frozen=True)
class LayerRef:
    """One layer to apply: how to open its blob and what to check it against."""

    name: str  # for messages: "layer 2/5 (sha256:abc…)"
    open: Callable[[], contextlib.AbstractContextManager[IO[bytes]]]
    digest: str | None = None
    digest_of: str = "compressed"  # or "uncompressed" (Docker diff_ids)
    size: int | None = None


@dataclass
class Source:
    """A detected source: its kind, its layers (none for a directory), its cache identity."""

    kind: str
    path: Path
    layers: list[LayerRef] = field(default_factory=list)
    identity: Callable[[], str | None] = lambda: None

    def describe(self) -> str:
        text = f"{KIND_TEXT[self.kind]} {self.path}"
        return (
            f"{text} ({len(self.layers)} layers)" if self.kind not in ("directory", "tar") else text
        )


def _stat_identity(path: Path) -> str:
    st = os.stat(path)
    stamp = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
    return f"{os.path.realpath(path)}:{stamp}"


# -- blob stores: an OCI layout directory, or the members of an outer tar ------------------


class _DirStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def has(self, name: str) -> bool:
        return (self.root / name).is_file()

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        parts = split_name(name, where=f"{self.root}: {name}")
        path = self.root.joinpath(*parts)
        # Blobs are plain files of the layout; a symlink could point anywhere on the host.
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise RunncError(f"cannot open {name}: {exc.strerror}", where=str(self.root)) from None
        with os.fdopen(fd, "rb") as f:
            yield f


class _TarStore:
    def __init__(self, path: Path, members: dict[str, tarfile.TarInfo]) -> None:
        self.path = path
        self.members = members

    def has(self, name: str) -> bool:
        return name in self.members

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        member = self.members.get(name)
        if member is None:
            raise RunncError(f"archive has no member {name!r}", where=str(self.path))
        with tarfile.open(self.path, "r:", tarinfo=bounded_tarinfo(str(self.path))) as archive:
            try:
                f = archive.extractfile(member)  # follows in-archive (sym)links itself
            except (tarfile.TarError, KeyError) as exc:
                raise RunncError(
                    f"cannot read member {name!r}: {exc}", where=str(self.path)
                ) from None
            if f is None:
                raise RunncError(f"member {name!r} is not a file", where=str(self.path))
            yield f


Store = _DirStore | _TarStore


def _read_json(store: Store, name: str, where: str, digest: str | None = None) -> Any:
    with store.open(name) as f:
        data = f.read(_MAX_JSON + 1)
    if len(data) > _MAX_JSON:
        raise RunncError(f"{name} is larger than {_MAX_JSON} bytes", where=where)
    if digest is not None:
        import hashlib

        algorithm, _, expected = digest.partition(":")
        if hashlib.new(algorithm, data).hexdigest() != expected:
            raise RunncError(f"{name} does not match its digest {digest}", where=where)
    try:
        return json.loads(data)
    except ValueError as exc:
        raise RunncError(f"{name} is not valid JSON: {exc}", where=where) from None
    except RecursionError:  # the C scanner stops at the interpreter's recursion limit
        raise RunncError(f"{name} is nested too deep", where=where) from None


def _blob_name(digest: Any, where: str) -> str:
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        raise RunncError(f"invalid digest {digest!r}", where=where)
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


# -- OCI image layout ---------------------------------------------------------------------


def _platform_matches(descriptor: dict[str, Any]) -> bool:
    wanted = _GOARCH.get(platform.machine(), platform.machine())
    plat = descriptor.get("platform") or {}
    return plat.get("os", "linux") == "linux" and plat.get("architecture", wanted) == wanted


def _pick(descriptors: Any, where: str) -> dict[str, Any]:
    if not isinstance(descriptors, list) or not descriptors:
        raise RunncError("image index lists no manifests", where=where)
    usable = [d for d in descriptors if isinstance(d, dict) and _platform_matches(d)]
    if not usable:
        raise RunncError(f"no manifest for linux/{platform.machine()}", where=where)
    if len(usable) > 1:
        # Several images for this platform (e.g. several tags): only one can be meant.
        names = [
            d.get("annotations", {}).get("org.opencontainers.image.ref.name", d.get("digest"))
            for d in usable
        ]
        raise RunncError(
            f"layout holds {len(usable)} images ({', '.join(map(str, names))})", where=where
        )
    return usable[0]


def _oci_layers(store: Store, where: str) -> list[LayerRef]:
    index = _read_json(store, "index.json", where)
    descriptor = _pick(index.get("manifests") if isinstance(index, dict) else None, where)
    for _ in range(8):  # nested indexes (multi-platform images); bounded against loops
        media = descriptor.get("mediaType", "")
        doc = _read_json(
            store, _blob_name(descriptor.get("digest"), where), where, descriptor["digest"]
        )
        if media in _INDEX_TYPES or (not media and "manifests" in doc):
            descriptor = _pick(doc.get("manifests"), where)
            continue
        if media and media not in _MANIFEST_TYPES:
            raise RunncError(f"unsupported manifest media type {media!r}", where=where)
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise RunncError("manifest has no layers list", where=where)
        refs = []
        for i, layer in enumerate(layers):
            if not isinstance(layer, dict):
                raise RunncError("manifest layer is not an object", where=where)
            digest = layer.get("digest")
            name = _blob_name(digest, where)
            size = layer.get("size")
            refs.append(
                LayerRef(
                    name=f"layer {i + 1}/{len(layers)} ({str(digest)[:19]}…)",
                    open=lambda n=name: store.open(n),
                    digest=digest,
                    size=size if isinstance(size, int) else None,
                )
            )
        return refs
    raise RunncError("image indexes nested too deep", where=where)


# -- docker save ------------------------------------------------------------------------------


def _docker_layers(store: Store, where: str) -> list[LayerRef]:
    manifest = _read_json(store, "manifest.json", where)
    if not isinstance(manifest, list) or not manifest:
        raise RunncError("manifest.json lists no images", where=where)
    if len(manifest) > 1:
        tags = [t for m in manifest if isinstance(m, dict) for t in m.get("RepoTags") or []]
        raise RunncError(
            f"tarball holds {len(manifest)} images ({', '.join(tags)}); save one", where=where
        )
    image = manifest[0]
    layers = image.get("Layers") if isinstance(image, dict) else None
    if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
        raise RunncError("manifest.json has no Layers list", where=where)
    config_name = image.get("Config")
    diff_ids: list[Any] = []
    if isinstance(config_name, str):
        config = _read_json(store, "/".join(split_name(config_name, where=where)), where)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(layers):
        raise RunncError(
            f"config lists {len(diff_ids)} diff_ids for {len(layers)} layers", where=where
        )
    refs = []
    for i, (name, diff_id) in enumerate(zip(layers, diff_ids, strict=True)):
        _blob_name(diff_id, where)  # validates the digest's form
        member = "/".join(split_name(name, where=where))
        refs.append(
            LayerRef(
                name=f"layer {i + 1}/{len(layers)} ({member})",
                open=lambda n=member: store.open(n),
                digest=diff_id,
                digest_of="uncompressed",
            )
        )
    return refs


# -- detection ------------------------------------------------------------------------------


def _directory_identity(path: Path) -> str:
    from runnc_py.rootfs.overlay import overlay_fingerprint
    from runnc_py.rootfs.walk import scan_tree

    overlay = overlay_fingerprint(str(path))
    if overlay is not None:
        return "overlay:" + overlay
    return "tree:" + str(scan_tree(path, fingerprint=True, where=str(path)).fingerprint)


def _file_layer(path: Path) -> LayerRef:
    @contextlib.contextmanager
    def opener() -> Iterator[IO[bytes]]:
        with open(path, "rb") as f:
            yield f

    return LayerRef(name=f"layer 1/1 ({path.name})", open=opener)


def detect(source: str | Path, *, from_layers: bool = False) -> Source:
    """Work out what `source` is. `from_layers` insists on a layered image."""
    path = Path(source)
    where = str(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise RunncError(f"cannot use rootfs source: {exc.strerror}", where=where) from None
    found: Source
    if stat.S_ISDIR(st.st_mode):
        if (path / "oci-layout").is_file() and (path / "index.json").is_file():
            layers = _oci_layers(_DirStore(path), where)
            digests = [ref.digest for ref in layers]
            found = Source("oci-layout", path, layers, lambda: "oci:" + ",".join(map(str, digests)))
        else:
            found = Source("directory", path, [], lambda: _directory_identity(path))
    elif stat.S_ISREG(st.st_mode):
        found = _detect_file(path, where)
    else:
        raise RunncError("rootfs source is neither a directory nor a file", where=where)
    if from_layers and found.kind in ("directory", "tar"):
        raise RunncError(
            f"--from-layers: source is a {KIND_TEXT[found.kind]}, not an OCI layout or "
            "docker-save tarball",
            where=where,
        )
    return found


def _docker_shaped(store: Store, where: str) -> bool:
    """A top-level manifest.json of `docker save`, not some rootfs's own file of that name."""
    try:
        manifest = _read_json(store, "manifest.json", where)
    except RunncError:
        return False
    return (
        isinstance(manifest, list)
        and bool(manifest)
        and all(isinstance(m, dict) and "Layers" in m for m in manifest)
    )


def _archive_members(path: Path, where: str) -> dict[str, tarfile.TarInfo] | None:
    """The members of an image archive by name; None once the tar proves to be a plain layer
    (more than MAX_ARCHIVE_MEMBERS members)."""
    found: dict[str, tarfile.TarInfo] = {}
    with tarfile.open(path, "r:", tarinfo=bounded_tarinfo(where)) as archive:
        for count, member in enumerate(archive):
            if count >= MAX_ARCHIVE_MEMBERS:
                return None
            found[member.name.removeprefix("./")] = member
    return found


def _detect_file(path: Path, where: str) -> Source:
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic.startswith(GZIP_MAGIC) or magic == ZSTD_MAGIC:
        return Source("tar", path, [_file_layer(path)], lambda: "tar:" + _stat_identity(path))
    try:
        members = _archive_members(path, where)
    except tarfile.TarError as exc:
        raise RunncError(f"not a directory, tar or compressed tar: {exc}", where=where) from None
    if members is None:
        return Source("tar", path, [_file_layer(path)], lambda: "tar:" + _stat_identity(path))
    store = _TarStore(path, members)
    if store.has("manifest.json") and _docker_shaped(store, where):
        layers = _docker_layers(store, where)
        ids = [ref.digest for ref in layers]
        return Source("docker-save", path, layers, lambda: "docker:" + ",".join(map(str, ids)))
    if store.has("oci-layout") and store.has("index.json"):
        layers = _oci_layers(store, where)
        digests = [ref.digest for ref in layers]
        return Source("oci-archive", path, layers, lambda: "oci:" + ",".join(map(str, digests)))
    return Source("tar", path, [_file_layer(path)], lambda: "tar:" + _stat_identity(path))
