"""`runnc-py install` / `uninstall`: register the runtime with Docker, podman and containerd
(and print Kubernetes' RuntimeClass). The library is runnc_py.engines; see docs/engines.md."""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Callable, Sequence

import click

from runnc_py.engines import DEFAULT_BINARY, DEFAULT_NAME, EngineConfig, Registration
from runnc_py.errors import RunncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runnc_py.engines.files import Change

USE = {
    "docker": "docker run --runtime={name} IMAGE [ARGS]",
    "podman": "podman run --runtime={name} IMAGE [ARGS]",
    "containerd": "CRI runtime handler {name} (Kubernetes: runtimeClassName: {name}); "
    "ctr run --runc-binary {binary} IMAGE ID",
}


def _say(text: str) -> None:
    # stdout carries only diffs and the RuntimeClass manifest (both meant to be piped).
    click.echo(text, err=True)


def _engines(docker: bool, podman: bool, containerd: bool) -> list[str]:
    from runnc_py.engines.registry import present

    chosen = [n for n, on in (("docker", docker), ("podman", podman), ("containerd", containerd))
              if on]  # fmt: skip
    return chosen or present()


def _config_paths(items: Sequence[str]) -> dict[str, str]:
    from runnc_py.engines.registry import CONFIGS

    paths: dict[str, str] = {}
    for item in items:
        engine, eq, path = item.partition("=")
        if not eq or engine not in CONFIGS or not path:
            raise RunncError(
                f"expected ENGINE=PATH with ENGINE one of {', '.join(CONFIGS)}, got {item!r}",
                where="--config",
            )
        paths[engine] = path
    return paths


# podman lowers its own RLIMIT_NPROC to 32768 when it starts (strace: setrlimit(RLIMIT_NPROC,
# 32768)); the runtime it starts inherits that, and without CAP_SYS_RESOURCE cannot go above.
PODMAN_OWN_NPROC = 32768


def _delegate_path(delegate: str) -> str:
    """The delegate as the absolute path `--delegate` insists on (a name is looked up in PATH
    now: the shim that runs us later may have another PATH)."""
    import shutil

    found = delegate if os.path.isabs(delegate) else shutil.which(delegate)
    if found is None or not (os.path.isfile(found) and os.access(found, os.X_OK)):
        raise RunncError("not an executable file, nor one in PATH", where=f"--delegate {delegate}")
    return os.path.abspath(found)


def _registration(name: str, binary: str, delegate: str | None) -> Registration:
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise RunncError(
            "not an executable file (python3 build.py setup writes it)", where=f"--runtime {binary}"
        )
    return Registration(
        name=name,
        binary=binary,
        delegate=_delegate_path(delegate) if delegate is not None else None,
        nofile_hard=resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        nproc_hard=min(resource.getrlimit(resource.RLIMIT_NPROC)[1], PODMAN_OWN_NPROC),
    )


def _run(
    engines: list[str],
    paths: dict[str, str],
    reg: Registration,
    planner: Callable[[EngineConfig, str, Registration], Change],
    *,
    dry_run: bool,
    reload: bool,
    verb: str,
) -> None:
    from runnc_py.engines import files
    from runnc_py.engines.registry import CONFIGS
    from runnc_py.engines.reload import carry_out, reload_for

    # Every file is planned (read and parsed) before any is written: a bad file stops all.
    plans = [
        planner(CONFIGS[engine], paths.get(engine, CONFIGS[engine].default_path), reg)
        for engine in engines
    ]
    for change in plans:
        config = CONFIGS[change.engine]
        if dry_run:
            sys.stdout.write(change.diff())
            what = "would change" if change.changes else "unchanged"
            _say(f"{change.engine}: {change.path}: {what}")
            continue
        files.apply(change)
        what = _describe(change, verb)
        _say(f"{change.engine}: {change.path}: {what}")
        if change.changes:
            action = reload_for(config.daemon)
            if action is None:
                _say(f"{change.engine}: nothing to reload (read on every command)")
            elif reload and carry_out(action):
                _say(f"{change.engine}: reloaded ({action.hint})")
            else:
                _say(f"{change.engine}: to apply: {action.hint}")
        if verb == "install":
            use = USE[change.engine].format(name=reg.name, binary=reg.binary)
            _say(f"{change.engine}: use: {use}")


def _describe(change: Change, verb: str) -> str:
    from runnc_py.engines.files import BACKUP_SUFFIX

    if not change.changes:
        return "already registered, unchanged" if verb == "install" else "nothing of ours here"
    if verb == "uninstall":
        return "removed the file install had created" if change.new is None else "runtime removed"
    if change.backup and change.old is not None:
        return f"runtime registered (backup: {change.path}{BACKUP_SUFFIX})"
    return "runtime registered" + (" (new file)" if change.old is None else "")


_ENGINE_FLAGS = [
    click.option("--docker", is_flag=True, help="Docker: /etc/docker/daemon.json."),
    click.option("--podman", is_flag=True, help="podman: /etc/containers/containers.conf."),
    click.option("--containerd", is_flag=True, help="containerd: /etc/containerd/config.toml."),
    click.option("--dry-run", is_flag=True, help="Print the unified diff; change nothing."),
    click.option("--reload", is_flag=True, help="Make the daemons re-read their configuration."),
    click.option("--name", default=DEFAULT_NAME, show_default=True, help="Runtime/handler name."),
    click.option(
        "--config",
        "configs",
        multiple=True,
        metavar="ENGINE=PATH",
        help="Edit PATH instead of ENGINE's usual file (repeatable).",
    ),
]


def _engine_flags(fn: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(_ENGINE_FLAGS):
        fn = option(fn)
    return fn


@click.command("install")
@_engine_flags
@click.option("--kubernetes", is_flag=True, help="Print the RuntimeClass manifest to apply.")
@click.option("--runtime", "binary", default=DEFAULT_BINARY, show_default=True,
              help="The runtime binary engines call.")  # fmt: skip
@click.option("--delegate", default=None, metavar="RUNTIME",
              help="Docker: hand images without a unikernel to RUNTIME (e.g. runc).")  # fmt: skip
def install(
    docker: bool,
    podman: bool,
    containerd: bool,
    dry_run: bool,
    reload: bool,
    name: str,
    configs: tuple[str, ...],
    kubernetes: bool,
    binary: str,
    delegate: str | None,
) -> None:
    """Register runnc-py with the engines (default: every engine installed here).

    Merges into the existing files (every other setting and comment kept), backs each changed
    file up once as FILE.runnc-py.bak (with a record, FILE.runnc-py.json, of what it wrote),
    and is idempotent. `--kubernetes` alone only prints the RuntimeClass manifest (stdout);
    with --containerd it also registers the CRI handler.
    """
    from runnc_py.engines import files
    from runnc_py.engines.kubernetes import runtime_class

    reg = _registration(name, binary, delegate)
    paths = _config_paths(configs)
    if not (kubernetes and not (docker or podman or containerd)):
        engines = _engines(docker, podman, containerd)
        if not engines:
            raise RunncError("no engine found here (dockerd, podman, containerd): name one")
        _run(engines, paths, reg, files.plan_install, dry_run=dry_run, reload=reload,
             verb="install")  # fmt: skip
    if kubernetes:
        sys.stdout.write(runtime_class(reg))


@click.command("uninstall")
@_engine_flags
def uninstall(
    docker: bool,
    podman: bool,
    containerd: bool,
    dry_run: bool,
    reload: bool,
    name: str,
    configs: tuple[str, ...],
) -> None:
    """Remove what `install` added (default: from every engine installed here).

    A file nobody edited since install gets its backup's exact bytes back; otherwise only the
    runtime entry (and what install added with it) goes.
    """
    from runnc_py.engines import files

    reg = Registration(name=name)
    engines = _engines(docker, podman, containerd)
    _run(engines, _config_paths(configs), reg, files.plan_uninstall, dry_run=dry_run,
         reload=reload, verb="uninstall")  # fmt: skip
