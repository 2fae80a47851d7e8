"""The lean rtnetlink codec against pyroute2, the independent oracle (no root, no kernel).

Builders: the bytes `nlmsg` writes equal pyroute2's encoding of the same message, built the way
the wiring built it with pyroute2's message classes before the codec existed. Decoders: what
pyroute2 encodes as a kernel reply, `nlmsg` decodes to the same values pyroute2 reads back.
Plus the structural rule: the modules `create` and `delete` import for networking never load
pyroute2 (its import runs ndb, ipdb, asyncio: 140-185 ms).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import sysconfig
from typing import Any

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg
from pyroute2.netlink.rtnl.tcmsg import cls_u32, tcmsg

from runnc_py.net import nlmsg

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def encoded(msg: Any, msg_type: int = 16, flags: int = 5, seq: int = 1) -> bytes:
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    msg["header"]["pid"] = 0
    msg.encode()
    return bytes(msg.data)


def ours(body: bytes, msg_type: int = 16, flags: int = 5, seq: int = 1) -> bytes:
    return nlmsg.frame(msg_type, flags, seq, body)


# ---------------------------------------------------------------------------- builders


@pytest.mark.parametrize(
    ("kwargs", "attrs", "flags"),
    [
        (
            {"mtu": 9000, "no_link_local": True},
            [
                ["IFLA_MTU", 9000],
                [
                    "IFLA_AF_SPEC",
                    {"attrs": [["AF_INET6", {"attrs": [["IFLA_INET6_ADDR_GEN_MODE", 1]]}]]},
                ],
            ],
            0,
        ),
        ({"up": True}, [], 1),
        ({"mtu": 1500}, [["IFLA_MTU", 1500]], 0),
    ],
)
def test_link_change_is_byte_equal_to_pyroute2(
    kwargs: dict[str, Any], attrs: list[Any], flags: int
) -> None:
    msg = ifinfmsg()
    msg["index"] = 70001
    msg["flags"] = msg["change"] = flags
    msg["attrs"] = attrs
    assert ours(nlmsg.link_change(70001, **kwargs)) == encoded(msg)


def test_ingress_qdisc_is_byte_equal_to_pyroute2() -> None:
    msg = tcmsg()
    msg["index"] = 7
    msg["handle"] = 0xFFFF0000
    msg["parent"] = 0xFFFFFFF1
    msg["attrs"] = [["TCA_KIND", "ingress"], ["TCA_OPTIONS", {"attrs": []}]]
    assert ours(nlmsg.ingress_qdisc(7), 36) == encoded(msg, 36)


@pytest.mark.parametrize(("index", "to"), [(2, 70001), (70001, 2), (5, 16777215)])
def test_redirect_filter_is_byte_equal_to_pyroute2(index: int, to: int) -> None:
    msg = tcmsg()
    msg["index"] = index
    msg["parent"] = 0xFFFF0000
    msg["info"] = socket.htons(0x0003) | (1 << 16)  # protocol all, prio 1
    action = {"kind": "mirred", "direction": "egress", "action": "redirect", "ifindex": to}
    options = cls_u32.get_parameters({"target": 0, "keys": ["0x0/0x0+0"], "action": action})
    msg["attrs"] = [["TCA_KIND", "u32"], ["TCA_OPTIONS", options]]
    assert ours(nlmsg.redirect_filter(index, to), 44, 0x605) == encoded(msg, 44, 0x605)


@pytest.mark.parametrize(
    ("addr", "prefixlen", "add", "extra"),
    [
        ("10.77.0.2", 24, False, {}),
        ("fd77::2", 64, False, {}),
        ("10.77.0.2", 24, True, {"flags": 0, "broadcast": "10.77.0.255", "label": "eth0"}),
        ("10.88.0.5", 32, True, {"flags": 0x100, "scope": 0}),
        ("fd77::2", 64, True, {"flags": 0x02 | 0x100}),
        ("fe80::1", 64, True, {"flags": 0x02, "scope": 253}),
    ],
)
def test_addresses_are_byte_equal_to_pyroute2(
    addr: str, prefixlen: int, add: bool, extra: dict[str, Any]
) -> None:
    v4 = ":" not in addr
    msg = ifaddrmsg()
    msg["family"] = socket.AF_INET if v4 else socket.AF_INET6
    msg["prefixlen"] = prefixlen
    msg["index"] = 3
    attrs: list[Any] = [["IFA_ADDRESS", addr]]
    if v4:
        attrs.append(["IFA_LOCAL", addr])
    if add:
        msg["scope"] = extra.get("scope", 0)
        msg["flags"] = extra.get("flags", 0) & 0xFF
        attrs.append(["IFA_FLAGS", extra.get("flags", 0)])
        if extra.get("broadcast"):
            attrs.append(["IFA_BROADCAST", extra["broadcast"]])
        if extra.get("label"):
            attrs.append(["IFA_LABEL", extra["label"]])
    msg["attrs"] = attrs
    body = nlmsg.address(3, addr, prefixlen, add=add, **extra)
    assert ours(body, 20) == encoded(msg, 20)


@pytest.mark.parametrize(
    ("dst", "prefixlen", "gateway", "metric", "proto", "scope", "onlink"),
    [
        ("0.0.0.0", 0, "10.77.0.1", None, 3, 0, False),
        ("10.99.0.0", 16, "10.77.0.254", 5, 3, 0, False),
        ("169.254.1.1", 32, None, None, 3, 253, False),
        ("::", 0, "fd77::1", 1024, 3, 0, True),
        ("2001:db8::", 48, None, 256, 4, 0, False),
    ],
)
def test_routes_are_byte_equal_to_pyroute2(
    dst: str,
    prefixlen: int,
    gateway: str | None,
    metric: int | None,
    proto: int,
    scope: int,
    onlink: bool,
) -> None:
    msg = rtmsg()
    msg["family"] = socket.AF_INET6 if ":" in dst else socket.AF_INET
    msg["dst_len"] = prefixlen
    msg["table"] = 254
    msg["proto"] = proto
    msg["scope"] = scope
    msg["type"] = 1
    msg["flags"] = 4 if onlink else 0
    attrs: list[Any] = [["RTA_OIF", 9]]
    if prefixlen:
        attrs.append(["RTA_DST", dst])
    if gateway:
        attrs.append(["RTA_GATEWAY", gateway])
    if metric is not None:
        attrs.append(["RTA_PRIORITY", metric])
    msg["attrs"] = attrs
    body = nlmsg.route(
        9, dst, prefixlen, gateway=gateway, metric=metric, proto=proto, scope=scope, onlink=onlink
    )
    assert ours(body, 24, 0x605) == encoded(msg, 24, 0x605)


def test_delete_link_by_index_is_byte_equal_to_pyroute2() -> None:
    msg = ifinfmsg()
    msg["index"] = 70001
    assert ours(nlmsg.link_by_index(70001), 17) == encoded(msg, 17)


# ---------------------------------------------------------------------------- decoders


def reply(msg: Any, msg_type: int) -> bytes:
    """A kernel-style reply as pyroute2 encodes it; the body after the nlmsghdr."""
    return encoded(msg, msg_type, 2, 7)[nlmsg.HEADER.size :]


def test_a_tap_link_decodes_as_pyroute2_reads_it() -> None:
    msg = ifinfmsg()
    msg["index"], msg["ifi_type"], msg["flags"] = 70001, 1, 0x1003
    msg["attrs"] = [
        ["IFLA_IFNAME", "tapeth0"],
        ["IFLA_ADDRESS", "02:42:ac:11:00:02"],
        ["IFLA_MTU", 1500],
        [
            "IFLA_LINKINFO",
            {
                "attrs": [
                    ["IFLA_INFO_KIND", "tun"],
                    [
                        "IFLA_INFO_DATA",
                        {
                            "attrs": [
                                ["IFLA_TUN_TYPE", 2],
                                ["IFLA_TUN_PI", 0],
                                ["IFLA_TUN_PERSIST", 1],
                                ["IFLA_TUN_NUM_QUEUES", 1],
                            ]
                        },
                    ],
                ]
            },
        ],
    ]
    body = reply(msg, 16)
    link = nlmsg.decode_link(body)
    back = ifinfmsg(body_with_header(body, 16))
    back.decode()
    assert (link.index, link.type, link.flags) == (back["index"], back["ifi_type"], back["flags"])
    assert (link.name, link.mac, link.mtu) == (
        back.get_attr("IFLA_IFNAME"),
        back.get_attr("IFLA_ADDRESS"),
        back.get_attr("IFLA_MTU"),
    )
    assert link.kind == back.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "tun"
    assert link.tun == {
        nlmsg.IFLA_TUN_TYPE: 2,
        nlmsg.IFLA_TUN_PI: 0,
        nlmsg.IFLA_TUN_PERSIST: 1,
        nlmsg.IFLA_TUN_NUM_QUEUES: 1,
    }


def body_with_header(body: bytes, msg_type: int) -> bytes:
    return nlmsg.frame(msg_type, 2, 7, body)


@pytest.mark.parametrize(
    ("family", "attrs", "expect"),
    [
        (
            socket.AF_INET,
            [
                ["IFA_ADDRESS", "10.77.0.9"],  # the peer's on a point-to-point link
                ["IFA_LOCAL", "10.77.0.2"],
                ["IFA_BROADCAST", "10.77.0.255"],
                ["IFA_LABEL", "eth0"],
                ["IFA_FLAGS", 0x280],
            ],
            ("10.77.0.2", "10.77.0.255", "eth0", 0x280),
        ),
        (socket.AF_INET6, [["IFA_ADDRESS", "fd77::2"]], ("fd77::2", None, None, 0x80)),
    ],
)
def test_addresses_decode_as_pyroute2_reads_them(
    family: int, attrs: list[Any], expect: tuple[Any, ...]
) -> None:
    msg = ifaddrmsg()
    msg["family"], msg["prefixlen"], msg["flags"], msg["scope"], msg["index"] = (
        family,
        24,
        0x80,
        0,
        5,
    )
    msg["attrs"] = attrs
    decoded = nlmsg.decode_address(reply(msg, 20))
    assert decoded is not None
    assert (decoded.address, decoded.broadcast, decoded.label, decoded.flags) == expect
    assert (decoded.index, decoded.prefixlen, decoded.scope) == (5, 24, 0)


def test_routes_decode_as_pyroute2_reads_them() -> None:
    msg = rtmsg()
    msg["family"], msg["dst_len"], msg["table"], msg["proto"] = socket.AF_INET6, 48, 254, 3
    msg["type"], msg["flags"] = 1, 4
    msg["attrs"] = [
        ["RTA_TABLE", 254],
        ["RTA_DST", "2001:db8::"],
        ["RTA_GATEWAY", "fd77::1"],
        ["RTA_OIF", 3],
        ["RTA_PRIORITY", 1024],
    ]
    route = nlmsg.decode_route(reply(msg, 24))
    assert route == nlmsg.RouteReply(
        family=socket.AF_INET6,
        dst="2001:db8::",
        prefixlen=48,
        gateway="fd77::1",
        oif=3,
        metric=1024,
        table=254,
        proto=3,
        scope=0,
        type=1,
        flags=4,
        multipath=False,
    )


def test_our_redirect_filter_decodes_to_its_target() -> None:
    body = nlmsg.redirect_filter(2, 70001)
    decoded = nlmsg.decode_filter(body)
    assert (decoded.index, decoded.parent, decoded.kind) == (2, 0xFFFF0000, "u32")
    assert (decoded.redirects, decoded.other_actions) == ((70001,), 0)


def test_a_foreign_filter_action_is_counted() -> None:
    msg = tcmsg()
    msg["index"], msg["parent"] = 2, 0xFFFF0000
    options = cls_u32.get_parameters(
        {"target": 0, "keys": ["0x0/0x0+0"], "action": {"kind": "gact", "action": "drop"}}
    )
    msg["attrs"] = [["TCA_KIND", "u32"], ["TCA_OPTIONS", options]]
    decoded = nlmsg.decode_filter(reply(msg, 44))
    assert (decoded.redirects, decoded.other_actions) == ((), 1)


def test_reply_buffers_split_into_messages_and_errors() -> None:
    ack = nlmsg.frame(nlmsg.NLMSG_ERROR, 0x100, 4, (0).to_bytes(4, "little") + bytes(16))
    refusal = nlmsg.frame(nlmsg.NLMSG_ERROR, 0, 5, (-17).to_bytes(4, "little", signed=True))
    done = nlmsg.frame(nlmsg.NLMSG_DONE, 2, 6, bytes(4))
    found = nlmsg.messages(ack + refusal + done + b"\x00\x01")  # trailing junk is ignored
    assert [(m.kind, m.seq) for m in found] == [(2, 4), (2, 5), (3, 6)]
    assert [nlmsg.error_code(m.body) for m in found[:2]] == [0, 17]


# ---------------------------------------------------------------------------- structure

IMPORT_CHECK = """
import sys
sys.path[:0] = sys.argv[1:3]  # the checkout, then site-packages (where pyroute2 is), as
                              # /usr/local/bin/runnc-py sets them up under -IS
import runnc_py.cli, runnc_py.oci.lifecycle, runnc_py.oci.autodev
import runnc_py.net.handover, runnc_py.net.config, runnc_py.net.store, runnc_py.net.read
import runnc_py.net.wiring, runnc_py.net.repair, runnc_py.net.cmdline, runnc_py.net.owner
from runnc_py.net import read_facts, unwire, wire
print(sorted(m for m in sys.modules if m.split(".")[0] == "pyroute2"))
"""


def test_create_and_delete_networking_never_import_pyroute2() -> None:
    proc = subprocess.run(
        [sys.executable, "-IS", "-c", IMPORT_CHECK, ROOT, sysconfig.get_paths()["purelib"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
