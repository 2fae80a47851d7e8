"""The image cache's bookkeeping (keys, locks, refs, gc, ls) and source detection."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from pathlib import Path

import pytest

from runnc_py.errors import RunncError
from runnc_py.rootfs.cache import Cache, cache_key, resolve_cache_dir
from runnc_py.rootfs.pack import write_docker_save, write_oci_layout
from runnc_py.rootfs.sources import detect

DAY = 86400.0


def fake_entry(cache: Cache, key: str, age: float = 0.0) -> Path:
    """An entry as publish() leaves it (the cache never looks inside the image)."""
    tmp = cache.tmp_image(key)
    tmp.write_bytes(b"\0" * 4096)
    cache.publish(key, tmp, {"source": f"src-{key}", "kind": "directory"})
    if age:
        past = time.time() - age
        os.utime(cache.meta_path(key), (past, past))
    return cache.image(key)


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    c = Cache(tmp_path / "cache")
    c.ensure()
    return c


def test_cache_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RUNNC_PY_CACHE_DIR", raising=False)
    monkeypatch.delenv("RUNNC_PY_CACHE", raising=False)
    if os.geteuid() == 0:
        assert resolve_cache_dir() == Path("/var/lib/runnc-py/rootfs")
    monkeypatch.setenv("RUNNC_PY_CACHE", str(tmp_path / "root"))
    assert resolve_cache_dir() == tmp_path / "root" / "rootfs"
    monkeypatch.setenv("RUNNC_PY_CACHE_DIR", str(tmp_path))
    assert resolve_cache_dir() == tmp_path
    assert resolve_cache_dir("/x") == Path("/x")


def test_key_depends_on_identity_and_every_parameter() -> None:
    base = cache_key("oci:sha256:a", size=None, headroom=None, devices="safe")
    assert base == cache_key("oci:sha256:a", devices="safe", headroom=None, size=None)
    assert base != cache_key("oci:sha256:b", size=None, headroom=None, devices="safe")
    assert base != cache_key("oci:sha256:a", size=1 << 30, headroom=None, devices="safe")
    assert base != cache_key("oci:sha256:a", size=None, headroom=None, devices="allow")


def test_a_shared_cache_directory_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(RunncError, match="cache directory is not private"):
        Cache(shared).ensure()


def test_publish_is_read_only_and_listed(cache: Cache) -> None:
    image = fake_entry(cache, "k1")
    assert image.stat().st_mode & 0o777 == 0o444
    assert not list(cache.tmp.iterdir())
    (entry,) = cache.entries()
    assert (entry.key, entry.size, entry.source, entry.live_refs) == ("k1", 4096, "src-k1", 0)
    assert json.loads(cache.meta_path("k1").read_text())["key"] == "k1"


def test_lock_excludes_a_second_holder(cache: Cache) -> None:
    with cache.locked("k") as got:
        assert got
        with cache.locked("k", blocking=False) as again:
            assert not again
    with cache.locked("k", blocking=False) as free:
        assert free


def test_gc_keeps_recent_or_referenced_entries(cache: Cache, tmp_path: Path) -> None:
    fake_entry(cache, "recent")
    fake_entry(cache, "old", age=30 * DAY)
    fake_entry(cache, "oldref", age=30 * DAY)
    copy = tmp_path / "container.ext4"
    copy.write_bytes(b"x")
    cache.add_ref("oldref", copy)
    removed = {e.key for e in cache.gc()}
    assert removed == {"old"}
    assert {e.key for e in cache.entries()} == {"recent", "oldref"}
    copy.unlink()  # the container went away: its reference is dead
    assert {e.key for e in cache.gc()} == {"oldref"}
    assert not (cache.refs / "oldref").exists()
    assert not (cache.locks / "old.lock").exists()


def test_gc_all_removes_all_but_entries_being_built(cache: Cache) -> None:
    fake_entry(cache, "a")
    fake_entry(cache, "b")
    with cache.locked("b"):
        assert [e.key for e in cache.gc(all_=True)] == ["a"]
    assert [e.key for e in cache.gc(all_=True)] == ["b"]
    assert cache.entries() == []


def test_gc_removes_dead_builders_leftovers_only(cache: Cache) -> None:
    (cache.tmp / "dead.123.ext4").write_bytes(b"partial")
    (cache.tmp / "dead.123.ext4.abc.work").mkdir()
    (cache.tmp / "busy.456.ext4").write_bytes(b"partial")
    with cache.locked("busy"):
        cache.gc()
        assert sorted(p.name for p in cache.tmp.iterdir()) == ["busy.456.ext4"]
    cache.gc()
    assert list(cache.tmp.iterdir()) == []


def test_clear_tmp_only_touches_its_key(cache: Cache) -> None:
    (cache.tmp / "k.1.ext4").write_bytes(b"x")
    (cache.tmp / "other.1.ext4").write_bytes(b"x")
    cache.clear_tmp("k")
    assert [p.name for p in cache.tmp.iterdir()] == ["other.1.ext4"]


def layer(*names: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = len(name)
            tf.addfile(info, io.BytesIO(name.encode()))
    return buf.getvalue()


def test_detect_kinds_and_identities(tmp_path: Path) -> None:
    layers = [layer("a"), layer("b")]
    digests = write_oci_layout(tmp_path / "oci", layers)
    write_docker_save(tmp_path / "save.tar", layers)
    (tmp_path / "plain.tar").write_bytes(layers[0])
    (tmp_path / "dir").mkdir()
    oci = detect(tmp_path / "oci")
    assert (oci.kind, len(oci.layers)) == ("oci-layout", 2)
    assert oci.identity() == "oci:" + ",".join(digests)
    save = detect(tmp_path / "save.tar", from_layers=True)
    assert save.kind == "docker-save" and save.describe().endswith("(2 layers)")
    assert str(save.identity()).startswith("docker:sha256:")
    assert detect(tmp_path / "plain.tar").kind == "tar"
    # A rootfs tarball that merely holds a file called manifest.json is still one layer.
    (tmp_path / "app.tar").write_bytes(layer("manifest.json", "srv/app"))
    assert detect(tmp_path / "app.tar").kind == "tar"
    assert detect(tmp_path / "dir").kind == "directory"
    with pytest.raises(RunncError, match="--from-layers: source is a directory"):
        detect(tmp_path / "dir", from_layers=True)
    with pytest.raises(RunncError, match="No such file"):
        detect(tmp_path / "missing")
    (tmp_path / "junk").write_bytes(b"junk" * 300)
    with pytest.raises(RunncError, match="not a directory, tar or compressed tar"):
        detect(tmp_path / "junk")


def test_tampered_manifest_and_bad_digests_are_refused(tmp_path: Path) -> None:
    write_oci_layout(tmp_path / "oci", [layer("a")])
    index = json.loads((tmp_path / "oci/index.json").read_text())
    manifest_blob = tmp_path / "oci/blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]
    manifest_blob.write_text(manifest_blob.read_text().replace('"size"', '"size" ', 1))
    with pytest.raises(RunncError, match="does not match its digest"):
        detect(tmp_path / "oci")
    index["manifests"][0]["digest"] = "sha256:../../etc/passwd"
    (tmp_path / "oci/index.json").write_text(json.dumps(index))
    with pytest.raises(RunncError, match="invalid digest"):
        detect(tmp_path / "oci")


def test_docker_save_with_two_images_is_refused(tmp_path: Path) -> None:
    write_docker_save(tmp_path / "save.tar", [layer("a")])
    with tarfile.open(tmp_path / "save.tar") as tf:
        f = tf.extractfile("manifest.json")
        assert f is not None
        manifest = json.loads(f.read())
    manifest.append({**manifest[0], "RepoTags": ["other:1"]})
    data = json.dumps(manifest).encode()
    with tarfile.open(tmp_path / "two.tar", "w") as out, tarfile.open(tmp_path / "save.tar") as tf:
        for m in tf.getmembers():
            if m.name == "manifest.json":
                m.size = len(data)
                out.addfile(m, io.BytesIO(data))
            else:
                out.addfile(m, tf.extractfile(m) if m.isfile() else None)
    with pytest.raises(RunncError, match=r"tarball holds 2 images \(test:latest, other:1\)"):
        detect(tmp_path / "two.tar")
