"""`runnc-py image build`: a unikernel (and optionally a root filesystem) as a container image
that `docker load`, `podman load` and `ctr images import` accept.

The verb, step by step: check the unikernel (a Solo5 ELF for this machine) and the options →
settings (labels, /runnc-py.json, manifest annotations) → layers (rootfs, then the unikernel's)
→ image config (Entrypoint = the unikernel) → the archive, written to a temporary file next to
the output and renamed into place (a failed build leaves nothing behind).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import tempfile
from dataclasses import dataclass, field
from typing import Any

from runnc_py.errors import RunncError
from runnc_py.image import settings as image_settings
from runnc_py.image.archive import FORMATS, ImageBlobs, manifest_json, write_archive
from runnc_py.image.blobs import Blob, BlobDir
from runnc_py.image.layers import fixed_mtime, image_layers, top_layer
from runnc_py.image.reference import Reference

GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}
TOOL = "runnc-py image build"


@dataclass(frozen=True)
class BuildRequest:
    unikernel: str  # host path of the unikernel file
    reference: Reference
    output: str
    fmt: str = "docker-archive"
    rootfs: str | None = None  # directory, tar, docker-save tarball or OCI archive/layout
    path_in_image: str | None = None  # default: /<file name>
    monitor: str | None = None
    mem_mb: int | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()  # the image's Cmd: the guest's default command line


@dataclass(frozen=True)
class BuildResult:
    output: str
    reference: Reference
    config_digest: str  # the image ID engines show (sha256 of the config)
    manifest_digest: str
    layers: int
    settings: dict[str, str]


def check(req: BuildRequest) -> tuple[str, dict[str, str]]:
    """The image path of the unikernel and the image's settings; raises on bad input."""
    from runnc_py.oci.plan import _check_keys
    from runnc_py.unikernel.elf import load_unikernel

    if req.fmt not in FORMATS:
        raise RunncError(f"unknown format {req.fmt!r} (known: {', '.join(FORMATS)})", "--format")
    image = load_unikernel(req.unikernel)  # one clear line if it is no Solo5 unikernel
    target = image.target.name.lower()
    if req.monitor is not None and req.monitor != target:
        raise RunncError(
            f"{req.unikernel} is an {target} unikernel; --monitor {req.monitor} cannot run it",
            where="--monitor",
        )
    if req.mem_mb is not None and req.mem_mb < 2:
        raise RunncError(f"must be at least 2 MiB, got {req.mem_mb}", where="--mem")
    path = req.path_in_image or "/" + os.path.basename(req.unikernel)
    if not path.startswith("/") or ".." in path.split("/"):
        raise RunncError(f"must be an absolute path without '..', got {path!r}", where="--path")
    settings = image_settings.image_settings(
        path, monitor=req.monitor, mem_mb=req.mem_mb, annotations=req.annotations
    )
    _check_keys(settings)  # a typo in an org.runnc-py.* key fails now, not at `create`
    if not os.path.isdir(os.path.dirname(os.path.abspath(req.output))):
        raise RunncError("directory does not exist", where=os.path.dirname(req.output) or ".")
    return path, settings


def _created() -> str:
    text = os.environ.get("SOURCE_DATE_EPOCH", "")
    when = (
        datetime.datetime.fromtimestamp(int(text), datetime.UTC)
        if text.isdigit()
        else datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    )
    return when.isoformat().replace("+00:00", "Z")


def platform_of() -> dict[str, str]:
    return {"architecture": GOARCH.get(platform.machine(), platform.machine()), "os": "linux"}


def config_json(
    req: BuildRequest, path: str, settings: dict[str, str], layers: list[Blob]
) -> bytes:
    """The image config: Entrypoint = the unikernel, Cmd = its default arguments, labels."""
    created = _created()
    history: list[dict[str, Any]] = []
    if req.rootfs is not None:
        for _ in layers[:-1]:
            history.append({"created": created, "created_by": f"{TOOL} --rootfs {req.rootfs}"})
    history.append({"created": created, "created_by": f"{TOOL}: {path} and /runnc-py.json"})
    config: dict[str, Any] = {"Entrypoint": [path], "Labels": image_settings.labels(settings)}
    if req.args:
        config["Cmd"] = list(req.args)
    return json.dumps(
        {
            "created": created,
            **platform_of(),
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
            "history": history,
        },
        sort_keys=True,
    ).encode()


def build(req: BuildRequest) -> BuildResult:
    path, settings = check(req)
    out_dir = os.path.dirname(os.path.abspath(req.output))
    blobs = BlobDir(out_dir)
    tmp = None
    try:
        layers = image_layers(req.rootfs, blobs) if req.rootfs is not None else []
        layers.append(top_layer(req.unikernel, path, image_settings.settings_file(settings), blobs))
        config = blobs.put_bytes(config_json(req, path, settings, layers))
        image = ImageBlobs(config, tuple(layers), settings, req.reference)
        manifest = blobs.put_bytes(manifest_json(image))
        fd, tmp = tempfile.mkstemp(prefix=".runnc-py-image-", dir=out_dir)
        with os.fdopen(fd, "wb") as out:
            write_archive(out, image, manifest, platform_of(), fmt=req.fmt, mtime=fixed_mtime())
        os.chmod(tmp, 0o644)
        os.replace(tmp, req.output)
        tmp = None
    except OSError as exc:
        raise RunncError(f"cannot write: {exc.strerror}", where=req.output) from None
    finally:
        blobs.close()
        if tmp is not None:
            os.unlink(tmp)
    return BuildResult(
        req.output, req.reference, config.digest, manifest.digest, len(layers), settings
    )
