"""Which of the caller's fds a container may have: runc's `--preserve-fds` rule.

An engine starts `create` with whatever fds it happens to hold open (not all of them
close-on-exec). Only fds 3 .. 3+N-1, given with `--preserve-fds N`, are the container's: only
those may be handed to the guest (`org.runnc-py.net.NAME=@FD`), and the init closes every
other inherited fd as its very first step, before any hook runs or could look at it through
/proc/PID/fd. The launcher later closes everything the guest does not use.
"""

from __future__ import annotations

from runnc_py.errors import RunncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

FIRST_PRESERVED = 3  # after stdio, as runc counts
NET_PREFIX = "org.runnc-py.net."  # oci/plan.py's PREFIX + "net." (not imported: hot path)


def preserved_fds(count: int) -> range:
    """The fds `--preserve-fds COUNT` gives the container."""
    if count < 0:
        raise RunncError(f"must not be negative, got {count}", where="--preserve-fds")
    return range(FIRST_PRESERVED, FIRST_PRESERVED + count)


def check_handed_fds(nets: Mapping[str, str], preserved: range) -> None:
    """Refuse a network device attached to an fd (`@FD`) the caller did not preserve. Pure."""
    for name, spec in nets.items():
        if not spec.startswith("@"):
            continue
        text = spec[1:]
        fd = int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else -1
        if fd not in preserved:
            given = (
                f"--preserve-fds {len(preserved)} gives fds {preserved.start}..{preserved.stop - 1}"
                if preserved
                else "no --preserve-fds was given"
            )
            raise RunncError(
                f"{spec!r} is not an fd passed to the container ({given})",
                where=f"annotation {NET_PREFIX}{name}",
            )


def close_inherited_fds(keep: Iterable[int]) -> None:
    """Close every fd above stdio but KEEP (close_range over the gaps, in C)."""
    from runnc_py import _launcher

    wanted = sorted({fd for fd in keep if fd > 2})
    _launcher.lib.runnc_close_fds_except(_launcher.ffi.new("int[]", wanted), len(wanted))
