"""`runnc-py image build`: unikernel container images (runnc_py.image; docs/engines.md)."""

from __future__ import annotations

import json

import click

from runnc_py.image.archive import FORMATS


@click.group("image")
def image() -> None:
    """Build container images that hold a unikernel."""


@image.command("build")
@click.argument("unikernel", type=click.Path(dir_okay=False))
@click.option("-t", "--tag", "tag", required=True, metavar="NAME[:TAG]", help="Image name.")
@click.option("-o", "--output", required=True, help="Archive file to write.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="docker-archive",
    show_default=True,
    help="docker-archive loads in docker, podman and ctr; oci-archive is the OCI layout only.",
)
@click.option("--rootfs", default=None, help="Directory, tar, docker-save or OCI archive.")
@click.option("--monitor", type=click.Choice(["spt", "hvt"]), default=None)
@click.option("--mem", "mem_mb", type=int, default=None, help="Guest memory in MiB.")
@click.option(
    "--annotation", "annotations", multiple=True, metavar="K=V", help="Setting (repeatable)."
)
@click.option("--path", "path_in_image", default=None, help="Unikernel's path in the image.")
@click.option("--arg", "args", multiple=True, help="Default guest argument (Cmd; repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def build(
    unikernel: str,
    tag: str,
    output: str,
    fmt: str,
    rootfs: str | None,
    monitor: str | None,
    mem_mb: int | None,
    annotations: tuple[str, ...],
    path_in_image: str | None,
    args: tuple[str, ...],
    as_json: bool,
) -> None:
    """Write UNIKERNEL (plus --rootfs) as an image archive: `docker load -i`, `podman load -i`,
    `ctr images import` take it; run it with `--runtime runnc-py`."""
    from runnc_py.image.build import BuildRequest
    from runnc_py.image.build import build as build_image
    from runnc_py.image.reference import parse_reference
    from runnc_py.image.settings import parse_pairs

    result = build_image(
        BuildRequest(
            unikernel=unikernel,
            reference=parse_reference(tag),
            output=output,
            fmt=fmt,
            rootfs=rootfs,
            path_in_image=path_in_image,
            monitor=monitor,
            mem_mb=mem_mb,
            annotations=parse_pairs(annotations, where="--annotation"),
            args=args,
        )
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "output": result.output,
                    "name": result.reference.short,
                    "id": result.config_digest,
                    "manifest": result.manifest_digest,
                    "layers": result.layers,
                    "settings": result.settings,
                }
            )
        )
        return
    click.echo(
        f"{result.output}: {fmt} {result.reference.short} (id {result.config_digest[:19]}, "
        f"{result.layers} layer{'s' if result.layers != 1 else ''})"
    )
