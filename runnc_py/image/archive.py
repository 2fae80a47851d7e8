"""Image archives: an OCI image layout in a tar (`oci-archive`), and `docker save`'s format
(`docker-archive`).

The docker-archive written here is the one Docker 25+ saves: `manifest.json` (what
`docker load` reads: config and layer paths, RepoTags) over the same `blobs/sha256/` tree,
`oci-layout` and `index.json` an OCI reader wants, so the one file loads everywhere. The
oci-archive is the OCI layout alone. Layers are uncompressed tars (their digest is their
diff_id); tar entries are written in a fixed order with fixed times, so equal input gives an
equal archive.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from typing import IO, Any

from runnc_py.image.blobs import Blob
from runnc_py.image.reference import Reference

FORMATS = ("docker-archive", "oci-archive")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


@dataclass(frozen=True)
class ImageBlobs:
    """A built image: its config and layers as blobs, its manifest annotations, its name."""

    config: Blob
    layers: tuple[Blob, ...]
    annotations: dict[str, str]
    reference: Reference


def _descriptor(media_type: str, blob: Blob, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": blob.digest, "size": blob.size, **extra}


def manifest_json(image: ImageBlobs) -> bytes:
    """The OCI image manifest (the annotations ride along for tools that read them)."""
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor(OCI_CONFIG, image.config),
        "layers": [_descriptor(OCI_LAYER, layer) for layer in image.layers],
    }
    if image.annotations:
        manifest["annotations"] = dict(sorted(image.annotations.items()))
    return json.dumps(manifest, separators=(",", ":")).encode()


def index_json(image: ImageBlobs, manifest: Blob, platform: dict[str, str]) -> bytes:
    names = {REF_NAME: image.reference.short, CONTAINERD_NAME: image.reference.full}
    entry = _descriptor(OCI_MANIFEST, manifest, annotations=names, platform=platform)
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}).encode()


def docker_manifest_json(image: ImageBlobs) -> bytes:
    return json.dumps(
        [
            {
                "Config": f"blobs/sha256/{image.config.hex}",
                "RepoTags": [image.reference.short],
                "Layers": [f"blobs/sha256/{layer.hex}" for layer in image.layers],
            }
        ]
    ).encode()


class _Writer:
    """Tar entries in a fixed form: owner 0:0, mode 0644/0755, time MTIME."""

    def __init__(self, out: IO[bytes], mtime: int) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]  # noqa: SIM115
        self.mtime = mtime
        self.seen: set[str] = set()

    def _info(self, name: str, size: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.type = size, self.mtime, kind
        info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
        return info

    def _parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            directory = "/".join(parts[:i])
            if directory not in self.seen:
                self.seen.add(directory)
                self.tar.addfile(self._info(directory + "/", 0, tarfile.DIRTYPE))

    def data(self, name: str, data: bytes) -> None:
        import io

        self._parents(name)
        self.tar.addfile(self._info(name, len(data)), io.BytesIO(data))

    def blob(self, blob: Blob) -> None:
        name = f"blobs/sha256/{blob.hex}"
        if name in self.seen:
            return  # the same blob twice (e.g. two equal layers): stored once
        self.seen.add(name)
        self._parents(name)
        with open(blob.path, "rb") as f:
            self.tar.addfile(self._info(name, blob.size), f)

    def close(self) -> None:
        self.tar.close()


def write_archive(
    out: IO[bytes],
    image: ImageBlobs,
    manifest: Blob,
    platform: dict[str, str],
    *,
    fmt: str,
    mtime: int,
) -> None:
    """The archive of IMAGE (MANIFEST: its manifest_json blob) in format FMT into OUT."""
    writer = _Writer(out, mtime)
    writer.data("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    writer.data("index.json", index_json(image, manifest, platform))
    if fmt == "docker-archive":
        writer.data("manifest.json", docker_manifest_json(image))
    for blob in (manifest, image.config, *image.layers):
        writer.blob(blob)
    writer.close()
