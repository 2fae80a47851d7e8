"""Parse `runnc-py exec` arguments in both spellings: ours and solo5-spt's.

    runnc-py exec --mem 64 --net service0=tap0 --block storage=disk.img app.spt -- a b
    runnc-py exec --mem=64 --net:service0=tap0 --block:storage=disk.img app.spt a b

Existing Nabla scripts call the tender with the second form, so both must work unchanged.
Options stop at the unikernel path (or `--`); everything after it is the guest's command line.
"""

from __future__ import annotations

import os

from runnc_py.errors import RunncError
from runnc_py.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runnc_py.monitor.launch import LaunchRequest

USAGE = """\
Usage: runnc-py exec [OPTIONS] UNIKERNEL [--] [ARGS...]

  Run a Solo5 unikernel directly, without an OCI bundle.

Options (solo5-spt's spelling --opt:NAME=VALUE and --opt=VALUE is accepted too):
  --mem MB                     guest memory in MiB (default 512)
  --net NAME=TAP               attach manifest net device NAME to tap TAP (or @FD)
  --net-mac NAME=MAC           MAC address of net device NAME (default: random, local)
  --block NAME=PATH            attach manifest block device NAME to image PATH
  --block-sector-size NAME=N   sector size of block device NAME (default 512)
  --policy FILE                seccomp policy file (default: the shipped spt policy)
  --monitor auto|spt|hvt       which monitor runs the unikernel (default auto)
  --x-exec-heap                make guest memory executable (needed by some LKL images)
  --net-auto                   hand this network namespace's interfaces to the guest's net
                               devices (taps + tc redirect; undone when the guest exits)
  --net-config KIND            how --net-auto tells the guest its addresses: solo5-cmdline
                               (default), lkl-json, lkl-json-upstream, rumprun-json, none
  -h, --help                   show this message
"""

# option -> ExecArgs attribute
_KEYED = {
    "--net": "nets",
    "--net-mac": "net_macs",
    "--block": "blocks",
    "--block-sector-size": "block_sector_sizes",
}
_VALUED = {
    "--mem": "mem",
    "--policy": "policy",
    "--monitor": "monitor",
    "--net-config": "net_config",
}
_FLAGS = {"--x-exec-heap": "x_exec_heap", "--net-auto": "net_auto"}


class ExecArgs(Record):
    """`runnc-py exec`'s options as parsed, before any check (parse_exec_args fills them in)."""

    __slots__ = (
        *("unikernel", "args", "mem", "policy", "monitor", "nets", "net_macs", "blocks"),
        *("block_sector_sizes", "x_exec_heap", "net_auto", "net_config", "help"),
    )

    def __init__(self) -> None:
        self.unikernel = ""
        self.args: list[str] = []
        self.mem: str | None = None
        self.policy: str | None = None
        self.monitor = "auto"
        self.nets: dict[str, str] = {}
        self.net_macs: dict[str, str] = {}
        self.blocks: dict[str, str] = {}
        self.block_sector_sizes: dict[str, str] = {}
        self.x_exec_heap = False
        self.net_auto = False
        self.net_config = "solo5-cmdline"
        self.help = False

    def request(self) -> LaunchRequest:
        from runnc_py.monitor.launch import LaunchRequest

        return LaunchRequest(
            unikernel=self.unikernel,
            args=tuple(self.args),
            mem_mb=_int(self.mem, "--mem") if self.mem is not None else None,
            nets=dict(self.nets),
            net_macs=dict(self.net_macs),
            blocks=dict(self.blocks),
            block_sector_sizes={
                k: _int(v, f"--block-sector-size:{k}") for k, v in self.block_sector_sizes.items()
            },
            policy=self.policy,
            monitor=self.monitor,
            x_exec_heap=self.x_exec_heap,
        )


def _int(text: str, where: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise RunncError(f"expected a whole number, got {text!r}", where=where) from None


def _split_keyed(flag: str, text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise RunncError(f"expected NAME=VALUE, got {text!r}", where=flag)
    return name, value


def parse_exec_args(argv: list[str]) -> ExecArgs:
    out = ExecArgs()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg in ("-h", "--help"):
            out.help = True
            return out
        flag, colon, keyed_rest = arg.partition(":")
        if colon and flag in _KEYED:  # solo5-spt: --net:NAME=IFACE
            name, value = _split_keyed(flag, keyed_rest)
            getattr(out, _KEYED[flag])[name] = value
            i += 1
            continue
        flag, eq, inline = arg.partition("=")
        if flag in _FLAGS and not eq:
            setattr(out, _FLAGS[flag], True)
            i += 1
            continue
        if flag in _KEYED or flag in _VALUED:
            if eq:
                value = inline
                i += 1
            else:
                if i + 1 >= len(argv):
                    raise RunncError("missing value", where=flag)
                value = argv[i + 1]
                i += 2
            if flag in _KEYED:
                name, val = _split_keyed(flag, value)
                getattr(out, _KEYED[flag])[name] = val
            else:
                setattr(out, _VALUED[flag], value)
            continue
        raise RunncError(f"unknown option {arg!r} (see runnc-py exec --help)", where="exec")
    if i >= len(argv):
        raise RunncError("missing UNIKERNEL operand (see runnc-py exec --help)", where="exec")
    out.unikernel = argv[i]
    rest = argv[i + 1 :]
    out.args = rest[1:] if rest[:1] == ["--"] else rest
    return out


# runc's `exec` flags: their presence means an engine is asking to exec into a container.
_RUNC_EXEC_VALUED = {
    *("--process", "-p", "--pid-file", "--console-socket", "--cwd", "--env", "-e"),
    *("--user", "-u", "--cap", "-c", "--apparmor", "--process-label", "--preserve-fds"),
    *("--cgroup", "--additional-gids", "-g"),
}
_RUNC_EXEC_BOOLEAN = {"--detach", "-d", "--tty", "-t", "--no-new-privs", "--ignore-paused"}
_RUNC_EXEC_FLAGS = _RUNC_EXEC_VALUED | _RUNC_EXEC_BOOLEAN


def runc_exec_target(argv: list[str]) -> tuple[str, str | None]:
    """(container ID, --process file) of runc's `exec [FLAGS] ID [COMMAND...]`."""
    process: str | None = None
    i = 0
    while i < len(argv):
        flag, eq, value = argv[i].partition("=")
        if flag in _RUNC_EXEC_VALUED:
            if not eq:
                value = argv[i + 1] if i + 1 < len(argv) else ""
                i += 1
            if flag in ("--process", "-p"):
                process = value
        elif flag not in _RUNC_EXEC_BOOLEAN:
            return argv[i], process
        i += 1
    raise RunncError("missing container ID", where="exec")


def is_container_exec(root: str, argv: list[str]) -> bool:
    """runc's `exec` into container ID (an engine's `docker exec`), not a unikernel to run?"""
    for arg in argv:
        if arg == "--":
            return False
        if arg.split("=", 1)[0] in _RUNC_EXEC_FLAGS:
            return True
        if not arg.startswith("-"):
            # A first operand that is no file but a container we know: runc's `exec ID CMD`.
            return not os.path.exists(arg) and os.path.isdir(os.path.join(root, arg))
    return False
