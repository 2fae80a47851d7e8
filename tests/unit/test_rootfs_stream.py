"""Layer streams (truncation, corruption, digests, compression) and mountinfo parsing."""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import pytest

from runnc_py.errors import RunncError
from runnc_py.rootfs.limits import Budget, BuildLimits
from runnc_py.rootfs.overlay import find_mount, overlay_layers, parse_mountinfo
from runnc_py.rootfs.pack import compress
from runnc_py.rootfs.sources import MAX_ARCHIVE_MEMBERS, detect
from runnc_py.rootfs.tarstream import MAX_EXTENDED_HEADER, read_layer


def make_tar(n: int = 3, size: int = 3000) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for i in range(n):
            info = tarfile.TarInfo(f"f{i}")
            info.size = size
            tf.addfile(info, io.BytesIO(bytes([65 + i]) * size))
    return buf.getvalue()


def read(blob: bytes, **kw: object) -> dict[str, bytes]:
    got: dict[str, bytes] = {}

    def visit(member: tarfile.TarInfo, data: object) -> None:
        f = data()  # type: ignore[operator]
        got[member.name] = f.read() if f is not None else b""

    read_layer(io.BytesIO(blob), visit, where="layer 1", **kw)  # type: ignore[arg-type]
    return got


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("how", ["none", "gzip", "zstd"])
def test_reads_plain_and_compressed_layers_with_digests(how: str) -> None:
    if how == "zstd" and shutil.which("zstd") is None:
        pytest.skip("zstd program not installed")
    plain = make_tar()
    blob = compress(plain, how)
    got = read(blob, digest=sha(blob), size=len(blob))
    assert got == {f"f{i}": bytes([65 + i]) * 3000 for i in range(3)}
    assert read(blob, digest=sha(plain), digest_of="uncompressed") == got


def test_digest_mismatch_is_refused() -> None:
    blob = make_tar()
    with pytest.raises(RunncError, match="layer 1: layer digest mismatch"):
        read(blob, digest=sha(blob + b"x"))
    with pytest.raises(RunncError, match="manifest says"):
        read(blob, size=len(blob) + 1)


@pytest.mark.parametrize("cut", [100, 512 + 1000, 3 * 3584, 3 * 3584 + 100])
def test_truncated_tar_is_refused_even_without_digest(cut: int) -> None:
    blob = make_tar()
    with pytest.raises(RunncError, match=r"layer 1: (corrupt or truncated|layer is truncated)"):
        read(blob[:cut])


def test_corrupt_header_is_refused() -> None:
    blob = bytearray(make_tar())
    blob[3584 + 148 : 3584 + 156] = b"9999999\0"  # second member's header checksum
    with pytest.raises(RunncError, match="corrupt tar header at byte 3584"):
        read(bytes(blob))


def test_truncated_gzip_is_refused() -> None:
    blob = gzip.compress(make_tar())
    with pytest.raises(RunncError, match="corrupt or truncated layer"):
        read(blob[: len(blob) - 20])


def test_corrupt_zstd_is_refused() -> None:
    if shutil.which("zstd") is None:
        pytest.skip("zstd program not installed")
    blob = bytearray(compress(make_tar(size=200_000), "zstd"))
    blob[len(blob) // 2] ^= 0xFF
    with pytest.raises(RunncError, match="layer 1: "):
        read(bytes(blob))


def test_garbage_is_refused() -> None:
    with pytest.raises(RunncError, match="corrupt or truncated layer"):
        read(b"this is not a tar archive" * 50)


DOCKER = "/var/lib/docker/overlay2"
MOUNTINFO = "\n".join(
    [
        "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
        f"612 22 0:52 / {DOCKER}/abc/merged rw,relatime - overlay overlay "
        f"rw,lowerdir={DOCKER}/l/X1:{DOCKER}/l/X2,upperdir={DOCKER}/abc/diff,"
        f"workdir={DOCKER}/abc/work",
        f"613 22 0:53 / {DOCKER}/def/merged rw,relatime - overlay overlay "
        r"rw,lowerdir=l/Y1:l/Y\:2,upperdir=def/diff,workdir=def/work",
        r"614 22 0:54 / /tmp/with\040space rw - overlay overlay "
        r"ro,lowerdir+=/a,lowerdir+=/b\054c,datadir+=/d",
        "615 22 0:55 / /mnt rw - tmpfs tmpfs rw",
        "616 22 0:56 / /mnt rw - overlay overlay rw,lowerdir=/top",
    ]
)


def test_parse_mountinfo_finds_overlay_layers() -> None:
    mounts = parse_mountinfo(MOUNTINFO + "\ngarbage line\n")
    assert len(mounts) == 6
    docker = find_mount(mounts, "/var/lib/docker/overlay2/abc/merged")
    assert docker is not None
    layers = overlay_layers(docker)
    assert layers is not None
    assert layers.lowerdirs == ("/var/lib/docker/overlay2/l/X1", "/var/lib/docker/overlay2/l/X2")
    assert layers.upperdir == "/var/lib/docker/overlay2/abc/diff"


def test_relative_layers_are_taken_from_the_storage_directory() -> None:
    mount = find_mount(parse_mountinfo(MOUNTINFO), "/var/lib/docker/overlay2/def/merged")
    assert mount is not None
    layers = overlay_layers(mount)
    assert layers is not None
    assert layers.lowerdirs == ("/var/lib/docker/overlay2/l/Y1", "/var/lib/docker/overlay2/l/Y:2")
    assert layers.upperdir == "/var/lib/docker/overlay2/def/diff"


def test_escapes_and_new_mount_api_options() -> None:
    mount = find_mount(parse_mountinfo(MOUNTINFO), "/tmp/with space")
    assert mount is not None
    layers = overlay_layers(mount)
    assert (
        layers is not None and layers.lowerdirs == ("/a", "/b,c", "/d") and layers.upperdir is None
    )


def test_top_mount_wins_and_non_overlay_is_none() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    top = find_mount(mounts, "/mnt")
    assert top is not None and top.fstype == "overlay"
    assert overlay_layers(mounts[4]) is None
    assert find_mount(mounts, "/nowhere") is None


# ---------------------------------------------------------------------------- issue 9 item 7


def test_oversized_extended_header_is_refused_before_it_is_read() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("f")
        info.pax_headers = {"comment": "x" * (MAX_EXTENDED_HEADER + 1)}
        tf.addfile(info)
    # Before: tarfile read the whole record into memory (300 MiB -> 1.25 GB RSS).
    with pytest.raises(
        RunncError, match=f"extended tar header of .* \\(at most {MAX_EXTENDED_HEADER}\\)"
    ):
        read(gzip.compress(buf.getvalue(), 1))


def test_budget_stops_the_stream_at_the_limit() -> None:
    plain = make_tar(n=3, size=1 << 20) + bytes(8 << 20)  # zeros after the end block count too
    budget = Budget(BuildLimits(max_bytes=6 << 20, max_files=10), "layer 1")
    with pytest.raises(RunncError, match="layers decompress to more than 6 MiB"):
        read(gzip.compress(plain, 1), budget=budget)
    assert budget.bytes <= (6 << 20) + 1  # nothing read past one byte over the limit
    assert read(gzip.compress(plain, 1), budget=Budget(BuildLimits(16 << 20, 10), "l"))


def test_a_big_plain_tar_is_a_layer_without_indexing_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "layer.tar"
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
        for i in range(MAX_ARCHIVE_MEMBERS + 1):
            tf.addfile(tarfile.TarInfo(f"f{i}"))
        info = tarfile.TarInfo("manifest.json")
        text = b'[{"Layers": []}]'
        info.size = len(text)
        tf.addfile(info, io.BytesIO(text))
    assert detect(path).kind == "tar"


def test_deeply_nested_image_json_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (tmp_path / "index.json").write_text('{"manifests":' + "[" * 200_000 + "]" * 200_000 + "}")
    with pytest.raises(RunncError, match=r"index\.json is nested too deep"):
        detect(tmp_path)
