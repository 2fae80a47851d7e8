"""Build an ext4 image from a rootfs source, directly or through the content cache.

    build_image(source, output)         build once, straight to `output`
    container_image(source, dest)       cached build + the container's own writable copy

Everything a build writes lives in one scratch directory (next to the output, or in the
cache's tmp/) and a temp image beside it; both go on any failure, so a failed build leaves
nothing behind and never a partial cache entry.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runnc_py.errors import RunncError
from runnc_py.rootfs.cache import Cache, cache_key, resolve_cache_dir
from runnc_py.rootfs.copy import clone_file
from runnc_py.rootfs.extract import DiskSink, apply_metadata
from runnc_py.rootfs.limits import Budget, BuildLimits
from runnc_py.rootfs.mkfs import Fixup, make_ext4
from runnc_py.rootfs.paths import DevicePolicy
from runnc_py.rootfs.remove import remove_tree
from runnc_py.rootfs.size import ContentStats, Layout, human, plan_layout
from runnc_py.rootfs.sources import Source, detect
from runnc_py.rootfs.tarstream import read_layer
from runnc_py.rootfs.tree import Applier
from runnc_py.rootfs.walk import scan_tree


@dataclass(frozen=True)
class ImageInfo:
    """What was built or fetched."""

    path: Path  # the image (or the container's copy)
    kind: str  # directory, oci-layout, oci-archive, docker-save, tar
    source: str  # human description of the source
    size: int  # filesystem size in bytes (= image file size)
    content_bytes: int  # file data + metadata of the tree
    entries: int  # inodes of the tree
    key: str | None = None  # cache key, None when built without the cache
    built: bool = True  # False: served from the cache without running mke2fs
    copy_method: str | None = None  # reflink | sparse-copy, for cached copies
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "source": self.source,
            "size": self.size,
            "content_bytes": self.content_bytes,
            "entries": self.entries,
            "key": self.key,
            "built": self.built,
            "copy_method": self.copy_method,
            "seconds": round(self.seconds, 6),
        }


def _as_policy(devices: DevicePolicy | str) -> DevicePolicy:
    try:
        return DevicePolicy(devices)
    except ValueError:
        choices = ", ".join(p.value for p in DevicePolicy)
        raise RunncError(
            f"unknown device policy {devices!r} (one of {choices})", where="rootfs"
        ) from None


def _check_free_space(directory: Path, stats: ContentStats) -> None:
    need = stats.data_bytes + stats.meta_bytes
    try:
        vfs = os.statvfs(directory)
    except OSError:
        return
    free = vfs.f_bavail * vfs.f_frsize
    if free < need:
        raise RunncError(
            f"no space left on the host device: image needs about {human(need)}, "
            f"{human(free)} free",
            where=str(directory),
        )


def _extract_layers(
    src: Source, tree_dir: Path, devices: DevicePolicy, limits: BuildLimits
) -> list[Fixup]:
    applier = Applier(DiskSink(tree_dir, str(src.path)), devices)
    budget = Budget(limits, str(src.path))
    for number, layer in enumerate(src.layers):
        where = f"{src.path}: {layer.name}"

        def visit(member: Any, data: Any, number: int = number, where: str = where) -> None:
            budget.count_file(where)
            applier.apply(member, data, number, where)

        with layer.open() as raw:
            read_layer(
                raw,
                visit,
                where=where,
                digest=layer.digest,
                digest_of=layer.digest_of,
                size=layer.size,
                budget=budget,
            )
    return apply_metadata(applier.tree, tree_dir)


def _build(
    src: Source,
    image: Path,
    *,
    scratch_parent: Path,
    size: int | None,
    headroom: int | None,
    devices: DevicePolicy,
    uuid: str | None,
    limits: BuildLimits,
) -> tuple[ContentStats, Layout]:
    """Build `image` (must not exist) from `src`; all scratch lives under `scratch_parent`.

    Depth, path length, decompressed bytes and file count are checked while the source is
    read, before anything reaches mke2fs (see limits.py, paths.check_path)."""
    where = str(src.path)
    try:
        work = Path(tempfile.mkdtemp(prefix=f"{image.name}.", suffix=".work", dir=scratch_parent))
    except OSError as exc:
        raise RunncError(
            f"cannot create work directory: {exc.strerror}", where=str(scratch_parent)
        ) from None
    try:
        if src.kind == "directory":
            scan = scan_tree(src.path, devices=devices, where=where, limits=limits)
            tree_dir = src.path
            fixups = []
            if (scan.root_mode, scan.root_uid, scan.root_gid) != (0o755, 0, 0):
                fixups.append(Fixup("", "dir", scan.root_mode, scan.root_uid, scan.root_gid))
        else:
            tree_dir = work / "tree"
            tree_dir.mkdir(mode=0o700)
            fixups = _extract_layers(src, tree_dir, devices, limits)
            scan = scan_tree(tree_dir, where=where)
        layout = plan_layout(scan.stats, size=size, headroom=headroom)
        _check_free_space(image.parent, scan.stats)
        make_ext4(tree_dir, image, layout, where=where, uuid=uuid, fixups=fixups, scratch=work)
        return scan.stats, layout
    finally:
        remove_tree(work, ignore_errors=True)  # iterative: any depth the layers made


def build_image(
    source: str | Path | Source,
    output: str | Path,
    *,
    size: int | None = None,
    headroom: int | None = None,
    devices: DevicePolicy | str = DevicePolicy.SAFE,
    from_layers: bool = False,
    max_size: int | None = None,
    max_files: int | None = None,
) -> ImageInfo:
    """Build an ext4 image of `source` at `output` (replaced atomically), without the cache.

    `max_size`/`max_files` bound what the build reads and creates (limits.BuildLimits)."""
    started = time.monotonic()
    limits = BuildLimits.for_request(size, max_size=max_size, max_files=max_files)
    policy = _as_policy(devices)
    src = source if isinstance(source, Source) else detect(source, from_layers=from_layers)
    output = Path(output)
    if not output.parent.is_dir():
        raise RunncError("output directory does not exist", where=str(output.parent))
    tmp = output.parent / f".{output.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        stats, layout = _build(
            src,
            tmp,
            scratch_parent=output.parent,
            size=size,
            headroom=headroom,
            devices=policy,
            uuid=None,
            limits=limits,
        )
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return ImageInfo(
        path=output,
        kind=src.kind,
        source=src.describe(),
        size=layout.size,
        content_bytes=stats.data_bytes + stats.meta_bytes,
        entries=stats.entries,
        seconds=time.monotonic() - started,
    )


def container_image(
    source: str | Path | Source,
    dest: str | Path,
    *,
    cache_dir: str | Path | None = None,
    size: int | None = None,
    headroom: int | None = None,
    devices: DevicePolicy | str = DevicePolicy.SAFE,
    from_layers: bool = False,
    use_cache: bool = True,
    max_size: int | None = None,
    max_files: int | None = None,
) -> ImageInfo:
    """The image `create` attaches: fetched from (or built into) the cache, copied to `dest`.

    The copy is the container's own (reflink or sparse copy): the guest writes to it, never
    to the cache. Concurrent calls for one key run one build; the others wait and copy.
    """
    started = time.monotonic()
    policy = _as_policy(devices)
    src = source if isinstance(source, Source) else detect(source, from_layers=from_layers)
    identity = src.identity() if use_cache else None
    if identity is None:
        return build_image(
            src,
            dest,
            size=size,
            headroom=headroom,
            devices=policy,
            max_size=max_size,
            max_files=max_files,
        )
    limits = BuildLimits.for_request(size, max_size=max_size, max_files=max_files)
    dest = Path(dest)
    key = cache_key(identity, size=size, headroom=headroom, devices=policy.value)
    cache = Cache(resolve_cache_dir(cache_dir))
    cache.ensure()
    built = False
    fd = cache.open_image(key)
    if fd is None:
        with cache.locked(key):
            fd = cache.open_image(key)  # someone may have built it while we waited
            if fd is None:
                cache.clear_tmp(key)
                tmp = cache.tmp_image(key)
                try:
                    stats, layout = _build(
                        src,
                        tmp,
                        scratch_parent=cache.tmp,
                        size=size,
                        headroom=headroom,
                        devices=policy,
                        uuid=str(uuidlib.UUID(key[:32])),
                        limits=limits,
                    )
                    cache.publish(
                        key,
                        tmp,
                        {
                            "source": src.describe(),
                            "kind": src.kind,
                            "identity": identity,
                            "size": layout.size,
                            "content_bytes": stats.data_bytes + stats.meta_bytes,
                            "entries": stats.entries,
                        },
                    )
                finally:
                    tmp.unlink(missing_ok=True)
                built = True
                fd = cache.open_image(key)
                if fd is None:
                    raise RunncError(
                        "cache entry vanished right after its build", where=str(cache.root)
                    )
    try:
        method = clone_file(fd, dest)
    finally:
        os.close(fd)
    cache.touch(key)
    cache.add_ref(key, dest)
    meta = cache.read_meta(key)
    return ImageInfo(
        path=dest,
        kind=src.kind,
        source=src.describe(),
        size=int(meta.get("size", dest.stat().st_size)),
        content_bytes=int(meta.get("content_bytes", 0)),
        entries=int(meta.get("entries", 0)),
        key=key,
        built=built,
        copy_method=method,
        seconds=time.monotonic() - started,
    )
