"""The `runnc-py` command line: runc's global flags and one thin command per verb.

Commands live in `runnc_py.commands.*` and are imported only when called: this CLI is on
Docker's hot path (`state`, `kill` are called often), so importing every command's
dependencies up front would cost tens of milliseconds per call.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from typing import Any

import click

from runnc_py import __version__
from runnc_py.errors import RunncError
from runnc_py.oci.log import RuntimeLog

DEFAULT_ROOT = "/run/runnc-py"

# command name -> "module:attribute"; each module owns its command(s).
COMMANDS: dict[str, str] = {
    "demo": "runnc_py.commands.demo:demo",
    "exec": "runnc_py.commands.exec_cmd:exec_",
    "inspect": "runnc_py.commands.inspect_cmd:inspect",
    "policy": "runnc_py.commands.policy_cmd:policy",
    "create": "runnc_py.commands.oci_cmd:create",
    "start": "runnc_py.commands.oci_cmd:start",
    "run": "runnc_py.commands.oci_cmd:run",
    "state": "runnc_py.commands.oci_cmd:state",
    "kill": "runnc_py.commands.oci_cmd:kill",
    "delete": "runnc_py.commands.oci_cmd:delete",
    "list": "runnc_py.commands.oci_cmd:list_",
    "ps": "runnc_py.commands.oci_cmd:ps",
    "pause": "runnc_py.commands.oci_cmd:pause",
    "resume": "runnc_py.commands.oci_cmd:resume",
    "features": "runnc_py.commands.oci_cmd:features",
    "spec": "runnc_py.commands.oci_cmd:spec",
    "update": "runnc_py.commands.oci_cmd:update",
    "rootfs": "runnc_py.commands.rootfs_cmd:rootfs",
    "net": "runnc_py.commands.net_cmd:net",
}


@dataclass
class Globals:
    """runc's global flags, handed to every command as `ctx.obj`."""

    root: str = DEFAULT_ROOT
    log: RuntimeLog = field(default_factory=RuntimeLog)
    systemd_cgroup: bool = False


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None  # command not built yet in this version
            raise
        command: click.Command = getattr(module, attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", default=DEFAULT_ROOT, show_default=True, help="State directory root.")
@click.option("--log", "log_path", default=None, help="Log file (runc's --log).")
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--debug", is_flag=True, help="Write debug entries to the log.")
@click.option("--systemd-cgroup", is_flag=True, help="Accepted for runc compatibility.")
@click.version_option(__version__, "--version", "-v", prog_name="runnc-py")
@click.pass_context
def cli(
    ctx: click.Context,
    root: str,
    log_path: str | None,
    log_format: str,
    debug: bool,
    systemd_cgroup: bool,
) -> None:
    """Run Solo5 unikernels as OCI containers."""
    ctx.obj = Globals(
        root=root,
        log=RuntimeLog(path=log_path, fmt=log_format, debug=debug),
        systemd_cgroup=systemd_cgroup,
    )


def main(argv: list[str] | None = None) -> Any:
    """Entry point: every RunncError becomes one line on stderr, a log entry and exit 1."""
    try:
        return cli.main(args=argv, prog_name="runnc-py", standalone_mode=False)
    except RunncError as exc:
        log = _log_from_context()
        log.error(exc.line())
        sys.exit(exc.status)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        log = _log_from_context()
        log.error(exc.format_message())
        sys.exit(exc.exit_code if exc.exit_code else 1)
    except click.exceptions.Abort:
        sys.exit(130)


def _log_from_context() -> RuntimeLog:
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if isinstance(ctx.obj, Globals):
            return ctx.obj.log
        ctx = ctx.parent
    return _log_from_argv(sys.argv[1:])


def _log_from_argv(argv: list[str]) -> RuntimeLog:
    """Recover --log/--log-format when the failure happened before click built a context."""
    path, fmt = None, "text"
    for i, arg in enumerate(argv):
        if arg == "--log" and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith("--log="):
            path = arg.split("=", 1)[1]
        elif arg == "--log-format" and i + 1 < len(argv):
            fmt = argv[i + 1]
        elif arg.startswith("--log-format="):
            fmt = arg.split("=", 1)[1]
    return RuntimeLog(path=path, fmt=fmt)


if __name__ == "__main__":
    main()
