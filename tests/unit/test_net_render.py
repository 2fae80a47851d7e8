"""Golden files for every guest-configuration renderer over typical container networks.

Each scenario x kind has a file in tests/unit/golden/net/: the rendered text, or `error: LINE`
when the kind cannot express the network. Regenerate after an intended change with
`RUNNC_UPDATE_GOLDEN=1 pytest tests/unit/test_net_render.py` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from runnc_py.errors import RunncError
from runnc_py.net.config import guest_config
from runnc_py.net.facts import NetworkFacts
from runnc_py.net.lkl import json_tokens, validate_lkl_json

GOLDEN = Path(__file__).parent / "golden" / "net"
KINDS = ["lkl-json", "lkl-json-upstream", "solo5-cmdline", "rumprun-json"]
MAC0, MAC1, MAC2 = "02:42:ac:11:00:02", "02:42:0a:0a:00:05", "02:42:0a:14:00:09"


def iface(
    name: str,
    mac: str,
    *,
    mtu: int = 1500,
    v4: tuple[str, ...] = (),
    v6: tuple[str, ...] = (),
    routes: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    return {
        "name": name,
        "mac": mac,
        "mtu": mtu,
        "ipv4": list(v4),
        "ipv6": list(v6),
        "routes": [{"dev": name, "gateway": None, **r} for r in routes],
    }


DNS = {"nameservers": ["1.1.1.1", "2606:4700:4700::1111"], "search": ["example.com"]}
SCENARIOS: dict[str, dict[str, Any]] = {
    # Docker's default bridge.
    "ipv4": {
        "interfaces": [
            iface(
                "eth0",
                MAC0,
                v4=("172.17.0.2/16",),
                routes=({"dst": "0.0.0.0/0", "gateway": "172.17.0.1"},),
            )
        ],
        "dns": DNS,
    },
    "ipv6": {
        "interfaces": [
            iface(
                "eth0",
                MAC0,
                v6=("fd00:dead:beef::2/64",),
                routes=({"dst": "::/0", "gateway": "fd00:dead:beef::1", "metric": 1024},),
            )
        ]
    },
    "dual": {
        "interfaces": [
            iface(
                "eth0",
                MAC0,
                v4=("172.17.0.2/16",),
                v6=("fd00:dead:beef::2/64",),
                routes=(
                    {"dst": "0.0.0.0/0", "gateway": "172.17.0.1"},
                    {"dst": "::/0", "gateway": "fd00:dead:beef::1", "metric": 1024},
                ),
            )
        ]
    },
    # Calico: /32 and /128 addresses, gateway reached through an on-link host route.
    "host32": {
        "interfaces": [
            iface(
                "eth0",
                MAC0,
                v4=("10.244.1.5/32",),
                v6=("fd00:10:244::5/128",),
                routes=(
                    {"dst": "0.0.0.0/0", "gateway": "169.254.1.1"},
                    {"dst": "169.254.1.1/32", "scope": 253},
                    {"dst": "::/0", "gateway": "fe80::ecee:eeff:feee:eeee", "metric": 1024},
                ),
            )
        ]
    },
    "multi": {
        "interfaces": [
            iface(
                "eth0",
                MAC0,
                v4=("172.18.0.2/16",),
                routes=({"dst": "0.0.0.0/0", "gateway": "172.18.0.1"},),
            ),
            iface("eth1", MAC1, v4=("10.10.0.5/24",)),
            iface("eth2", MAC2, v4=("10.20.0.9/24",), v6=("fd00:20::9/64",)),
        ]
    },
    "multi-default": {
        "interfaces": [
            iface(
                "eth0",
                MAC0,
                v4=("172.18.0.2/16",),
                routes=({"dst": "0.0.0.0/0", "gateway": "172.18.0.1"},),
            ),
            iface(
                "eth1",
                MAC1,
                v4=("10.10.0.5/24",),
                routes=({"dst": "0.0.0.0/0", "gateway": "10.10.0.1", "metric": 100},),
            ),
        ]
    },
    "mtu9000": {
        "interfaces": [
            iface(
                "eth0",
                MAC0,
                mtu=9000,
                v4=("192.168.50.10/24",),
                routes=({"dst": "0.0.0.0/0", "gateway": "192.168.50.1"},),
            )
        ]
    },
    "no-gateway": {"interfaces": [iface("eth0", MAC0, v4=("10.88.0.7/16",))]},
    "static-route": {
        "interfaces": [
            iface(
                "eth0",
                MAC0,
                v4=("172.17.0.2/16",),
                routes=(
                    {"dst": "0.0.0.0/0", "gateway": "172.17.0.1"},
                    {"dst": "10.99.0.0/16", "gateway": "172.17.0.254"},
                    {"dst": "192.168.7.0/24", "scope": 253},
                ),
            )
        ]
    },
    "l2-only": {"interfaces": [iface("eth0", MAC0)]},
    "two-v4-addresses": {"interfaces": [iface("eth0", MAC0, v4=("10.0.0.2/24", "10.0.1.2/24"))]},
}


def facts(name: str) -> NetworkFacts:
    return NetworkFacts.from_dict(SCENARIOS[name])


def render(name: str, kind: str) -> str:
    try:
        return guest_config(facts(name), kind)
    except RunncError as exc:
        return f"error: {exc.line()}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_renderer_matches_golden_file(scenario: str, kind: str) -> None:
    path = GOLDEN / f"{scenario}.{kind}"
    got = render(scenario, kind) + "\n"
    if os.environ.get("RUNNC_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got)
    assert path.exists(), f"missing golden file {path}; run with RUNNC_UPDATE_GOLDEN=1"
    assert got == path.read_text()


def rendered_lkl() -> list[tuple[str, str]]:
    """(scenario, dialect) pairs that render; the refused ones are covered by golden files."""
    pairs = [(s, d) for s in sorted(SCENARIOS) for d in ("nabla", "upstream")]
    return [(s, d) for s, d in pairs if not render(s, LKL_KIND[d]).startswith("error:")]


LKL_KIND = {"nabla": "lkl-json", "upstream": "lkl-json-upstream"}


@pytest.mark.parametrize(("scenario", "dialect"), rendered_lkl())
def test_every_rendered_lkl_config_passes_its_own_validation(scenario: str, dialect: str) -> None:
    text = render(scenario, LKL_KIND[dialect])
    validate_lkl_json(text, dialect)
    config = json.loads(text)
    for entry, iface_facts in zip(config["interfaces"], facts(scenario).interfaces, strict=True):
        assert entry["mac"] == iface_facts.mac  # the guest keeps the container's MAC
        assert entry["mtu"] == str(iface_facts.mtu)


def test_every_golden_file_belongs_to_a_scenario() -> None:
    expected = {f"{s}.{k}" for s in SCENARIOS for k in KINDS}
    assert {p.name for p in GOLDEN.iterdir()} == expected


def test_json_tokens_counts_like_jsmn() -> None:
    assert json_tokens({"k": "v"}) == 3
    assert json_tokens({"a": ["x", "y"], "b": {"c": "d"}}) == 1 + (1 + 3) + (1 + 3)
    assert json_tokens([]) == 1


def test_device_names_reach_the_lkl_config() -> None:
    text = guest_config(facts("multi"), "lkl-json", device_names=["tap", "net1", "net2"])
    assert [i["name"] for i in json.loads(text)["interfaces"]] == ["tap", "net1", "net2"]


def test_solo5_groups_can_be_named_by_the_caller() -> None:
    from runnc_py.net.solo5 import render_solo5_cmdline

    text = render_solo5_cmdline(facts("multi"), groups=[None, "private", "mgmt"])
    assert "--private-ipv4=10.10.0.5/24" in text
    assert "--mgmt-ipv6=fd00:20::9/64" in text


def test_rumprun_cmdline_comes_first() -> None:
    from runnc_py.net.rumprun import render_rumprun_json

    # The cmdline member is written raw: its words come encoded (runnc_py.net.cmdline).
    text = render_rumprun_json(facts("ipv4"), cmdline="app --port 80")
    assert text.startswith('{"cmdline":"app --port 80","net":{')
