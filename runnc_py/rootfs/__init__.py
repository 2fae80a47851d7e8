"""ext4 root filesystems for LKL guests, built from container layers and cached by content.

Public API (see docs/rootfs.md):

    build_image(source, output, *, size=None, headroom=None, devices="safe", from_layers=False)
    container_image(source, dest, *, cache_dir=None, size=None, headroom=None, devices="safe",
                    from_layers=False, use_cache=True)
    detect(source, *, from_layers=False) -> Source
    Cache(resolve_cache_dir(cache_dir)).entries() / .gc(all_=False, max_age=...)
    parse_size(text, where=...), sizes_from_annotations(annotations)
"""

from __future__ import annotations

from runnc_py.rootfs.cache import Cache, CacheEntry, resolve_cache_dir
from runnc_py.rootfs.image import ImageInfo, build_image, container_image
from runnc_py.rootfs.paths import DevicePolicy
from runnc_py.rootfs.size import (
    HEADROOM_ANNOTATION,
    SIZE_ANNOTATION,
    parse_size,
    sizes_from_annotations,
)
from runnc_py.rootfs.sources import Source, detect

__all__ = [
    "HEADROOM_ANNOTATION",
    "SIZE_ANNOTATION",
    "Cache",
    "CacheEntry",
    "DevicePolicy",
    "ImageInfo",
    "Source",
    "build_image",
    "container_image",
    "detect",
    "parse_size",
    "resolve_cache_dir",
    "sizes_from_annotations",
]
