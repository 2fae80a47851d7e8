"""The `runnc-py` command line: runc's global flags and one thin command per verb.

Commands live in `runnc_py.commands.*` and are imported only when called. This module itself
imports no click: Docker's shim and conmon call `create`, `start`, `state`, `kill` and `delete`
once or more per container, so those take a fast path (`FAST`) that parses runc's forms of
them by hand and calls the library directly (click alone costs ~25 ms to import); every other
form (and `--help`) goes through click, built on first use (`cli` / `LazyGroup` are module
attributes created lazily, PEP 562).
"""

from __future__ import annotations

import os
import sys

from runnc_py import __version__
from runnc_py.errors import RunncError
from runnc_py.globals import DEFAULT_ROOT, Globals
from runnc_py.oci.log import RuntimeLog

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

DELEGATE_ENV = "RUNNC_PY_DELEGATE"

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
    "audit": "runnc_py.commands.audit_cmd:audit",
    "install": "runnc_py.commands.install_cmd:install",
    "uninstall": "runnc_py.commands.install_cmd:uninstall",
    "image": "runnc_py.commands.image_cmd:image",
}


# --------------------------------------------------------------------------------------------
# fast path: runc's simple forms of the hot verbs, no click

_VALUE_OPTS = ("--root", "--log", "--log-format", "--delegate")
_FLAG_OPTS = ("--debug", "--systemd-cgroup")


def split_globals(argv: Sequence[str]) -> tuple[dict[str, Any], int] | None:
    """(global options, index of the command) for ARGV, or None if click must parse it."""
    opts: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _FLAG_OPTS:
            opts[arg] = True
            i += 1
        elif arg in _VALUE_OPTS:
            if i + 1 >= len(argv):
                return None
            opts[arg] = argv[i + 1]
            i += 2
        elif arg.startswith("--") and arg.split("=", 1)[0] in _VALUE_OPTS and "=" in arg:
            key, value = arg.split("=", 1)
            opts[key] = value
            i += 1
        elif arg.startswith("-"):
            return None
        else:
            return opts, i
    return None


def globals_from(opts: dict[str, Any], argv: Sequence[str]) -> Globals:
    return Globals(
        root=opts.get("--root", DEFAULT_ROOT),
        log=RuntimeLog(
            path=opts.get("--log"), fmt=opts.get("--log-format", "text"), debug="--debug" in opts
        ),
        systemd_cgroup="--systemd-cgroup" in opts,
        delegate=opts.get("--delegate") or os.environ.get(DELEGATE_ENV) or None,
        argv=argv,
    )


class FastVerb:
    """One verb's runc form for the fast path: flags, options taking a value, operands."""

    __slots__ = ("flags", "handler", "max_operands", "min_operands", "raw", "values")

    def __init__(
        self,
        handler: Callable[[Globals, dict[str, Any], list[str]], int],
        operands: tuple[int, int] = (1, 1),
        flags: dict[str, str] | None = None,
        values: dict[str, str] | None = None,
        *,
        raw: bool = False,
    ) -> None:
        self.handler = handler
        self.raw = raw  # the handler parses its own arguments
        self.min_operands, self.max_operands = operands
        self.flags = flags or {}  # spelling -> canonical name
        self.values = values or {}

    def parse(self, args: Sequence[str]) -> tuple[dict[str, Any], list[str]] | None:
        """(options, operands), or None when click must handle the command line."""
        if self.raw:
            return {}, list(args)
        opts: dict[str, Any] = {}
        operands: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            key, eq, inline = arg.partition("=")
            if arg in self.flags:
                opts[self.flags[arg]] = True
            elif key in self.values:
                if eq:
                    opts[self.values[key]] = inline
                elif i + 1 < len(args):
                    i += 1
                    opts[self.values[key]] = args[i]
                else:
                    return None
            elif arg.startswith("-") and not operands:
                return None  # --help, unknown flags: click explains
            else:
                operands.append(arg)
            i += 1
        if not self.min_operands <= len(operands) <= self.max_operands:
            return None
        return opts, operands


def _fast_state(g: Globals, opts: dict[str, Any], args: list[str]) -> int:
    from runnc_py.oci import lifecycle

    sys.stdout.write(lifecycle.state_json(g, args[0]) + "\n")
    return 0


def _fast_kill(g: Globals, opts: dict[str, Any], args: list[str]) -> int:
    from runnc_py.oci import lifecycle

    signal = args[1] if len(args) > 1 else "SIGTERM"
    lifecycle.kill(g, args[0], signal, all_="all" in opts)
    return 0


def _fast_start(g: Globals, opts: dict[str, Any], args: list[str]) -> int:
    from runnc_py.oci import lifecycle

    lifecycle.start(g, args[0])
    return 0


def _fast_delete(g: Globals, opts: dict[str, Any], args: list[str]) -> int:
    from runnc_py.oci import lifecycle

    lifecycle.delete(g, args[0], force="force" in opts)
    return 0


def _fast_create(g: Globals, opts: dict[str, Any], args: list[str]) -> int:
    from runnc_py.oci import lifecycle

    preserve = opts.get("preserve_fds", "0")
    if not (preserve.isascii() and preserve.isdigit() and len(preserve) <= 9):
        raise RunncError("must be a number", where="--preserve-fds")
    lifecycle.create(
        g,
        args[0],
        opts.get("bundle", "."),
        opts.get("pid_file"),
        opts.get("console_socket"),
        preserve_fds=int(preserve),
    )
    return 0


def _fast_exec(g: Globals, opts: dict[str, Any], args: list[str]) -> int:
    from runnc_py.monitor.exec_run import run_exec

    return run_exec(g, args)


# The verbs engines call per container (create/start/state/kill/delete), in runc's spelling,
# and `exec`, whose boot path is what a standalone unikernel run costs.
# `commands/oci_cmd.py` defines the same verbs for click: keep the two in step.
FAST: dict[str, FastVerb] = {
    "exec": FastVerb(_fast_exec, raw=True),
    "state": FastVerb(_fast_state),
    "kill": FastVerb(_fast_kill, (1, 2), flags={"--all": "all", "-a": "all"}),
    "start": FastVerb(_fast_start),
    "delete": FastVerb(_fast_delete, flags={"--force": "force", "-f": "force"}),
    "create": FastVerb(
        _fast_create,
        flags={"--no-pivot": "no_pivot", "--no-new-keyring": "no_new_keyring"},
        values={
            "--bundle": "bundle",
            "-b": "bundle",
            "--pid-file": "pid_file",
            "--console-socket": "console_socket",
            "--preserve-fds": "preserve_fds",
        },
    ),
}


def _fast_path(argv: list[str]) -> tuple[Globals, Callable[[], int]] | None:
    split = split_globals(argv)
    if split is None:
        return None
    opts, at = split
    if opts.get("--log-format", "text") not in ("text", "json"):
        return None  # let click report the bad choice
    verb = FAST.get(argv[at])
    if verb is None:
        return None
    parsed = verb.parse(argv[at + 1 :])
    if parsed is None:
        return None
    verb_opts, operands = parsed
    g = globals_from(opts, argv)
    return g, lambda: verb.handler(g, verb_opts, operands)


# --------------------------------------------------------------------------------------------
# click (built on first use)

_click_objects: dict[str, Any] = {}


def _build_click() -> dict[str, Any]:
    if _click_objects:
        return _click_objects
    import importlib

    import click

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
    @click.option("--systemd-cgroup", is_flag=True, help="Use systemd-style cgroup paths.")
    @click.option(
        "--delegate",
        default=None,
        metavar="RUNTIME",
        help=f"Hand bundles that hold no unikernel to this runtime (env {DELEGATE_ENV}).",
    )
    @click.version_option(__version__, "--version", "-v", prog_name="runnc-py")
    @click.pass_context
    def cli(
        ctx: click.Context,
        root: str,
        log_path: str | None,
        log_format: str,
        debug: bool,
        systemd_cgroup: bool,
        delegate: str | None,
    ) -> None:
        """Run Solo5 unikernels as OCI containers."""
        ctx.obj = Globals(
            root=root,
            log=RuntimeLog(path=log_path, fmt=log_format, debug=debug),
            systemd_cgroup=systemd_cgroup,
            delegate=delegate or os.environ.get(DELEGATE_ENV) or None,
            argv=_current_argv,
        )

    _click_objects.update(cli=cli, LazyGroup=LazyGroup)
    return _click_objects


def __getattr__(name: str) -> Any:
    if name in ("cli", "LazyGroup"):
        return _build_click()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_current_argv: list[str] = []


def main(argv: list[str] | None = None) -> Any:
    """Entry point: every RunncError becomes one line on stderr, a log entry and exit 1."""
    global _current_argv
    args = list(sys.argv[1:] if argv is None else argv)
    _current_argv = args
    fast = _fast_path(args)
    if fast is not None:
        g, call = fast
        try:
            status = call()
        except RunncError as exc:
            g.log.error(exc.line())
            sys.exit(exc.status)
        except Exception as exc:
            _unexpected(g.log, exc)
        sys.stdout.flush()
        sys.exit(status)
    import click

    cli = _build_click()["cli"]
    try:
        return cli.main(args=args, prog_name="runnc-py", standalone_mode=False)
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
    except Exception as exc:
        _unexpected(_log_from_context(), exc)


def _unexpected(log: RuntimeLog, exc: Exception) -> None:
    """A bug or an unforeseen OS error: still one line and a log entry (engines read only
    that); the traceback goes to stderr with --debug."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        message = f"{exc.strerror}{where}"
    else:
        message = f"internal error: {exc!r}"
    if log.debug:
        import traceback

        traceback.print_exc()
    log.error(message)
    sys.exit(1)


def _log_from_context() -> RuntimeLog:
    import click

    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if isinstance(ctx.obj, Globals):
            return ctx.obj.log
        ctx = ctx.parent
    return _log_from_argv(_current_argv)


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
