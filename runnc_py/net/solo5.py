"""The Solo5/MirageOS command-line form: `--ipv4=ADDR/LEN --ipv4-gateway=GW`, per device.

MirageOS 4 unikernels read their network from runtime arguments named by `mirage`'s
`Runtime_network` keys: `ipv4`, `ipv4-gateway`, `ipv6`, `ipv6-gateway`, `ipv6-only`, each
prefixed by the stack's group (`--GROUP-ipv4=...`) when the unikernel has more than one stack.
The first device's stack has no group; later ones default to their guest device name
(`service1`), which a caller can override with `groups=` to match the unikernel's config.ml.

What the form cannot say is refused rather than dropped: several addresses of one family on one
device (a Mirage stack takes one), static routes (there are no route flags), and a device
without any address (Mirage would fall back to its built-in 10.0.0.2/24).
"""

from __future__ import annotations

from runnc_py.errors import RunncError
from runnc_py.net.facts import InterfaceFacts, NetworkFacts
from runnc_py.net.naming import guest_device_names

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

CMDLINE_MAX = 8191  # Solo5's boot command line buffer is 8192 bytes with its NUL
WHERE = "solo5-cmdline"


def solo5_cmdline_args(
    facts: NetworkFacts, *, groups: Sequence[str | None] | None = None
) -> list[str]:
    """The flags as an argument list, device by device."""
    ifaces = facts.interfaces
    if not ifaces:
        raise RunncError("no network interface to configure", where=WHERE)
    if groups is None:
        groups = (None, *guest_device_names(len(ifaces))[1:])
    elif len(groups) != len(ifaces):
        raise RunncError(f"{len(groups)} groups for {len(ifaces)} interfaces", where=WHERE)
    args: list[str] = []
    for iface, group in zip(ifaces, groups, strict=True):
        args += _device_args(iface, f"--{group}-" if group else "--")
    return args


def render_solo5_cmdline(facts: NetworkFacts, *, groups: Sequence[str | None] | None = None) -> str:
    """The flags joined by spaces, ready to go before the application's own arguments."""
    text = " ".join(solo5_cmdline_args(facts, groups=groups))
    if len(text.encode()) > CMDLINE_MAX:
        raise RunncError(
            f"{len(text.encode())} bytes; a Solo5 command line holds at most {CMDLINE_MAX}",
            where=WHERE,
        )
    return text


def _device_args(iface: InterfaceFacts, prefix: str) -> list[str]:
    if not iface.ipv4 and not iface.ipv6:
        raise RunncError(
            f"{iface.name} has no IP address; the command-line form needs one "
            "(MirageOS would use its default 10.0.0.2/24)",
            where=WHERE,
        )
    extra = iface.extra_routes()
    if extra:
        raise RunncError(
            f"static route {extra[0]} cannot be expressed (MirageOS has no route flags)",
            where=WHERE,
        )
    args: list[str] = []
    for family in (4, 6):
        addrs = iface.addresses(family)
        if len(addrs) > 1:
            raise RunncError(
                f"{iface.name} has {len(addrs)} IPv{family} addresses; a MirageOS stack takes one",
                where=WHERE,
            )
        if addrs:
            args.append(f"{prefix}ipv{family}={addrs[0]}")
            gateway = iface.gateway(family)
            if gateway:
                args.append(f"{prefix}ipv{family}-gateway={gateway}")
    if not iface.ipv4:
        # Otherwise the stack would come up with MirageOS's default IPv4 address.
        args.append(f"{prefix}ipv6-only=true")
    return args
