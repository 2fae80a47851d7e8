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

from runnc_py.errors import RunncError
from runnc_py.monitor.launch import boot_unprivileged, prepare
from runnc_py.unikernel.cache import load_unikernel_cached

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from runnc_py.monitor.launch import LaunchRequest

DEFAULT_CONFIG = "solo5-cmdline"
RESOLV_CONF = "/etc/resolv.conf"
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


def exec_with_auto_network(req: LaunchRequest, config_kind: str = DEFAULT_CONFIG) -> NoReturn:
    from runnc_py.net import unwire
    from runnc_py.net.cmdline import GuestLine
    from runnc_py.net.handover import free_net_devices, hand_over

    names = free_net_devices(load_unikernel_cached(req.unikernel).manifest, req.nets)
    if not names:
        raise RunncError("the unikernel declares no network device to attach", where="--net-auto")
    handed = hand_over(
        req,
        names,
        kind=config_kind,
        # No container, no environment: the arguments, and the program name rumprun wants.
        line=GuestLine(args=tuple(req.args), program=req.unikernel),
        resolv_conf=RESOLV_CONF if os.path.exists(RESOLV_CONF) else None,
    )
    wired = handed.record.wired
    assert wired is not None  # hand_over always wires
    try:
        status = _run_supervised(handed.request)
    except BaseException:
        unwire(wired)
        raise
    try:
        unwire(wired)
    except RunncError as exc:
        print(f"runnc-py: {exc.line()}", file=sys.stderr)
    _end_like(status)


def _run_supervised(req: LaunchRequest) -> int:
    """Prepare and boot REQ in a child, forward termination signals to it, return its wait
    status. The child prepares: an hvt VM belongs to the process that created it (KVM_RUN
    from a forked child fails with EIO)."""
    pid = os.fork()
    if pid == 0:
        try:
            boot_unprivileged(prepare(req))
        except RunncError as exc:
            print(f"runnc-py: {exc.line()}", file=sys.stderr, flush=True)
        finally:
            os._exit(1)
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
