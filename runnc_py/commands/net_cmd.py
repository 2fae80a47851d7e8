"""`runnc-py net show ID` (what a container's guest got) and `runnc-py net facts` (what a
network namespace holds, and the guest configuration it would render to)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from runnc_py.errors import RunncError
from runnc_py.net.config import CONFIG_KINDS


@click.group()
def net() -> None:
    """Inspect container networking."""


@net.command()
@click.argument("container_id")
@click.option("--json", "as_json", is_flag=True, help="Print the stored record as JSON.")
@click.pass_context
def show(ctx: click.Context, container_id: str, as_json: bool) -> None:
    """Show the network devices, addresses and guest configuration of CONTAINER_ID."""
    from runnc_py.net import store

    if not container_id or container_id in (".", "..") or "/" in container_id:
        raise RunncError(f"{container_id!r} is not a container id", where="net show")
    record = store.load(Path(ctx.obj.root) / container_id)
    if as_json:
        click.echo(json.dumps(record.to_dict(), indent=1))
    else:
        click.echo(store.describe(record))


@net.command()
@click.option("--netns", default=None, help="Network namespace path (default: our own).")
@click.option("--resolv-conf", default=None, help="resolv.conf to read DNS settings from.")
@click.option(
    "--config",
    "kind",
    type=click.Choice(sorted(CONFIG_KINDS)),
    default=None,
    help="Also render this guest configuration.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def facts(netns: str | None, resolv_conf: str | None, kind: str | None, as_json: bool) -> None:
    """Read a network namespace the way `create` does, without changing anything."""
    from runnc_py.net.config import guest_config
    from runnc_py.net.read import read_facts
    from runnc_py.net.store import NetRecord, describe

    found = read_facts(netns, resolv_conf)
    text = guest_config(found, kind) if kind else ""
    if as_json:
        out = {"facts": found.to_dict()}
        if kind:
            out["config"] = {"kind": kind, "text": text}
        click.echo(json.dumps(out, indent=1))
    else:
        click.echo(describe(NetRecord(found, None, kind or "none", text)))
