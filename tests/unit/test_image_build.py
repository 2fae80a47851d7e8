"""`image build` archives read back with our own image reader (runnc_py.rootfs.sources, which
verifies every digest), and `create`'s read-back of an image's settings from a real rootfs."""

from __future__ import annotations

import base64
import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from runnc_py.errors import RunncError
from runnc_py.image.build import BuildRequest, build
from runnc_py.image.readback import effective_settings
from runnc_py.image.reference import parse_reference
from runnc_py.oci.rootpath import open_root
from runnc_py.rootfs.sources import detect


def _request(guests: Path, out: Path, **kw: Any) -> BuildRequest:
    return BuildRequest(
        unikernel=str(guests / "hello.spt"),
        reference=parse_reference(kw.pop("tag", "runnc-py-test/hello:1")),
        output=str(out),
        **kw,
    )


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def _layer_files(members: dict[str, bytes], digest: str) -> dict[str, tarfile.TarInfo]:
    import io

    with tarfile.open(fileobj=io.BytesIO(members[f"blobs/sha256/{digest[7:]}"])) as tar:
        return {m.name: m for m in tar.getmembers()}


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_archive_is_a_real_image(guests: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "img.tar"
    result = build(
        _request(
            guests,
            out,
            fmt=fmt,
            monitor="spt",
            mem_mb=32,
            args=("a",),
            annotations={"org.runnc-py.cmdline": "env"},
        )
    )
    found = detect(out)  # our reader: OCI index -> manifest -> layers, digests checked
    assert found.kind == ("docker-save" if fmt == "docker-archive" else "oci-archive")
    assert len(found.layers) == result.layers == 1
    members = _members(out)
    config = json.loads(members[f"blobs/sha256/{result.config_digest[7:]}"])
    assert config["config"]["Entrypoint"] == ["/hello.spt"]
    assert config["config"]["Cmd"] == ["a"]
    assert config["config"]["Labels"] == {
        "org.runnc-py.image": "1",
        "org.runnc-py.unikernel": "/hello.spt",
        "org.runnc-py.monitor": "spt",
        "org.runnc-py.mem": "32",
        "org.runnc-py.cmdline": "env",
    }
    (diff_id,) = config["rootfs"]["diff_ids"]
    files = _layer_files(members, diff_id)
    assert files["hello.spt"].mode == 0o755 and files["hello.spt"].uid == 0
    assert set(files) == {"hello.spt", "runnc-py.json"}
    index = json.loads(members["index.json"])["manifests"][0]
    assert index["annotations"] == {
        "org.opencontainers.image.ref.name": "runnc-py-test/hello:1",
        "io.containerd.image.name": "docker.io/runnc-py-test/hello:1",
    }
    manifest = json.loads(members[f"blobs/sha256/{index['digest'][7:]}"])
    assert manifest["annotations"]["org.runnc-py.mem"] == "32"
    if fmt == "docker-archive":
        (entry,) = json.loads(members["manifest.json"])
        assert entry["RepoTags"] == ["runnc-py-test/hello:1"]
        assert entry["Layers"] == [f"blobs/sha256/{diff_id[7:]}"]
    else:
        assert "manifest.json" not in members


def test_same_input_same_archive(
    guests: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    build(_request(guests, a))
    build(_request(guests, b))
    assert a.read_bytes() == b.read_bytes()


def test_rootfs_directory_and_image_become_layers(guests: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "app.conf").write_text("x=1\n")
    first = tmp_path / "first.tar"
    one = build(_request(guests, first, rootfs=str(tree), path_in_image="/bin/hello.spt"))
    assert one.layers == 2
    members = _members(first)
    config = json.loads(members[f"blobs/sha256/{one.config_digest[7:]}"])
    assert config["config"]["Entrypoint"] == ["/bin/hello.spt"]
    rootfs_layer, top = config["rootfs"]["diff_ids"]
    assert "etc/app.conf" in _layer_files(members, rootfs_layer)
    assert {"bin", "bin/hello.spt", "runnc-py.json"} <= set(_layer_files(members, top))
    # An image as the rootfs: its layers are taken over (decompressed, digests checked).
    second = tmp_path / "second.tar"
    two = build(_request(guests, second, rootfs=str(first), tag="runnc-py-test/two"))
    assert two.layers == 3
    config2 = json.loads(_members(second)[f"blobs/sha256/{two.config_digest[7:]}"])
    assert config2["rootfs"]["diff_ids"][:2] == [rootfs_layer, top]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"unikernel": "/etc/hostname"}, "/etc/hostname"),
        ({"monitor": "hvt"}, "is an spt unikernel; --monitor hvt cannot run it"),
        ({"mem_mb": 1}, "--mem: must be at least 2 MiB"),
        ({"annotations": {"org.runnc-py.memory": "64"}}, "unknown runnc-py annotation"),
        ({"path_in_image": "rel/x.spt"}, "--path: must be an absolute path"),
        ({"rootfs": "/nonexistent/rootfs"}, "/nonexistent/rootfs"),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(
    guests: Path, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    req = _request(guests, tmp_path / "img.tar")
    req = BuildRequest(**{**req.__dict__, **change})
    with pytest.raises(RunncError) as err:
        build(req)
    assert message in err.value.line() and "\n" not in err.value.line()
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------- read-back


def _root(tmp_path: Path, files: dict[str, str]) -> int:
    root = tmp_path / "rootfs"
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(text)
    return open_root(str(root), where="test")


def test_readback_precedence(tmp_path: Path) -> None:
    fd = _root(tmp_path, {
        "runnc-py.json": json.dumps({"org.runnc-py.mem": "32", "org.runnc-py.monitor": "spt"}),
        "urunc.json": json.dumps({
            "com.urunc.unikernel.unikernelType": base64.b64encode(b"mirage").decode(),
            "com.urunc.unikernel.hypervisor": base64.b64encode(b"hvt").decode(),
            "com.urunc.unikernel.binary": base64.b64encode(b"/k.hvt").decode(),
            "com.urunc.unikernel.cmdline": base64.b64encode(b"--x 1").decode(),
        }),
    })  # fmt: skip
    try:
        got = effective_settings({"org.runnc-py.mem": "64", "other": "v"}, fd)
    finally:
        os.close(fd)
    assert got.annotations == {
        "org.runnc-py.unikernel": "/k.hvt",  # urunc's
        "org.runnc-py.monitor": "spt",  # /runnc-py.json over urunc's hvt
        "org.runnc-py.mem": "64",  # config.json over /runnc-py.json
        "other": "v",
    }
    assert got.cmdline == ("--x", "1")


def test_readback_of_a_plain_rootfs_changes_nothing(tmp_path: Path) -> None:
    fd = _root(tmp_path, {})
    try:
        notes = {"org.runnc-py.mem": "64"}
        got = effective_settings(notes, fd)
    finally:
        os.close(fd)
    assert got.annotations is notes and got.cmdline is None


def test_readback_refuses_a_bad_settings_file(tmp_path: Path) -> None:
    fd = _root(tmp_path, {"runnc-py.json": "[1]"})
    try:
        with pytest.raises(RunncError, match="must hold a JSON object") as err:
            effective_settings({}, fd)
    finally:
        os.close(fd)
    assert err.value.where == "/runnc-py.json in the rootfs"


def test_readback_uses_complete_urunc_annotations_first(tmp_path: Path) -> None:
    fd = _root(tmp_path, {"urunc.json": "not even json"})
    notes = {
        "com.urunc.unikernel.unikernelType": "rumprun",
        "com.urunc.unikernel.hypervisor": "spt",
        "com.urunc.unikernel.binary": "/app.spt",
    }
    try:
        got = effective_settings(notes, fd)
    finally:
        os.close(fd)
    assert got.annotations["org.runnc-py.unikernel"] == "/app.spt"


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_compressed_layers_are_taken_over_plain(
    guests: Path, tmp_path: Path, compression: str
) -> None:
    import hashlib

    from runnc_py.rootfs.pack import write_oci_layout

    if compression == "zstd" and not shutil.which("zstd"):
        pytest.skip("zstd not installed")
    layer = _tar_bytes({"etc/motd": b"hello\n"})
    layout = tmp_path / "layout"
    write_oci_layout(layout, [layer], compression)
    out = tmp_path / "img.tar"
    result = build(_request(guests, out, rootfs=str(layout)))
    config = json.loads(_members(out)[f"blobs/sha256/{result.config_digest[7:]}"])
    assert config["rootfs"]["diff_ids"][0] == "sha256:" + hashlib.sha256(layer).hexdigest()


def test_a_damaged_layer_is_refused(guests: Path, tmp_path: Path) -> None:
    from runnc_py.rootfs.pack import write_oci_layout

    layout = tmp_path / "layout"
    (digest,) = write_oci_layout(layout, [_tar_bytes({"a": b"x" * 600})], "none")
    blob = layout / "blobs" / "sha256" / digest[7:]
    data = bytearray(blob.read_bytes())
    data[520] ^= 1  # inside the file's content: the tar still parses
    blob.write_bytes(bytes(data))
    out = tmp_path / "img.tar"
    with pytest.raises(RunncError, match="does not match its digest"):
        build(_request(guests, out, rootfs=str(layout)))
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["layout"]
