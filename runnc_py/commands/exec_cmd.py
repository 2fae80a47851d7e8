"""`runnc-py exec`: run a unikernel directly (solo5-spt compatible), or runc's `exec` verb."""

from __future__ import annotations

import os

import click

from runnc_py.errors import RunncError

# runc's `exec` flags: their presence means an engine is asking to exec into a container.
_RUNC_EXEC_FLAGS = {
    "--process",
    "-p",
    "--detach",
    "-d",
    "--pid-file",
    "--tty",
    "-t",
    "--console-socket",
    "--cwd",
    "--env",
    "-e",
    "--user",
    "-u",
    "--cap",
    "-c",
    "--no-new-privs",
    "--apparmor",
    "--process-label",
    "--preserve-fds",
    "--ignore-paused",
    "--cgroup",
    "--additional-gids",
    "-g",
}


def _is_container_exec(ctx: click.Context, argv: list[str]) -> bool:
    for arg in argv:
        if arg == "--":
            return False
        if arg.split("=", 1)[0] in _RUNC_EXEC_FLAGS:
            return True
        if not arg.startswith("-"):
            # A first operand that is no file but a container we know: runc's `exec ID CMD`.
            root = ctx.obj.root if ctx.obj is not None else "/run/runnc-py"
            return not os.path.exists(arg) and os.path.isdir(os.path.join(root, arg))
    return False


@click.command(
    "exec",
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def exec_(ctx: click.Context, argv: tuple[str, ...]) -> None:
    """Run a unikernel: runnc-py exec [OPTIONS] UNIKERNEL [--] [ARGS...] (see --help)."""
    args = list(argv)
    if _is_container_exec(ctx, args):
        raise RunncError(
            "exec into a container is not possible: a unikernel is a single address space "
            "with no processes to add",
            where="exec",
        )
    from runnc_py.monitor.launch import launch
    from runnc_py.monitor.tender_args import USAGE, parse_exec_args

    parsed = parse_exec_args(args)
    if parsed.help:
        click.echo(USAGE, nl=False)
        return
    if parsed.net_auto:
        from runnc_py.monitor.netauto import exec_with_auto_network

        exec_with_auto_network(parsed.request(), parsed.net_config)
    launch(parsed.request())
