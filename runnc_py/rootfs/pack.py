"""Write layer stacks as an OCI image layout or a `docker save` tarball.

For tests and benchmarks on machines without skopeo/umoci/docker: the output follows the
image-spec (oci-layout, index.json, blobs/sha256) and Docker's save format (manifest.json,
config with rootfs.diff_ids, ID/layer.tar), so the readers are exercised on real formats.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform
import subprocess
import tarfile
from pathlib import Path

_GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _config(layers: list[bytes]) -> bytes:
    arch = _GOARCH.get(platform.machine(), platform.machine())
    return json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [_sha(layer) for layer in layers]},
        }
    ).encode()


def compress(data: bytes, how: str) -> bytes:
    """`none`, `gzip` or `zstd` (the zstd program)."""
    if how == "gzip":
        return gzip.compress(data, compresslevel=1, mtime=0)
    if how == "zstd":
        argv = ["zstd", "-q", "-c", "-1"]
        return subprocess.run(argv, input=data, capture_output=True, check=True).stdout
    return data


def write_oci_layout(directory: Path, layers: list[bytes], compression: str = "gzip") -> list[str]:
    """An OCI image layout of uncompressed layer tars `layers`; returns the layer digests."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        digest = _sha(data)
        (blobs / digest.split(":")[1]).write_bytes(data)
        return digest

    suffix = {"none": "", "gzip": "+gzip", "zstd": "+zstd"}[compression]
    descriptors = []
    for layer in layers:
        blob = compress(layer, compression)
        descriptors.append(
            {
                "mediaType": f"application/vnd.oci.image.layer.v1.tar{suffix}",
                "digest": put(blob),
                "size": len(blob),
            }
        )
    config = _config(layers)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": put(config),
                "size": len(config),
            },
            "layers": descriptors,
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": put(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (directory / "index.json").write_text(json.dumps(index))
    return [d["digest"] for d in descriptors]


def write_docker_save(path: Path, layers: list[bytes], tag: str = "test:latest") -> None:
    """A `docker save` tarball (the classic ID/layer.tar form) of `layers`."""
    config = _config(layers)
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    names = []
    with tarfile.open(path, "w") as out:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            out.addfile(info, io.BytesIO(data))

        for n, layer in enumerate(layers):
            layer_id = hashlib.sha256(f"{n}".encode() + layer).hexdigest()
            directory = tarfile.TarInfo(layer_id)
            directory.type = tarfile.DIRTYPE
            directory.mode = 0o755
            out.addfile(directory)
            add(f"{layer_id}/VERSION", b"1.0")
            add(f"{layer_id}/layer.tar", layer)
            names.append(f"{layer_id}/layer.tar")
        add(config_name, config)
        manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": names}]
        add("manifest.json", json.dumps(manifest).encode())
