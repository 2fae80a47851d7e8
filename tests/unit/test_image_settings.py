"""Image settings, urunc's keys and image names: the pure cores of image build/read-back."""

from __future__ import annotations

import base64
import json

import pytest

from runnc_py.errors import RunncError
from runnc_py.image import settings, urunc
from runnc_py.image.reference import parse_reference


def test_settings_travel_as_labels_and_file() -> None:
    got = settings.image_settings(
        "/hello.spt",
        monitor="spt",
        mem_mb=64,
        annotations={"org.runnc-py.cmdline": "env", "x": "y"},
    )
    assert settings.labels(got)["org.runnc-py.image"] == "1"
    assert settings.labels(got)["x"] == "y"
    back = settings.parse_settings_file(settings.settings_file(got))
    assert back == {
        "org.runnc-py.cmdline": "env",
        "org.runnc-py.mem": "64",
        "org.runnc-py.monitor": "spt",
        "org.runnc-py.unikernel": "/hello.spt",
    }  # only our keys go into /runnc-py.json


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[]", "must hold a JSON object"),
        (b"{", "not valid JSON"),
        (b'{"org.runnc-py.mem": 64}', "value must be a string"),
        (b'{"other.key": "1"}', "unknown key 'other.key'"),
        (b" " * (70 * 1024), "larger than"),
    ],
)
def test_bad_settings_file(data: bytes, message: str) -> None:
    with pytest.raises(RunncError, match=message) as err:
        settings.parse_settings_file(data)
    assert err.value.where == settings.SETTINGS_FILE


def test_pairs() -> None:
    assert settings.parse_pairs(["a=1", "b==2", "a=3"], where="--annotation") == {
        "a": "3",
        "b": "=2",
    }
    for bad in ("novalue", "=x", " a=1"):
        with pytest.raises(RunncError, match="expected KEY=VALUE"):
            settings.parse_pairs([bad], where="--annotation")
    with pytest.raises(RunncError, match="must be spt or hvt"):
        settings.image_settings("/x.spt", monitor="qemu")


# ---------------------------------------------------------------------------- urunc


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_urunc_values_decode_like_urunc() -> None:
    assert urunc.decode_value("b64:" + b64("/unikernel/hello.spt")) == "/unikernel/hello.spt"
    assert urunc.decode_value(b64("spt")) == "spt"  # older bunny: raw base64
    assert urunc.decode_value("/plain/path") == "/plain/path"  # not base64: plain text
    with pytest.raises(RunncError, match="invalid base64"):
        urunc.decode_value("b64:%%%")


def test_urunc_file_maps_onto_our_settings() -> None:
    data = json.dumps(
        {
            "com.urunc.unikernel.unikernelType": b64("rumprun"),
            "com.urunc.unikernel.hypervisor": b64("hvt"),
            "com.urunc.unikernel.binary": b64("/unikernel/app.hvt"),
            "com.urunc.unikernel.cmdline": b64("app -v"),
            "com.urunc.unikernel.block": b64("/data.img"),
            "com.urunc.unikernel.solo5BlkDev": b64("storage"),
            "com.urunc.unikernel.mountRootfs": b64("false"),
            "com.urunc.unikernel.unikernelVersion": "",
        }
    ).encode()
    got = urunc.to_settings(urunc.parse_urunc_file(data), where="/urunc.json")
    assert got.settings == {
        "org.runnc-py.unikernel": "/unikernel/app.hvt",
        "org.runnc-py.monitor": "hvt",
        "org.runnc-py.block.storage": "/data.img",
        "org.runnc-py.rootfs": "none",
    }
    assert got.cmdline == ("app", "-v")


def test_urunc_mount_rootfs_is_our_ext4_rootfs() -> None:
    fields = {"unikernelType": "mirage", "hypervisor": "spt", "binary": "/k.spt",
              "mountRootfs": "true"}  # fmt: skip
    got = urunc.to_settings(fields, where="annotations")
    assert got.settings["org.runnc-py.rootfs"] == "ext4"
    assert got.settings["org.runnc-py.rootfs.device"] == "rootfs"
    assert got.cmdline is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"unikernelType": "unikraft", "hypervisor": "qemu", "binary": "/k"}, "no Solo5 target"),
        ({"unikernelType": "unikraft", "hypervisor": "spt", "binary": "/k"}, "not a Solo5 guest"),
        ({"unikernelType": "rumprun", "hypervisor": "spt"}, "lacks com.urunc.unikernel.binary"),
        (
            {"unikernelType": "rumprun", "hypervisor": "spt", "binary": "/k", "mountRootfs": "x"},
            "must be true or false",
        ),
    ],
)
def test_urunc_refusals(fields: dict[str, str], message: str) -> None:
    with pytest.raises(RunncError, match=message):
        urunc.to_settings(fields, where="/urunc.json")


def test_urunc_annotations_complete() -> None:
    notes = {
        "com.urunc.unikernel.unikernelType": "rumprun",
        "com.urunc.unikernel.hypervisor": "spt",
    }
    assert not urunc.complete(urunc.fields_of(notes))
    notes["com.urunc.unikernel.binary"] = "/k.spt"
    assert urunc.complete(urunc.fields_of(notes))


# ---------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("text", "short", "full"),
    [
        ("hello", "hello:latest", "docker.io/library/hello:latest"),
        ("runnc-py/hello:1", "runnc-py/hello:1", "docker.io/runnc-py/hello:1"),
        ("localhost:5000/a/b:v1.2", "localhost:5000/a/b:v1.2", "localhost:5000/a/b:v1.2"),
        ("quay.io/x/y", "quay.io/x/y:latest", "quay.io/x/y:latest"),
    ],
)
def test_references(text: str, short: str, full: str) -> None:
    ref = parse_reference(text)
    assert (ref.short, ref.full) == (short, full)


@pytest.mark.parametrize("text", ["Hello", "a//b", "x:", "x:-bad", "/abs", ""])
def test_bad_references(text: str) -> None:
    with pytest.raises(RunncError) as err:
        parse_reference(text)
    assert err.value.where == "-t"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"{} x",
        b'{"org.runnc-py.mem": "64",}',
        b"[1,]",
        b"\xef\xbb\xbf{}",  # a UTF-8 byte order mark: json skips it
        '{"org.runnc-py.mem": "64"}'.encode("utf-16"),  # json detects the encoding
        b"\xff\xfe\x00",
        b'{"org.runnc-py.mem": "\xe9"}',
    ],
)
def test_settings_file_is_read_and_refused_as_json_reads_it(data: bytes) -> None:
    """Read through fastjson (create's import budget), with json's results and messages."""
    try:
        expected: object = json.loads(data)
    except ValueError as exc:
        expected = RunncError(f"not valid JSON: {exc}", where="/runnc-py.json")
    if isinstance(expected, RunncError):
        with pytest.raises(RunncError) as err:
            settings.parse_settings_file(data)
        assert err.value.line() == expected.line()
    else:
        assert settings.parse_settings_file(data) == expected


def test_settings_file_is_laid_out_as_json_dumps_does() -> None:
    got = {"org.runnc-py.unikernel": '/h\u00e9llo "x".spt', "org.runnc-py.mem": "64", "a": "b"}
    ours = {k: v for k, v in sorted(got.items()) if k.startswith("org.runnc-py.")}
    assert settings.settings_file(got) == (json.dumps(ours, indent=2) + "\n").encode()
