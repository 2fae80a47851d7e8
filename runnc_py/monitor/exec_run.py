"""`runnc-py exec`: run a unikernel directly (solo5-spt compatible), or runc's `exec` verb.

Called from the CLI's fast path (no click) and from the click command alike.
"""

from __future__ import annotations

import sys

from runnc_py.monitor.tender_args import (
    USAGE,
    is_container_exec,
    parse_exec_args,
    runc_exec_target,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runnc_py.globals import Globals


def run_exec(g: Globals, argv: list[str]) -> int:
    """Boot the unikernel ARGV names (never returns then), or refuse runc's container exec."""
    if is_container_exec(g.root, argv):
        from runnc_py.oci import lifecycle

        container_id, _process = runc_exec_target(argv)
        raise lifecycle.exec_refusal(g, container_id)
    parsed = parse_exec_args(argv)
    if parsed.help:
        sys.stdout.write(USAGE)
        return 0
    if parsed.net_auto:
        from runnc_py.monitor.netauto import exec_with_auto_network

        exec_with_auto_network(parsed.request(), parsed.net_config)
    from runnc_py.monitor.launch import launch

    launch(parsed.request())
