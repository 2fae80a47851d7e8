"""runnc_py.net.cmdline: every word survives its guest's own parser (decoders in
cmdline_decoders.py, written from the guests' rules), or is refused with one line."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runnc_py.errors import RunncError
from runnc_py.net.cmdline import CMDLINE_MAX, GuestLine, guest_words, lkl_word
from runnc_py.net.config import guest_config
from runnc_py.net.facts import NetworkFacts
from runnc_py.net.lkl import render_lkl_json, validate_lkl_json
from runnc_py.net.solo5 import solo5_cmdline_args
from tests.unit.cmdline_decoders import (
    buildargv,
    jsmn_members,
    lkl_decode,
    mirage_bootvar,
    rumprun_parseargs,
)

MAC = "02:42:ac:11:00:02"
# Docker's bridge, dual stack: IPv6 and MAC values are full of colons.
FACTS = NetworkFacts.from_dict(
    {
        "interfaces": [
            {
                "name": "eth0",
                "mac": MAC,
                "mtu": 1500,
                "ipv4": ["172.17.0.2/16"],
                "ipv6": ["fd00:dead:beef::2/64"],
                "routes": [
                    {"dst": "0.0.0.0/0", "gateway": "172.17.0.1", "dev": "eth0"},
                    {"dst": "::/0", "gateway": "fd00:dead:beef::1", "dev": "eth0"},
                ],
            }
        ]
    }
)
HARD_ENV = (
    "PATH=/usr/local/bin:/usr/bin",
    "GREETING=hi there",
    'QUOTED=say "hi" and \'bye\'',
    "BACK=C:\\dir\\ end\\",
    "TABS=a\tb\nc\vd\fe\rf",
    "EMPTY=",
    "UNI=héllo wörld ☃",
)
HARD_ARGS = ("hello world", 'x"y', "", "--", "-c", "--config", "a\\b", "'", "ünï côdé", " ")
SYSCTL = "net.ipv4.tcp_wmem=4096 87380 2147483647"


def line_of(words: tuple[str, ...]) -> str:
    return " ".join(words)  # what the tender does with the request's words


# ---------------------------------------------------------------------------- LKL


def test_lkl_line_gives_env_config_and_args_unchanged() -> None:
    line = GuestLine(args=HARD_ARGS, env=HARD_ENV)
    words = guest_words("lkl-json", line, FACTS, device_names=["tap"])
    got = lkl_decode(line_of(words))
    assert got.env == ["__RUMP_FDINFO_NET_tap=4", *HARD_ENV]
    assert got.argv == ["solo5", *HARD_ARGS]
    assert got.config == guest_config(FACTS, "lkl-json", device_names=["tap"])
    assert got.config is not None
    validate_lkl_json(got.config, "nabla")
    config = json.loads(got.config)
    assert config["interfaces"][0]["mac"] == MAC
    assert config["interfaces"][0]["ipv6"] == "fd00:dead:beef::2"


def test_the_issue_example_round_trips() -> None:
    """issue 13: args ["/app.spt", "hello world", "x\\"y"], env PATH and GREETING."""
    line = GuestLine(args=("hello world", 'x"y'), env=("PATH=/bin", "GREETING=hi there"))
    got = lkl_decode(line_of(guest_words("lkl-json", line, FACTS, device_names=["tap"])))
    assert got.argv == ["solo5", "hello world", 'x"y']
    assert got.env == ["__RUMP_FDINFO_NET_tap=4", "PATH=/bin", "GREETING=hi there"]


def test_lkl_json_with_spaces_survives_the_tokenizer() -> None:
    text = render_lkl_json(FACTS, "nabla", device_names=["tap"], extra={"sysctl": SYSCTL})
    words = buildargv(lkl_word(text))
    assert words == [text] and json.loads(words[0])["sysctl"] == SYSCTL


def test_upstream_dialect_has_no_fdinfo_word() -> None:
    got = lkl_decode(line_of(guest_words("lkl-json-upstream", GuestLine(args=("a",)), FACTS)))
    assert got.env == [] and got.argv == ["solo5", "a"]
    assert got.config is not None
    validate_lkl_json(got.config, "upstream")


def test_env_mode_without_network_is_the_lkl_form() -> None:
    line = GuestLine(args=HARD_ARGS, env=HARD_ENV, with_env=True)
    got = lkl_decode(line_of(guest_words("none", line)))
    assert (got.env, got.config, got.argv) == (list(HARD_ENV), None, ["solo5", *HARD_ARGS])


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ("-cfoo=1", "process.env[0]: \"-cfoo=1\" starts with -c or --"),
        ("--x=1", "starts with -c or --"),
        ("NOEQUALS", "is not KEY=VALUE"),
        ("K=a\0b", "NUL"),
    ],
)
def test_lkl_env_the_port_would_misread_is_refused(env: str, needle: str) -> None:
    with pytest.raises(RunncError) as err:
        guest_words("lkl-json", GuestLine(env=(env,)), FACTS, device_names=["tap"])
    assert needle in err.value.line() and "\n" not in err.value.line()


def test_lkl_port_drives_one_network_device() -> None:
    two = NetworkFacts.from_dict(
        {"interfaces": [FACTS.to_dict()["interfaces"][0], {
            "name": "eth1", "mac": "02:42:0a:0a:00:05", "mtu": 1500,
            "ipv4": ["10.10.0.5/24"], "ipv6": [], "routes": []}]}
    )  # fmt: skip
    with pytest.raises(RunncError, match="one network device"):
        guest_words("lkl-json", GuestLine(), two, device_names=["tap", "tap2"])


@settings(max_examples=300, deadline=None)
@given(
    env=st.lists(
        st.tuples(
            st.text(st.characters(blacklist_characters="=\0", codec="utf-8"), min_size=1),
            st.text(st.characters(blacklist_characters="\0", codec="utf-8")),
        ).filter(lambda kv: not kv[0].startswith(("-c", "--"))),
        max_size=5,
    ),
    args=st.lists(st.text(st.characters(blacklist_characters="\0", codec="utf-8")), max_size=6),
)
def test_any_lkl_words_round_trip(env: list[tuple[str, str]], args: list[str]) -> None:
    entries = tuple(f"{k}={v}" for k, v in env)
    line = GuestLine(args=tuple(args), env=entries)
    got = lkl_decode(line_of(guest_words("lkl-json", line, FACTS, device_names=["tap"])))
    assert got.env[1:] == list(entries) and got.argv[1:] == args


# ---------------------------------------------------------------------------- MirageOS


def test_mirage_line_gives_flags_then_args() -> None:
    args = ("hello world", 'x"y', "a\\b", "--", "'", "ünï", "tab\there")
    words = guest_words("solo5-cmdline", GuestLine(args=args, env=HARD_ENV), FACTS)
    assert mirage_bootvar(line_of(words)) == [*solo5_cmdline_args(FACTS), *args]


def test_mirage_refuses_empty_arguments_and_env_mode() -> None:
    with pytest.raises(RunncError, match="argument 1 is empty"):
        guest_words("solo5-cmdline", GuestLine(args=("a", "")))
    with pytest.raises(RunncError, match="no environment"):
        guest_words("solo5-cmdline", GuestLine(env=("A=1",), with_env=True))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_characters="\0", codec="utf-8"), min_size=1)))
def test_any_mirage_words_round_trip(args: list[str]) -> None:
    words = guest_words("solo5-cmdline", GuestLine(args=tuple(args)))
    assert mirage_bootvar(line_of(words)) == args


# ---------------------------------------------------------------------------- rumprun


def rumprun_decode(text: str) -> tuple[list[str], list[str], list[str]]:
    """(env entries, argv, raw net members) as rumprun's config walk sees them."""
    members = jsmn_members(text)
    env = [v for k, v in members if k == "env"]
    (cmdline,) = [v for k, v in members if k == "cmdline"]
    return env, rumprun_parseargs(cmdline), [v for k, v in members if k == "net"]


def test_rumprun_line_is_one_json_object() -> None:
    env = ("PATH=/bin", "GREETING=hi there", "UNI=☃", "TAB=a\tb")
    args = ("hello world", 'x"y', "", "a\\b", "ünï", "nl\nx", "--")
    words = guest_words("rumprun-json", GuestLine(args=args, env=env, program="/app"), FACTS)
    assert len(words) == 1
    got_env, argv, nets = rumprun_decode(words[0])
    assert got_env == list(env) and argv == ["/app", *args]
    assert [json.loads(n)["addr"] for n in nets] == ["172.17.0.2", "fd00:dead:beef::2"]


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (GuestLine(args=("it's",)), "single quote"),
        (GuestLine(env=('Q="x"',)), "quote or backslash"),
        (GuestLine(env=("B=a\\b",)), "quote or backslash"),
    ],
)
def test_rumprun_refuses_what_its_json_cannot_carry(line: GuestLine, needle: str) -> None:
    with pytest.raises(RunncError, match=needle):
        guest_words("rumprun-json", line, FACTS)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_characters="'\0", codec="utf-8"))))
def test_any_rumprun_words_round_trip(args: list[str]) -> None:
    words = guest_words("rumprun-json", GuestLine(args=tuple(args), program="p"))
    assert rumprun_decode(words[0])[1] == ["p", *args]


# ---------------------------------------------------------------------------- all families


def test_plain_solo5_line_is_the_arguments_joined() -> None:
    assert guest_words("none", GuestLine(args=("a b", "c"), env=HARD_ENV)) == ("a b", "c")


@pytest.mark.parametrize("kind", ["none", "lkl-json", "solo5-cmdline", "rumprun-json"])
def test_the_byte_limit_is_checked_after_escaping(kind: str) -> None:
    # 8000 spaces (rumprun: double quotes) fit unescaped; each needs a backslash escape.
    special = '"' if kind == "rumprun-json" else " "
    args = (special * 4000, special * 4000) if kind != "none" else ("x" * 8192,)
    guest_words(kind, GuestLine(args=("x" * 4000, "y" * 4000)))  # fits
    with pytest.raises(RunncError) as err:
        guest_words(kind, GuestLine(args=args))
    message = err.value.line()
    assert f"at most {CMDLINE_MAX}" in message and "\n" not in message


def test_lone_surrogates_are_refused_not_crashed() -> None:
    with pytest.raises(RunncError, match="UTF-8"):
        guest_words("lkl-json", GuestLine(args=("\udc80",)), FACTS, device_names=["tap"])


# ---------------------------------------------------------------------------- create, no network


def test_plan_words_follow_the_configuration_kind_annotation() -> None:
    """Devices attached by annotation (nothing wired): the words still suit the guest family
    `org.runnc-py.net.config` names, and `org.runnc-py.cmdline` decides about process.env."""
    from runnc_py.oci.plan import guest_args

    env = ("PATH=/bin", "GREETING=hi there")
    lkl = lkl_decode(line_of(guest_args(("a b", ""), env, None, kind="lkl-json")))
    assert (lkl.env, lkl.config, lkl.argv) == (list(env), None, ["solo5", "a b", ""])
    assert lkl_decode(line_of(guest_args(("x",), env, "args", kind="lkl-json"))).env == []
    (text,) = guest_args(("a b",), env, None, kind="rumprun-json", program="/app")
    assert rumprun_decode(text)[:2] == (list(env), ["/app", "a b"])
    assert mirage_bootvar(line_of(guest_args(("a b",), env, None, kind="solo5-cmdline"))) == [
        "a b"
    ]
    assert guest_args(("a b",), env, None) == ("a b",)  # plain Solo5: unchanged
    with pytest.raises(RunncError, match="no environment"):
        guest_args(("a",), env, "env", kind="solo5-cmdline")
    with pytest.raises(RunncError, match=r"annotation org\.runnc-py\.net\.config: unknown"):
        guest_args(("a",), env, None, kind="bogus")
