"""`runnc-py rootfs build|ls|gc`: ext4 root filesystems and their cache."""

from __future__ import annotations

import json
import time

import click

from runnc_py.rootfs.size import human, parse_size

_CACHE_DIR_HELP = "Cache directory (default $RUNNC_PY_CACHE_DIR, else /var/lib/runnc-py/rootfs)."


@click.group("rootfs")
def rootfs() -> None:
    """Build ext4 root filesystems for LKL guests; list and clean the image cache."""


@rootfs.command("build")
@click.argument("source")
@click.option("-o", "--output", required=True, help="Image file to write.")
@click.option(
    "--size", default=None, help="Filesystem size (e.g. 512M, 2G); default content + headroom."
)
@click.option(
    "--headroom",
    default=None,
    help="Free space on top of the content (default max(128M, content/2)).",
)
@click.option("--from-layers", is_flag=True, help="Require an OCI layout or docker-save tarball.")
@click.option("--no-cache", is_flag=True, help="Build straight to the output, bypassing the cache.")
@click.option(
    "--devices",
    type=click.Choice(["deny", "safe", "allow"]),
    default="safe",
    show_default=True,
    help="Device nodes allowed in the image "
    "(safe: null, zero, full, random, urandom, tty, console, ptmx).",
)
@click.option(
    "--max-size",
    default=None,
    help="Most decompressed layer bytes (or directory file data) to read "
    "(default: the image size, at least 4G).",
)
@click.option(
    "--max-files",
    default=None,
    help="Most tar members or directory entries (default: one per 16K of --max-size, "
    "at least 65536).",
)
@click.option("--cache-dir", default=None, help=_CACHE_DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def build(
    source: str,
    output: str,
    size: str | None,
    headroom: str | None,
    from_layers: bool,
    no_cache: bool,
    devices: str,
    max_size: str | None,
    max_files: str | None,
    cache_dir: str | None,
    as_json: bool,
) -> None:
    """Build an ext4 image from SOURCE: a directory, an OCI layout, or a docker-save tar."""
    from runnc_py.rootfs import build_image, container_image, detect
    from runnc_py.strictnum import decimal

    size_bytes = parse_size(size, where="--size") if size is not None else None
    headroom_bytes = parse_size(headroom, where="--headroom") if headroom is not None else None
    limits = {
        "max_size": parse_size(max_size, where="--max-size") if max_size is not None else None,
        "max_files": decimal(max_files, where="--max-files", low=1)
        if max_files is not None
        else None,
    }
    src = detect(source, from_layers=from_layers)
    if not as_json:
        click.echo(f"source: {src.describe()}")
    if no_cache:
        info = build_image(
            src, output, size=size_bytes, headroom=headroom_bytes, devices=devices, **limits
        )
    else:
        info = container_image(
            src,
            output,
            cache_dir=cache_dir,
            size=size_bytes,
            headroom=headroom_bytes,
            devices=devices,
            **limits,
        )
    if as_json:
        click.echo(json.dumps(info.as_json()))
        return
    if info.key is None:
        how = "built without cache"
    elif info.built:
        how = f"built into cache, copied ({info.copy_method})"
    else:
        how = f"cache hit, copied ({info.copy_method})"
    click.echo(
        f"{info.path}: ext4 {human(info.size)}, content {human(info.content_bytes)} in "
        f"{info.entries} inodes, {how}, {info.seconds:.3f} s"
    )


def _age(seconds: float) -> str:
    for unit, scale in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= scale:
            return f"{int(seconds // scale)}{unit}"
    return f"{int(seconds)}s"


@rootfs.command("ls")
@click.option("--cache-dir", default=None, help=_CACHE_DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print entries as a JSON array.")
def ls(cache_dir: str | None, as_json: bool) -> None:
    """List cached images with their sizes."""
    from runnc_py.rootfs import Cache, resolve_cache_dir

    entries = Cache(resolve_cache_dir(cache_dir)).entries()
    if as_json:
        click.echo(json.dumps([e.as_json() for e in entries]))
        return
    now = time.time()
    click.echo(f"{'KEY':14} {'SIZE':>10} {'ON DISK':>10} {'USED':>6} {'REFS':>4}  SOURCE")
    for e in entries:
        click.echo(
            f"{e.key[:12]:14} {human(e.size):>10} {human(e.disk):>10} "
            f"{_age(now - e.last_used):>6} {e.live_refs:>4}  {e.source}"
        )


@rootfs.command("gc")
@click.option("--all", "all_", is_flag=True, help="Remove every entry not being built right now.")
@click.option(
    "--max-age",
    default="7d",
    show_default=True,
    help="Remove entries unused for this long (s, m, h, d) and with no live container copy.",
)
@click.option("--cache-dir", default=None, help=_CACHE_DIR_HELP)
def gc(all_: bool, max_age: str, cache_dir: str | None) -> None:
    """Remove unused cached images."""
    from runnc_py.errors import RunncError
    from runnc_py.rootfs import Cache, resolve_cache_dir

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        seconds = (
            float(max_age[:-1]) * units[max_age[-1]] if max_age[-1] in units else float(max_age)
        )
    except (ValueError, IndexError):
        raise RunncError(
            f"invalid age {max_age!r} (e.g. 30m, 12h, 7d)", where="--max-age"
        ) from None
    removed = Cache(resolve_cache_dir(cache_dir)).gc(all_=all_, max_age=seconds)
    freed = sum(e.disk for e in removed)
    click.echo(f"removed {len(removed)} entries, freed {human(freed)}")
