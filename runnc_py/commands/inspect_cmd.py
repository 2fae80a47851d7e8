"""`runnc-py inspect UNIKERNEL [--json]`: what a unikernel file declares, after validation."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("unikernel", type=click.Path(dir_okay=True, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (stable keys).")
def inspect(unikernel: str, as_json: bool) -> None:
    """Show a Solo5 unikernel's target, ABI version, entry, segments and devices."""
    from runnc_py.unikernel.describe import image_to_dict, image_to_text
    from runnc_py.unikernel.elf import load_unikernel

    image = load_unikernel(unikernel)
    if as_json:
        click.echo(json.dumps(image_to_dict(image), indent=2))
    else:
        click.echo(image_to_text(image))
