"""Issue 9 item 9 through the real `create`: out-of-range numbers and reserved or overlong IDs
are refused by `create` itself with one line (and one `--log` entry), leaving nothing behind.
"""

from __future__ import annotations

import pytest

from tests.integration import test_lifecycle as lifecycle
from tests.integration.test_lifecycle import Runtime, assert_gone, last_error

pytestmark = pytest.mark.root

# The lifecycle tests' fixtures: a --root of our own, and this process as child subreaper.
rt = lifecycle.rt
subreaper = lifecycle.subreaper


def refused(rt: Runtime, cid: str, bundle: object, *needles: str) -> None:
    done, out = rt.create(cid, bundle)  # type: ignore[arg-type]
    assert done.returncode != 0, out.read_text()
    message = last_error(rt)
    for needle in needles:
        assert needle in message, message
    assert len(out.read_text().strip().splitlines()) == 1, out.read_text()
    assert_gone(rt, cid)


def test_mem_annotation_beyond_what_spt_maps_is_refused_at_create(rt: Runtime) -> None:
    # Before: create succeeded and `start` failed with OverflowError.
    bundle = rt.bundle("hello.spt", annotations={"org.runnc-py.mem": "999999999999"})
    refused(rt, rt.new_id(), bundle, "annotation org.runnc-py.mem: must be at most")


@pytest.mark.parametrize("text", [" 64", "+64", "６４"])
def test_mem_annotation_takes_ascii_digits_only(rt: Runtime, text: str) -> None:
    bundle = rt.bundle("hello.spt", annotations={"org.runnc-py.mem": text})
    refused(rt, rt.new_id(), bundle, "org.runnc-py.mem", "ASCII digits")


def test_memory_limit_beyond_int64_is_refused_not_wrapped(rt: Runtime) -> None:
    # Before: 2**64+5 was written to memory.limit_in_bytes, where it wrapped to 5 bytes.
    bundle = rt.bundle("hello.spt", memory_limit=2**64 + 5)
    refused(rt, rt.new_id(), bundle, "linux.resources.memory.limit: must be at most")


@pytest.mark.parametrize("cid", [".delegate", "x" * 256])
def test_reserved_and_overlong_ids_are_refused(rt: Runtime, cid: str) -> None:
    done, _ = rt.create(cid, rt.bundle("hello.spt"), out=rt.tmp / "create.out")
    assert done.returncode != 0
    assert "invalid container ID" in last_error(rt)
    assert not (rt.root / cid).exists()
