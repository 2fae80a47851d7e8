"""The networking path without re, json and dataclasses (docs/boot-path.md): the character-set
checks accept what the regular expressions they replaced accepted, the LKL and journal JSON is
byte for byte what `json` wrote, and what fastjson refuses is reported in json's words."""

from __future__ import annotations

import copy
import ipaddress
import json
import pickle
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runnc_py.errors import RunncError
from runnc_py.net import store
from runnc_py.net.facts import (
    Address,
    DnsFacts,
    InterfaceFacts,
    NetworkFacts,
    Route,
    canonical_ip,
    is_domain,
    is_mac,
    mac_from_text,
)
from runnc_py.net.lkl import render_lkl_json, validate_lkl_json
from runnc_py.net.nlmsg import RouteReply
from runnc_py.net.wired import GuestNic, IfaceUndo, WiredNetwork
from runnc_py.oci import fastjson

# The expressions net/facts.py used before, matched as it matched them.
OLD_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
OLD_DOMAIN = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})?\.?$")

MACS = st.one_of(
    st.lists(st.sampled_from("0123456789abcdefABCDEFg:"), max_size=20).map("".join),
    st.lists(st.text("0123456789abcdef", min_size=1, max_size=3), min_size=1, max_size=7).map(
        ":".join
    ),
)
DOMAINS = st.one_of(
    st.text("ab_.-Z9é", max_size=8),
    st.integers(250, 256).flatmap(
        lambda n: st.sampled_from(["a" * n, "a" * (n - 1) + ".", "." + "a" * (n - 1)])
    ),
)


@given(MACS)
def test_is_mac_accepts_what_the_expression_did(text: str) -> None:
    assert is_mac(text) == bool(OLD_MAC.match(text))


@given(DOMAINS)
def test_is_domain_accepts_what_the_expression_did(text: str) -> None:
    assert is_domain(text) == bool(OLD_DOMAIN.match(text))


def test_a_trailing_newline_is_refused_now() -> None:
    """`$` matched before a final newline; the character sets do not (a decision: a MAC or a
    search domain from net.json with a newline is not one)."""
    with pytest.raises(RunncError, match="is not a MAC address"):
        mac_from_text("02:42:ac:11:00:02\n", "mac")
    assert not is_domain("example.org\n")


WORDS = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)


def facts_with(nameservers: tuple[str, ...], search: tuple[str, ...]) -> NetworkFacts:
    eth0 = InterfaceFacts(
        "eth0",
        "02:42:ac:11:00:02",
        1500,
        (Address("172.17.0.2", 16),),
        (Address("fd00::2", 64),),
        (Route("0.0.0.0", 0, "172.17.0.1", "eth0"), Route("10.1.0.0", 16, "172.17.0.9", "eth0")),
    )
    return NetworkFacts((eth0,), DnsFacts(nameservers, search))


@given(st.dictionaries(st.sampled_from(["sysctl", "debug", "boot_cmdline"]), WORDS))
def test_lkl_json_is_what_json_wrote(extra: dict[str, str]) -> None:
    text = render_lkl_json(facts_with((), ()), device_names=["service0"], extra=extra)
    assert text == json.dumps(json.loads(text), separators=(",", ":"))


@given(WORDS, WORDS)
def test_the_journal_line_is_what_json_wrote(label: str, guest_device: str) -> None:
    facts = facts_with(("10.0.0.53",), ("example.org",))
    nic = GuestNic(guest_device or "x", "tapeth0", "02:42:ac:11:00:02", 1500, "eth0")
    undo = IfaceUndo("eth0", tap="tapeth0", ingress=True, iface_index=2, tap_index=7000)
    record = store.NetRecord(
        facts, WiredNetwork(None, "1:2", (nic,), (undo,), "1:2"), "none", label
    )
    data = record.to_dict()
    assert fastjson.dumps(data, separators=(",", ":")) == json.dumps(data, separators=(",", ":"))


def test_the_journal_reads_lines_json_wrote(tmp_path: Path) -> None:
    """A net.json written by the json module (older runnc-py) loads; so does one written now."""
    facts = facts_with(("10.0.0.53",), ())
    record = store.NetRecord(facts, WiredNetwork(None, "1:2"), "lkl-json", '{"a":"b"}')
    old = "\n" + json.dumps(record.to_dict(), separators=(",", ":")) + "\n"
    (tmp_path / store.NET_JSON).write_text(old)
    assert store.load(tmp_path) == record
    store.save(tmp_path, record.replace(config="{}"))
    assert store.load(tmp_path).config == "{}"
    lines = (tmp_path / store.NET_JSON).read_text().split("\n")
    assert [json.loads(line)["config"]["text"] for line in lines if line] == ['{"a":"b"}', "{}"]


@pytest.mark.parametrize(
    "text",
    ['{"interfaces":[],"debug":"1","debug":"2"}', '{"debug":"1"} x', "{", "", '{"a":NaN', "[1,]"],
)
def test_bad_lkl_json_is_reported_in_jsons_words(text: str) -> None:
    try:
        json.loads(text, object_pairs_hook=_refuse_repeats)
    except ValueError as exc:
        expected = f"lkl-json (nabla): not valid JSON: {exc}"
    with pytest.raises(RunncError) as caught:
        validate_lkl_json(text)
    assert str(caught.value) == expected


def test_an_unreadable_journal_is_reported_in_jsons_words(tmp_path: Path) -> None:
    (tmp_path / store.NET_JSON).write_text('{"version": 1,')
    try:
        json.loads('{"version": 1,')
    except ValueError as exc:
        expected = f"not valid JSON: {exc}"
    with pytest.raises(RunncError, match=re.escape(expected)):
        store.load(tmp_path)


def _refuse_repeats(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key!r} repeats")
        result[key] = value
    return result


HEXTET = st.text("0123456789abcdefABCDEF", max_size=5)
IPV6 = st.lists(HEXTET, min_size=1, max_size=10).map(":".join)
IPV4 = st.lists(st.integers(0, 300).map(str) | st.text("0123456789", max_size=4), max_size=5).map(
    ".".join
)
IP_TEXT = st.one_of(
    IPV4,
    IPV6,
    st.tuples(IPV6, IPV4).map(":".join),
    st.text("0123456789abcdef:.%Ae ", max_size=20),
    st.sampled_from(["::ffff:1.2.3.4", "::1.2.3.4", "fe80::1%eth0", "01.2.3.4", "::", "1::"]),
)


def _ip_address(text: object) -> tuple[str, int] | str:
    try:
        addr = ipaddress.ip_address(text)  # type: ignore[arg-type]
    except ValueError as exc:
        return str(exc)
    return str(addr), addr.version


@given(IP_TEXT)
def test_canonical_ip_is_what_ipaddress_says(text: str) -> None:
    try:
        got: tuple[str, int] | str = canonical_ip(text)
    except ValueError as exc:
        got = str(exc)
    assert got == _ip_address(text)


def test_canonical_ip_leaves_other_types_to_ipaddress() -> None:
    assert canonical_ip(3) == ("0.0.0.3", 4)
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        canonical_ip(None)


def test_tuple_records_behave_as_named_tuples() -> None:
    addr = Address("10.0.0.2", 24)
    assert addr == ("10.0.0.2", 24) and hash(addr) == hash(("10.0.0.2", 24))
    assert (addr.addr, addr.prefixlen) == tuple(addr) == (*addr,)
    assert repr(addr) == "Address(addr='10.0.0.2', prefixlen=24)" and str(addr) == "10.0.0.2/24"
    assert addr._replace(prefixlen=8) == Address(addr="10.0.0.2", prefixlen=8)
    assert addr._asdict() == {"addr": "10.0.0.2", "prefixlen": 24}
    assert copy.deepcopy(addr) == addr and type(pickle.loads(pickle.dumps(addr))) is Address
    with pytest.raises(AttributeError):
        addr.addr = "x"  # type: ignore[misc]
    with pytest.raises(TypeError, match="missing argument 'prefixlen'"):
        Address("10.0.0.2")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="unexpected field names"):
        addr._replace(mask=1)
    reply = RouteReply(4, None, 0, "10.0.0.1", 2, None, 254, 3, 0, 1, 0, multipath=False)
    assert reply.gateway == "10.0.0.1" and reply.multipath is False and len(reply) == 12
