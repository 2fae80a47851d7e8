"""`runnc-py exec` for click (help, unusual global flags); the logic is monitor/exec_run.py."""

from __future__ import annotations

import click


@click.command(
    "exec",
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def exec_(ctx: click.Context, argv: tuple[str, ...]) -> None:
    """Run a unikernel: runnc-py exec [OPTIONS] UNIKERNEL [--] [ARGS...] (see --help)."""
    from runnc_py.monitor.exec_run import run_exec

    run_exec(ctx.obj, list(argv))
