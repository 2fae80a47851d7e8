"""net.json in a container's state dir, `runnc-py net show`, and the stand-in guest's replies."""

from __future__ import annotations

import ipaddress
import json
import struct
from pathlib import Path

import pytest

from runnc_py.errors import RunncError
from runnc_py.net import store
from runnc_py.net.echo_guest import EchoGuest, _checksum
from runnc_py.net.facts import NetworkFacts
from runnc_py.net.store import NetRecord
from tests.conftest import RunCli
from tests.unit.test_net_facts import ETH0, wired_example


def record() -> NetRecord:
    facts = NetworkFacts.from_dict(
        {"interfaces": [ETH0], "dns": {"nameservers": ["10.0.0.53"], "search": ["example.com"]}}
    )
    return NetRecord(facts, wired_example(), "solo5-cmdline", "--ipv4=172.17.0.2/16")


def test_record_round_trips_through_the_state_dir(tmp_path: Path) -> None:
    path = store.save(tmp_path, record())
    assert path == str(tmp_path / "net.json")
    assert store.load(tmp_path) == record()
    assert [p.name for p in tmp_path.iterdir()] == ["net.json"]  # no temporary file left


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON"),
        ('{"version": 7}', "format version 7 is not 1"),
        (
            '{"version": 1, "facts": {"interfaces": []}, "config": {"kind": "xml"}}',
            "unknown configuration kind",
        ),
        ('{"version": 1, "facts": {"interfaces": [{"name": "eth0"}]}}', "is not a MAC address"),
    ],
)
def test_corrupt_records_are_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "net.json").write_text(content)
    with pytest.raises(RunncError) as err:
        store.load(tmp_path)
    assert message in err.value.message
    assert str(tmp_path / "net.json") in (err.value.where or "")
    assert "\n" not in err.value.line()


def test_journal_lines_are_read_newest_first_and_a_cut_line_is_ignored(tmp_path: Path) -> None:
    """net.json is a journal: one record per line, appended before each wiring step and at
    the end. `load` returns the newest complete line."""
    from runnc_py.net.wired import IfaceUndo

    full = record()
    assert full.wired is not None
    first = full.wired.replace(devices=(), undo=(IfaceUndo("eth0", tap="tapeth0"),))
    save = store.journal(tmp_path, full.facts, full.config_kind, full.config)
    save(first)
    assert store.load(tmp_path).wired == first
    save(full.wired)
    path = tmp_path / "net.json"
    assert len(path.read_text().split("\n\n")) == 2  # records, each on a line of its own
    assert store.load(tmp_path) == full
    with open(path, "a") as f:
        f.write('{"version": 1, "facts": {"interf')  # a crash in the middle of a line
    assert store.load(tmp_path) == full
    store.save(tmp_path, full.replace(config="final"))  # the final record: one more line
    assert store.load(tmp_path).config == "final"
    again = store.journal(tmp_path, full.facts)
    again(first)  # a new journal starts a new file
    assert len(path.read_text().split("\n\n")) == 1


def test_missing_record(tmp_path: Path) -> None:
    with pytest.raises(RunncError, match="no network record"):
        store.load(tmp_path)


def test_net_show_prints_the_record(tmp_path: Path, runnc: RunCli) -> None:
    (tmp_path / "c1").mkdir()
    store.save(tmp_path / "c1", record())
    text = runnc("--root", str(tmp_path), "net", "show", "c1")
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == [
        "service0 <- tap tapeth0 <-> eth0: mac 02:42:ac:11:00:02 mtu 1500",
        "  inet 172.17.0.2/16",
        "  inet6 fd00::2/64",
        "  route default via 172.17.0.1 dev eth0",
        "dns: nameservers 10.0.0.53; search example.com",
        "netns: /run/netns/c1",
        "config (solo5-cmdline): --ipv4=172.17.0.2/16",
    ]
    as_json = runnc("--root", str(tmp_path), "net", "show", "--json", "c1")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == record().to_dict()


@pytest.mark.parametrize("container_id", ["nope", "../c1"])
def test_net_show_of_unknown_container_fails_in_one_line(
    tmp_path: Path, runnc: RunCli, container_id: str
) -> None:
    proc = runnc("--root", str(tmp_path), "net", "show", container_id)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1


MAC = "02:42:ac:11:00:02"
PEER = bytes.fromhex("0242ac110001")


def guest() -> EchoGuest:
    return EchoGuest(None, "tapeth0", MAC, ["172.17.0.2", "fd00::2"])


def ip4(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def test_echo_guest_answers_arp_for_its_address_only() -> None:
    request = (
        b"\xff" * 6
        + PEER
        + b"\x08\x06"
        + b"\x00\x01\x08\x00\x06\x04\x00\x01"
        + PEER
        + ip4("172.17.0.1")
        + bytes(6)
        + ip4("172.17.0.2")
    )
    reply = guest().answer(request)
    assert reply is not None
    assert reply[:6] == PEER and reply[6:12] == bytes.fromhex(MAC.replace(":", ""))
    assert reply[20:22] == b"\x00\x02"  # ARP reply
    assert reply[28:32] == ip4("172.17.0.2")
    other = request[:-4] + ip4("172.17.0.3")
    assert guest().answer(other) is None


def test_echo_guest_answers_ping_with_valid_checksums() -> None:
    icmp = bytearray(b"\x08\x00\x00\x00\x12\x34\x00\x01" + b"payload!")
    icmp[2:4] = struct.pack("!H", _checksum(icmp))
    header = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(icmp),
            1,
            0,
            64,
            1,
            0,
            ip4("172.17.0.1"),
            ip4("172.17.0.2"),
        )
    )
    header[10:12] = struct.pack("!H", _checksum(header))
    frame = bytes.fromhex(MAC.replace(":", "")) + PEER + b"\x08\x00" + bytes(header) + bytes(icmp)
    reply = guest().answer(frame)
    assert reply is not None
    ip = reply[14:]
    assert _checksum(ip[:20]) == 0 and _checksum(ip[20:]) == 0
    assert ip[12:16] == ip4("172.17.0.2") and ip[16:20] == ip4("172.17.0.1")
    assert ip[20] == 0 and ip[24:] == bytes(icmp[4:])  # echo reply, same id/seq/payload
