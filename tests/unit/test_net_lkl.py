"""LKL JSON validation: what LKL's parser refuses (or the Nabla port truncates) is our error."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runnc_py.errors import RunncError
from runnc_py.net.facts import Address, InterfaceFacts, NetworkFacts
from runnc_py.net.lkl import SIZE_MAX, json_tokens, render_lkl_json, validate_lkl_json

IFACE = {
    "type": "rumpfd",
    "name": "service0",
    "mac": "02:42:ac:11:00:02",
    "mtu": "1500",
    "ip": "172.17.0.2",
    "masklen": "16",
}
TAP_IFACE = {"type": "tap", "param": "tapeth0", "mac": "02:42:ac:11:00:02", "mtu": "1500"}


def config(**top: Any) -> str:
    return json.dumps({"gateway": "172.17.0.1", "interfaces": [IFACE], **top})


def upstream(**top: Any) -> str:
    return json.dumps({"gateway": "172.17.0.1", "interfaces": [TAP_IFACE], **top})


def test_design_example_is_valid_nabla_json() -> None:
    validate_lkl_json(
        '{"gateway":"172.17.0.1","interfaces":[{"type":"rumpfd","name":"tap","ip":"172.17.0.2",'
        '"masklen":"16","mac":"02:42:ac:11:00:02"}],"mount":"proc","singlecpu":"1",'
        '"delay_main":"50000","debug":"0"}'
    )


@pytest.mark.parametrize(
    ("text", "dialect", "message"),
    [
        (config(nameserver="1.1.1.1"), "nabla", "unknown key 'nameserver'"),
        (upstream(delay_main="1"), "upstream", "unknown key 'delay_main'"),
        (upstream(route="10.0.0.0/8=eth0"), "upstream", "unknown key 'route'"),
        (
            json.dumps({"interfaces": [{**IFACE, "gw": "x"}]}),
            "nabla",
            "unknown key 'gw' in interfaces[0]",
        ),
        (json.dumps({"interfaces": [IFACE]}), "upstream", "unknown key 'name' in interfaces[0]"),
        (config(debug=0), "nabla", "'debug' must be a string, not a number"),
        (config(debug=True), "nabla", "'debug' must be a string, not a boolean"),
        (
            json.dumps({"interfaces": [{**IFACE, "mtu": 1500}]}),
            "nabla",
            "interfaces[0].mtu must be a string, not a number",
        ),
        (json.dumps({"interfaces": {"a": "b"}}), "nabla", "'interfaces' must be an array"),
        (json.dumps({"interfaces": ["eth0"]}), "nabla", "interfaces[0] must be an object"),
        ('["x"]', "nabla", "the top level must be a JSON object"),
        ('{"debug":"0",', "nabla", "not valid JSON"),
        ('{"debug":"0","debug":"1"}', "nabla", "key 'debug' repeats"),
        (
            json.dumps({"interfaces": [{"type": "tap", "param": f"t{i}"} for i in range(16)]}),
            "upstream",
            "16 interfaces; this dialect configures at most 15",
        ),
        (
            config(route=";".join(f"10.{i}.0.0/16=172.17.0.1" for i in range(20))),
            "nabla",
            "'route' is 469 bytes; LKL copies at most 255",
        ),
    ],
)
def test_invalid_configs_are_refused(text: str, dialect: str, message: str) -> None:
    with pytest.raises(RunncError) as err:
        validate_lkl_json(text, dialect)
    assert message in err.value.message
    assert err.value.where == f"lkl-json ({dialect})"


FULL = {
    "type": "tap",
    "param": "t",
    "mtu": "1500",
    "ip": "10.0.0.2",
    "masklen": "24",
    "ipv6": "fd00::2",
    "masklen6": "64",
}  # 15 tokens
TOP = ["debug", "mount", "singlecpu", "sysctl", "boot_cmdline", "dump"]  # 2 tokens each


def sized(full: int, small: int, top: int) -> str:
    """{"interfaces": [...]} of 3 + 15 * full + 3 * small + 2 * top tokens."""
    interfaces = [FULL] * full + [{"mtu": "1500"}] * small
    return json.dumps({"interfaces": interfaces, **dict.fromkeys(TOP[:top], "0")})


def test_token_limit_is_exactly_300() -> None:
    for text, tokens in ((sized(19, 1, 4), 299), (sized(19, 0, 6), 300)):
        assert json_tokens(json.loads(text)) == tokens
        validate_lkl_json(text, "nabla")
    over = sized(19, 1, 5)
    assert json_tokens(json.loads(over)) == 301
    with pytest.raises(RunncError, match="301 JSON tokens; LKL parses at most 300"):
        validate_lkl_json(over, "nabla")


def test_upstream_token_limit_applies_within_15_interfaces() -> None:
    every_key = {**FULL, "mac": "02:00:00:00:00:01", "neigh": "", "qdisc": "", "offload": "0"}
    text = json.dumps({"interfaces": [every_key] * 13})  # 3 + 13 * 23 = 302 tokens
    with pytest.raises(RunncError, match="302 JSON tokens"):
        validate_lkl_json(text, "upstream")


def test_size_limit_is_one_4096_byte_read() -> None:
    base = config(sysctl="")
    pad = SIZE_MAX - len(base)
    validate_lkl_json(config(sysctl="x" * pad))
    with pytest.raises(RunncError, match=f"4096 bytes; the guest reads at most {SIZE_MAX}"):
        validate_lkl_json(config(sysctl="x" * (pad + 1)))


def many(n: int) -> NetworkFacts:
    return NetworkFacts(
        interfaces=tuple(
            InterfaceFacts(
                name=f"eth{i}",
                mac=f"02:00:00:00:00:{i:02x}",
                mtu=1500,
                ipv4=(Address(f"10.{i}.0.2", 24),),
                ipv6=(Address(f"fd00:{i}::2", 64),),
            )
            for i in range(n)
        )
    )


def test_renderer_refuses_what_does_not_fit() -> None:
    render_lkl_json(many(15), "upstream")
    with pytest.raises(RunncError, match="16 interfaces; this dialect configures at most 15"):
        render_lkl_json(many(16), "upstream")
    # 17 dual-stack NICs of 17 tokens each + the Nabla defaults are exactly 300 tokens.
    render_lkl_json(many(17), "nabla")
    with pytest.raises(RunncError, match="317 JSON tokens; LKL parses at most 300"):
        render_lkl_json(many(18), "nabla")


def test_extra_keys_are_validated_too() -> None:
    text = render_lkl_json(
        many(1), "nabla", extra={"sysctl": "net.ipv4.tcp_wmem=4096 87380 4194304", "debug": "1"}
    )
    assert json.loads(text)["debug"] == "1"
    with pytest.raises(RunncError, match="unknown key 'verbose'"):
        render_lkl_json(many(1), "nabla", extra={"verbose": "1"})
    with pytest.raises(RunncError, match="'interfaces' comes from the network facts"):
        render_lkl_json(many(1), "nabla", extra={"interfaces": "[]"})


def test_gateway_on_a_later_device_is_refused() -> None:
    from runnc_py.net.facts import Route

    a, b = many(2).interfaces
    b = InterfaceFacts(b.name, b.mac, b.mtu, b.ipv4, b.ipv6, (Route("::", 0, "fd00:1::1", "eth1"),))
    a = InterfaceFacts(
        a.name, a.mac, a.mtu, a.ipv4, a.ipv6, (Route("0.0.0.0", 0, "10.0.0.1", "eth0"),)
    )
    with pytest.raises(RunncError, match="IPv6 default route goes through eth1"):
        render_lkl_json(NetworkFacts(interfaces=(a, b)))


def test_unknown_dialect() -> None:
    with pytest.raises(RunncError, match="unknown LKL dialect 'old'"):
        render_lkl_json(many(1), "old")


# ---- issue 9 item 10: upstream LKL sets an IPv4 address only when 0 < masklen < 32


def _host32(prefix: int) -> NetworkFacts:
    return NetworkFacts.from_dict(
        {"interfaces": [{"name": "eth0", "mac": "02:42:ac:11:00:02", "mtu": 1500,
                         "ipv4": [f"10.244.1.5/{prefix}"], "ipv6": [], "routes": []}]}
    )  # fmt: skip


def test_upstream_dialect_refuses_a_slash_32_address() -> None:
    with pytest.raises(RunncError) as err:
        render_lkl_json(_host32(32), "upstream")
    line = err.value.line()
    assert line.startswith("lkl-json (upstream): eth0 10.244.1.5/32: IPv4 prefix length 32")
    assert "1..31" in line and "\n" not in line
    render_lkl_json(_host32(31), "upstream")  # the longest it configures


def test_nabla_dialect_accepts_a_slash_32_address() -> None:
    text = render_lkl_json(_host32(32), "nabla")
    assert json.loads(text)["interfaces"][0]["masklen"] == "32"


@pytest.mark.parametrize(
    ("dialect", "masklen", "ok"),
    [("upstream", "32", False), ("upstream", "0", False), ("upstream", "31", True),
     ("nabla", "32", True), ("nabla", "33", False), ("nabla", "0", False),
     ("nabla", "+16", False), ("nabla", "١٦", False)],
)  # fmt: skip
def test_validation_checks_masklen_per_dialect(dialect: str, masklen: str, ok: bool) -> None:
    entry = {**(IFACE if dialect == "nabla" else TAP_IFACE), "ip": "10.0.0.2", "masklen": masklen}
    text = json.dumps({"interfaces": [entry]})
    if ok:
        validate_lkl_json(text, dialect)
    else:
        with pytest.raises(RunncError, match=r"masklen|prefix length"):
            validate_lkl_json(text, dialect)


def test_deeply_nested_json_is_one_line_not_a_crash() -> None:
    with pytest.raises(RunncError, match="not valid JSON"):
        validate_lkl_json("[" * 4000)
