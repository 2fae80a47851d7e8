"""`runnc-py exec --net-auto`: hand this network namespace's interfaces to an ad-hoc guest.

The same wiring `create` does for a container (runnc_py.net): every interface gets a tap joined
to it by tc redirects, the guest gets the interface's MAC and addresses (through its command
line), and the host stops answering in its place. Without a container there is no `delete` to
undo that, so this process stays behind as a small supervisor: it forks, the child becomes the
guest, and when the guest ends the parent unwires and ends the same way the guest did.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, NoReturn

from runnc_py.errors import RunncError
from runnc_py.monitor.launch import LaunchRequest, boot, prepare
from runnc_py.unikernel.cache import load_unikernel_cached
from runnc_py.unikernel.manifest import DeviceType

if TYPE_CHECKING:
    from runnc_py.monitor.launch import Prepared

DEFAULT_CONFIG = "solo5-cmdline"
RESOLV_CONF = "/etc/resolv.conf"
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


def exec_with_auto_network(req: LaunchRequest, config_kind: str = DEFAULT_CONFIG) -> NoReturn:
    from runnc_py.net import read_facts, unwire, wire
    from runnc_py.net.config import guest_arguments

    image = load_unikernel_cached(req.unikernel)
    names = [
        d.name
        for d in image.manifest.devices()
        if d.type == DeviceType.NET_BASIC and d.name not in req.nets
    ]
    if not names:
        raise RunncError("the unikernel declares no network device to attach", where="--net-auto")
    facts = read_facts(None, RESOLV_CONF if os.path.exists(RESOLV_CONF) else None)
    wired = wire(None, facts, max_devices=len(names))
    try:
        nics = dict(zip(names, wired.devices, strict=False))
        request = replace(
            req,
            nets={**req.nets, **{name: nic.tap for name, nic in nics.items()}},
            net_macs={**req.net_macs, **{name: nic.mac for name, nic in nics.items()}},
            args=guest_arguments(facts, config_kind, req.args, device_names=list(nics)),
        )
        prepared = prepare(request)
    except BaseException:
        unwire(wired)
        raise
    status = _run_supervised(prepared)
    try:
        unwire(wired)
    except RunncError as exc:
        print(f"runnc-py: {exc.line()}", file=sys.stderr)
    _end_like(status)


def _run_supervised(prepared: Prepared) -> int:
    """Boot PREPARED in a child, forward termination signals to it, return its wait status."""
    pid = os.fork()
    if pid == 0:
        try:
            boot(prepared)
        except RunncError as exc:
            print(f"runnc-py: {exc.line()}", file=sys.stderr, flush=True)
        finally:
            os._exit(1)
    prepared.close()  # the child has its own copies
    for sig in FORWARDED:
        signal.signal(sig, lambda signum, _frame: os.kill(pid, signum))
    _, status = os.waitpid(pid, 0)  # PEP 475: retried across the forwarded signals
    return status


def _end_like(status: int) -> NoReturn:
    """Exit with the guest's status, or die of the signal that killed it."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        sys.exit(128 + sig)  # only if the signal could not end us
    sys.exit(os.waitstatus_to_exitcode(status))
