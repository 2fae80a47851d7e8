"""The unikernel facts cache: same facts as a fresh read, invalidated by any rewrite."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runnc_py.errors import RunncError
from runnc_py.unikernel.cache import load_unikernel_cached
from runnc_py.unikernel.elf import load_unikernel
from tests.unit import elfcraft as ec


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("RUNNC_PY_CACHE", str(cache))
    return cache


def craft(path: Path, entry_offset: int = 0) -> Path:
    uk = ec.Unikernel.solo5(devices=[("service0", ec.NET_BASIC), ("storage", ec.BLOCK_BASIC)])
    uk.header.entry += entry_offset
    return uk.write(path)


def test_a_hit_gives_the_same_facts_as_a_fresh_read(tmp_path: Path, private_cache: Path) -> None:
    path = craft(tmp_path / "k.spt")
    first = load_unikernel_cached(path)
    assert list((private_cache / "images").glob("*.facts")), "the first read fills the cache"
    assert load_unikernel_cached(path) == first == load_unikernel(path)


def test_a_hit_does_not_import_pyelftools(tmp_path: Path, private_cache: Path) -> None:
    path = craft(tmp_path / "k.spt")
    load_unikernel_cached(path)
    probe = (
        "import sys; from runnc_py.unikernel.cache import load_unikernel_cached as l; "
        f"l({str(path)!r}); print('elftools' in sys.modules)"
    )
    env = {**os.environ, "RUNNC_PY_CACHE": str(private_cache)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "False", out.stderr


def test_rewriting_the_file_is_a_miss(tmp_path: Path) -> None:
    path = craft(tmp_path / "k.spt")
    before = load_unikernel_cached(path)
    st = os.stat(path)
    craft(tmp_path / "new.spt", entry_offset=0x10)
    os.replace(tmp_path / "new.spt", path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: ctime and inode differ
    after = load_unikernel_cached(path)
    assert after.entry == before.entry + 0x10


def test_errors_are_not_cached(tmp_path: Path) -> None:
    path = tmp_path / "bad.spt"
    path.write_bytes(b"not an elf")
    for _ in range(2):
        with pytest.raises(RunncError, match=r"bad\.spt"):
            load_unikernel_cached(path)


def test_an_entry_others_can_write_is_ignored(tmp_path: Path, private_cache: Path) -> None:
    path = craft(tmp_path / "k.spt")
    good = load_unikernel_cached(path)
    (entry,) = (private_cache / "images").glob("*.facts")
    identity, facts = marshal.loads(entry.read_bytes())
    entry.write_bytes(marshal.dumps((identity, (*facts[:2], facts[2] + 4096, *facts[3:]))))
    assert load_unikernel_cached(path).entry == good.entry + 4096, "tampering took effect"
    os.chmod(entry, 0o666)
    assert load_unikernel_cached(path) == good


def test_an_entry_of_another_file_version_is_ignored(tmp_path: Path, private_cache: Path) -> None:
    """The entry is named by device and inode only: the identity inside it decides."""
    path = craft(tmp_path / "k.spt")
    good = load_unikernel_cached(path)
    (entry,) = (private_cache / "images").glob("*.facts")
    identity, facts = marshal.loads(entry.read_bytes())
    stale = (*identity[:3], identity[3] - 1, *identity[4:])  # another mtime
    entry.write_bytes(marshal.dumps((stale, (*facts[:2], facts[2] + 4096, *facts[3:]))))
    assert load_unikernel_cached(path) == good


def test_a_damaged_entry_is_replaced(tmp_path: Path, private_cache: Path) -> None:
    path = craft(tmp_path / "k.spt")
    good = load_unikernel_cached(path)
    (entry,) = (private_cache / "images").glob("*.facts")
    for damage in (entry.read_bytes()[:-7], marshal.dumps(("x", ())), b"", b"\xff" * 9):
        entry.write_bytes(damage)
        assert load_unikernel_cached(path) == good
    assert entry.read_bytes() != damage, "the entry was written again"


def test_prune_keeps_the_newest_entries(tmp_path: Path) -> None:
    from runnc_py import cachedir

    for i in range(5):
        entry = tmp_path / f"e{i}"
        entry.write_bytes(b"x")
        os.utime(entry, ns=(i * 10**9, i * 10**9))
    cachedir.prune(str(tmp_path), keep=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e2", "e3", "e4"]
    cachedir.prune(str(tmp_path), keep=3)  # within bounds: nothing more goes
    assert len(list(tmp_path.iterdir())) == 3
