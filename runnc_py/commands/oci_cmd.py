"""runc's container verbs as thin click commands over `runnc_py.oci.lifecycle`.

`state`, `kill`, `start` and `delete` usually arrive through the CLI's click-free fast path
(runnc_py/cli.py); these definitions serve their other forms (`--help`, odd spellings) and
every other verb. Flags runc has and a unikernel cannot use are accepted and ignored so engines
can keep passing them (`--no-pivot`, `--no-new-keyring`, `--rootless`); `--preserve-fds` is
passed on (oci/fds.py).
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

from runnc_py.errors import RunncError
from runnc_py.globals import Globals
from runnc_py.oci import lifecycle


def _g(ctx: click.Context) -> Globals:
    obj = ctx.find_object(Globals)
    return obj if obj is not None else Globals()


def _create_options(fn: Any) -> Any:
    for option in reversed(
        [
            click.option("--bundle", "-b", default=".", help="Bundle directory (config.json)."),
            click.option("--pid-file", default=None, help="Write the init's pid here."),
            click.option("--console-socket", default=None, help="Unix socket to send the pty to."),
            click.option("--no-pivot", is_flag=True, help="Accepted; no rootfs is entered."),
            click.option(
                "--no-new-keyring", is_flag=True, help="Accepted; guests have no keyring."
            ),
            click.option(
                "--preserve-fds",
                type=click.IntRange(min=0),
                default=0,
                help="Pass fds 3..3+N-1 to the container (usable as org.runnc-py.net.NAME=@FD).",
            ),
        ]
    ):
        fn = option(fn)
    return fn


@click.command()
@_create_options
@click.argument("container_id", metavar="ID")
@click.pass_context
def create(
    ctx: click.Context,
    bundle: str,
    pid_file: str | None,
    console_socket: str | None,
    no_pivot: bool,
    no_new_keyring: bool,
    preserve_fds: int,
    container_id: str,
) -> None:
    """Create a container: its init waits for `start` (pid in --pid-file)."""
    lifecycle.create(
        _g(ctx), container_id, bundle, pid_file, console_socket, preserve_fds=preserve_fds
    )


@click.command()
@_create_options
@click.option("--detach", "-d", is_flag=True, help="Return after start; do not wait.")
@click.argument("container_id", metavar="ID")
@click.pass_context
def run(
    ctx: click.Context,
    bundle: str,
    pid_file: str | None,
    console_socket: str | None,
    no_pivot: bool,
    no_new_keyring: bool,
    preserve_fds: int,
    detach: bool,
    container_id: str,
) -> None:
    """Create and start a container; without --detach wait for it and exit with its status."""
    status = lifecycle.run(
        _g(ctx),
        container_id,
        bundle,
        pid_file,
        console_socket,
        detach=detach,
        preserve_fds=preserve_fds,
    )
    sys.exit(status)


@click.command()
@click.argument("container_id", metavar="ID")
@click.pass_context
def start(ctx: click.Context, container_id: str) -> None:
    """Release a created container's init to boot the guest."""
    lifecycle.start(_g(ctx), container_id)


@click.command()
@click.argument("container_id", metavar="ID")
@click.pass_context
def state(ctx: click.Context, container_id: str) -> None:
    """Print the container's state as JSON (runc's format)."""
    click.echo(lifecycle.state_json(_g(ctx), container_id))


@click.command()
@click.option("--all", "-a", "all_", is_flag=True, help="Signal every process in the cgroup.")
@click.argument("container_id", metavar="ID")
@click.argument("signal", default="SIGTERM")
@click.pass_context
def kill(ctx: click.Context, all_: bool, container_id: str, signal: str) -> None:
    """Send SIGNAL (name with or without SIG, or number; default SIGTERM) to the guest."""
    lifecycle.kill(_g(ctx), container_id, signal, all_=all_)


@click.command()
@click.option("--force", "-f", is_flag=True, help="Kill the guest first if it still runs.")
@click.argument("container_id", metavar="ID")
@click.pass_context
def delete(ctx: click.Context, force: bool, container_id: str) -> None:
    """Remove a stopped (or, with --force, any) container and everything it holds."""
    lifecycle.delete(_g(ctx), container_id, force=force)


@click.command("list")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--quiet", "-q", is_flag=True, help="Print only the IDs.")
@click.pass_context
def list_(ctx: click.Context, fmt: str, quiet: bool) -> None:
    """List containers under --root."""
    entries = lifecycle.list_states(_g(ctx))
    if quiet:
        for entry in entries:
            click.echo(entry["id"])
    elif fmt == "json":
        click.echo(json.dumps(entries))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [
            (e["id"], str(e["pid"]), e["status"], e["bundle"], e["created"], e["owner"])
            for e in entries
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            click.echo(
                "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "   " + row[-1]
            )


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.argument("container_id", metavar="ID")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def ps(ctx: click.Context, fmt: str, container_id: str, ps_args: tuple[str, ...]) -> None:
    """The container's processes: pids as JSON, or `ps PS_ARGS` (default -ef) rows."""
    pids = lifecycle.ps_pids(_g(ctx), container_id)
    if fmt == "json":
        click.echo(json.dumps(pids))
        return
    import subprocess

    try:
        out = subprocess.run(
            ["ps", *(ps_args or ("-ef",))], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RunncError(f"cannot run ps: {exc}", where="ps") from None
    lines = out.splitlines()
    if not lines:
        return
    header = lines[0].split()
    if "PID" not in header:
        raise RunncError("ps output has no PID column (use -o pid,...)", where="ps")
    column = header.index("PID")
    click.echo(lines[0])
    wanted = {str(p) for p in pids}
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column] in wanted:
            click.echo(line)


@click.command()
@click.argument("container_id", metavar="ID")
@click.pass_context
def pause(ctx: click.Context, container_id: str) -> None:
    """Freeze the guest (cgroup freezer)."""
    lifecycle.pause(_g(ctx), container_id)


@click.command()
@click.argument("container_id", metavar="ID")
@click.pass_context
def resume(ctx: click.Context, container_id: str) -> None:
    """Thaw a paused guest."""
    lifecycle.resume(_g(ctx), container_id)


@click.command()
def features() -> None:
    """Print the implemented features (runtime spec features document)."""
    from runnc_py.oci.features import features as document

    click.echo(json.dumps(document(), indent=2))


@click.command()
@click.option("--bundle", "-b", default=".", help="Where to write config.json.")
@click.option("--rootless", is_flag=True, help="Accepted for runc compatibility.")
@click.option(
    "--unikernel",
    default="/unikernel.spt",
    show_default=True,
    help="Path of the unikernel inside the rootfs (process.args[0]).",
)
@click.pass_context
def spec(ctx: click.Context, bundle: str, rootless: bool, unikernel: str) -> None:
    """Write a config.json template for a unikernel bundle (refuses to overwrite)."""
    import os

    from runnc_py.oci.features import spec_template

    path = os.path.join(bundle, "config.json")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise RunncError("config.json exists already: remove it first", where=path) from None
    except OSError as exc:
        raise RunncError(f"cannot create: {exc.strerror}", where=path) from None
    with os.fdopen(fd, "w") as f:
        json.dump(spec_template(unikernel), f, indent=2)
        f.write("\n")


@click.command()
@click.option(
    "--resources",
    "-r",
    default=None,
    metavar="FILE",
    help="linux.resources JSON from FILE, or - for stdin.",
)
@click.option("--memory", type=int, default=None, help="Memory limit in bytes.")
@click.option("--pids-limit", type=int, default=None, help="Maximum number of tasks.")
@click.option("--cpu-shares", type=int, default=None)
@click.option("--cpu-quota", type=int, default=None)
@click.option("--cpu-period", type=int, default=None)
@click.argument("container_id", metavar="ID")
@click.pass_context
def update(
    ctx: click.Context,
    resources: str | None,
    memory: int | None,
    pids_limit: int | None,
    cpu_shares: int | None,
    cpu_quota: int | None,
    cpu_period: int | None,
    container_id: str,
) -> None:
    """Change the cgroup limits of a live container (the guest's RAM stays as booted)."""
    limits: dict[str, Any] = {}
    if resources is not None:
        try:
            text = sys.stdin.read() if resources == "-" else _read_text(resources)
            limits = json.loads(text)
        except OSError as exc:
            raise RunncError(
                f"cannot read: {exc.strerror}", where=f"--resources {resources}"
            ) from None
        except (ValueError, RecursionError) as exc:
            raise RunncError(f"not valid JSON: {exc}", where=f"--resources {resources}") from None
        if not isinstance(limits, dict):
            raise RunncError("must be a JSON object", where=f"--resources {resources}")
    if memory is not None:
        limits.setdefault("memory", {})["limit"] = memory
    if pids_limit is not None:
        limits.setdefault("pids", {})["limit"] = pids_limit
    for key, value in (("shares", cpu_shares), ("quota", cpu_quota), ("period", cpu_period)):
        if value is not None:
            limits.setdefault("cpu", {})[key] = value
    lifecycle.update(_g(ctx), container_id, limits)


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def exec_in_container(
    ctx: click.Context, container_id: str, process_file: str | None = None, **_ignored: Any
) -> NoReturn:
    """runc's `exec` on a container: hand a delegated container to its runtime, else refuse
    (a unikernel is one address space; there is no second process to start in it)."""
    raise lifecycle.exec_refusal(_g(ctx), container_id)
