"""What an LKL guest's command line carries, read back from a real guest (issue 13).

Our `lklcmd` guest declares the Nabla LKL manifest (block `rootfs`, net `tap`) and prints its
raw command line. Booted by `create`/`start` in the lab's Docker-like namespace pair (and by
`exec --net-auto`), under spt and under hvt, its line is decoded by the LKL port's own rules
(tests/unit/cmdline_decoders.py, written from frankenlibc's argv.c, not from our encoder): the
environment, the JSON configuration and the arguments must come out exactly as meant.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from runnc_py.net.lkl import validate_lkl_json
from tests.conftest import runnc_binary
from tests.integration import test_lifecycle
from tests.integration.netlab import Lab
from tests.integration.test_lifecycle import Runtime, assert_gone, wait_exit
from tests.unit.cmdline_decoders import (
    LklParams,
    jsmn_members,
    lkl_decode,
    mirage_bootvar,
    rumprun_parseargs,
)

pytestmark = pytest.mark.root

rt = test_lifecycle.rt
subreaper = test_lifecycle.subreaper

# issue 13's example, plus what else must survive: quotes, backslashes, tabs, empty words,
# words that look like the port's own flags, non-ASCII.
ARGS = ["hello world", 'x"y', "", "--", "-c", "a\\b", "it's", "ünï côdé"]
ENV = ["PATH=/bin", "GREETING=hi there", 'Q=say "hi"', "B=C:\\x\\", "T=a\tb", "U=☃"]
TARGETS = ["spt", "hvt"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The rootfs images `create` builds go to the test's own cache, never /var/lib/runnc-py."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RUNNC_PY_CACHE", str(cache))
    monkeypatch.delenv("RUNNC_PY_CACHE_DIR", raising=False)
    return cache


def guest_binary(guests: Path, target: str) -> Path:
    return guests / "lklcmd.spt" if target == "spt" else guests / "hvt" / "lklcmd.hvt"


def raw_line(text: str) -> str:
    """The guest's command line, from its `lklcmd: hex` lines."""
    lines = text.splitlines()
    assert "lklcmd: end" in lines, text
    (size,) = [int(s.split()[2]) for s in lines if s.startswith("lklcmd: cmdline ")]
    raw = bytes.fromhex("".join(s[len("lklcmd: hex ") :] for s in lines if "lklcmd: hex " in s))
    assert len(raw) == size, text
    return raw.decode()


def decoded_output(text: str) -> LklParams:
    """The guest's command line split as the LKL port does."""
    return lkl_decode(raw_line(text))


def lkl_bundle(rt: Runtime, lab: Lab, target: str) -> Path:
    bundle = rt.bundle(
        "lklcmd.spt",
        tuple(ARGS),
        env=ENV,
        annotations={"org.runnc-py.mem": "16"},
        namespaces=[{"type": "network", "path": lab.path}, {"type": "uts"}, {"type": "ipc"}],
    )
    if target == "hvt":
        name = "lklcmd.hvt"
        (bundle / "rootfs" / name).write_bytes(guest_binary(rt.guests, "hvt").read_bytes())
        config = json.loads((bundle / "config.json").read_text())
        config["process"]["args"][0] = f"/{name}"
        (bundle / "config.json").write_text(json.dumps(config))
    return bundle


@pytest.mark.parametrize("target", TARGETS)
def test_create_hands_env_config_and_args_to_the_lkl_guest(
    rt: Runtime, lab: Lab, target: str
) -> None:
    before = lab.state()
    cid = rt.new_id("lkl")
    pid, out = rt.created(cid, lkl_bundle(rt, lab, target))
    show = rt("net", "show", "--json", cid)
    assert show.returncode == 0, show.stderr
    record = json.loads(show.stdout)
    assert record["config"]["kind"] == "lkl-json"
    assert rt("start", cid).returncode == 0
    assert wait_exit(pid) == 0, out.read_text()

    got = decoded_output(out.read_text())
    assert got.env == ["__RUMP_FDINFO_NET_tap=4", *ENV]
    assert got.argv == ["solo5", *ARGS]
    assert got.config == record["config"]["text"]  # what create rendered, unchanged
    assert got.config is not None
    validate_lkl_json(got.config, "nabla")
    config = json.loads(got.config)
    (iface,) = config["interfaces"]
    assert (iface["type"], iface["name"], iface["ip"], iface["masklen"]) == (
        "rumpfd", "tap", "10.77.0.2", "24",
    )  # fmt: skip
    assert iface["ipv6"] == "fd77::2" and config["gateway"] == "10.77.0.1"
    assert config["route"] == "10.99.0.0/16=10.77.0.254"

    assert rt("delete", cid).returncode == 0
    assert_gone(rt, cid)
    assert lab.state() == before, "taps, filters and addresses must be as they were"


def test_create_refuses_an_env_entry_the_port_would_misread(rt: Runtime, lab: Lab) -> None:
    before = lab.state()
    bundle = lkl_bundle(rt, lab, "spt")
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["env"] = ["PATH=/bin", "--config=x"]
    marker = rt.tmp / "prestart-ran"
    config["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch {marker}"]}]}
    (bundle / "config.json").write_text(json.dumps(config))
    cid = rt.new_id("lklbad")
    done, _ = rt.create(cid, bundle)
    assert done.returncode != 0
    message = test_lifecycle.last_error(rt)
    assert "process.env[1]" in message and "starts with -c or --" in message, message
    assert_gone(rt, cid)
    assert not marker.exists(), "refused before the init ran the engine's hooks"
    assert lab.state() == before, "nothing may be wired for a refused command line"


@pytest.mark.parametrize("target", TARGETS)
def test_exec_net_auto_gives_the_lkl_guest_config_and_args(
    lab: Lab, guests: Path, tmp_path: Path, target: str
) -> None:
    before = lab.state()
    image = tmp_path / "rootfs.img"
    image.write_bytes(b"\0" * (1 << 20))
    proc = subprocess.run(
        ["ip", "netns", "exec", lab.ctr, *runnc_binary(), "exec", "--net-auto",
         "--net-config", "lkl-json", "--mem", "16", "--block", f"rootfs={image}",
         str(guest_binary(guests, target)), "--", *ARGS],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = decoded_output(proc.stdout)
    assert got.env == ["__RUMP_FDINFO_NET_tap=4"]  # no container, no environment
    assert got.argv == ["solo5", *ARGS]
    assert got.config is not None
    validate_lkl_json(got.config, "nabla")
    (iface,) = json.loads(got.config)["interfaces"]
    assert (iface["name"], iface["ip"], iface["ipv6"]) == ("tap", "10.77.0.2", "fd77::2")
    assert lab.state() == before, "taps, filters and addresses must be as they were"


def net_auto(lab: Lab, guest: Path, image: Path, kind: str, args: list[str]) -> str:
    proc = subprocess.run(
        ["ip", "netns", "exec", lab.ctr, *runnc_binary(), "exec", "--net-auto",
         "--net-config", kind, "--mem", "16", "--block", f"rootfs={image}", str(guest),
         "--", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return raw_line(proc.stdout)


def test_exec_net_auto_mirage_and_rumprun_words_survive(
    lab: Lab, guests: Path, tmp_path: Path
) -> None:
    """The other families through the same encoder: MirageOS's bootvar parser and rumprun's
    JSON reader get the words back (MirageOS drops empty words, rumprun cannot carry `'`)."""
    lab.ip(lab.ctr, "route", "del", "10.99.0.0/16")  # neither form has route flags
    image = tmp_path / "rootfs.img"
    image.write_bytes(b"\0" * (1 << 20))
    guest = guests / "lklcmd.spt"
    args = ["hello world", 'x"y', "--", "a\\b", "ünï côdé", "tab\there"]

    words = mirage_bootvar(net_auto(lab, guest, image, "solo5-cmdline", args))
    assert words[: words.index("--ipv6-gateway=fd77::1") + 1] == [
        "--ipv4=10.77.0.2/24", "--ipv4-gateway=10.77.0.1",
        "--ipv6=fd77::2/64", "--ipv6-gateway=fd77::1",
    ]  # fmt: skip
    assert words[4:] == args

    members = jsmn_members(net_auto(lab, guest, image, "rumprun-json", [*args, ""]))
    (cmdline,) = [v for k, v in members if k == "cmdline"]
    assert rumprun_parseargs(cmdline) == [str(guest), *args, ""]
    nets = [json.loads(v) for k, v in members if k == "net"]
    assert [(n["addr"], n["mask"]) for n in nets] == [("10.77.0.2", "24"), ("fd77::2", "64")]
