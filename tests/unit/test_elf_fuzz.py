"""Fuzz load_unikernel: mutated headers, program headers and notes of a valid crafted image.

Contract under test: `load_unikernel` returns a UnikernelImage or raises RunncError (one line
naming the file) - never another exception, never a hang - and whatever it accepts satisfies
the launcher's assumptions (segments inside the file, >= 1 MiB, no W+X, ordered, not
overlapping, entry in an executable segment). `looks_like_unikernel` only ever returns a bool.
A SIGALRM guard turns a hang into a failure; hypothesis' deadline flags slow examples.
"""

from __future__ import annotations

import signal
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runnc_py.errors import RunncError
from runnc_py.unikernel.elf import (
    MIN_LOAD_ADDR,
    PF_W,
    PF_X,
    UnikernelImage,
    load_unikernel,
    looks_like_unikernel,
)
from tests.unit import elfcraft as ec

HANG_SECONDS = 2.0

_UK = ec.Unikernel.solo5(
    devices=[("rootfs", ec.BLOCK_BASIC), ("service", ec.NET_BASIC)], empty_load_at_zero=True
)
_BUILT = _UK.build()
BASE = _BUILT.data


def _fields() -> list[tuple[int, int]]:
    """(offset, size) of every header, program header and note field worth mutating."""
    fields = [(4, 1), (5, 1), (6, 1)]  # EI_CLASS, EI_DATA, EI_VERSION
    offset = 16
    for size in (2, 2, 4, 8, 8, 8, 4, 2, 2, 2, 2, 2, 2):  # e_type .. e_shstrndx
        fields.append((offset, size))
        offset += size
    for i in range(len(_UK.segments)):
        base = _BUILT.phoff + i * ec.PHDR_SIZE
        fields += [(base, 4), (base + 4, 4)] + [(base + 8 + 8 * k, 8) for k in range(6)]
    for seg, at in zip(_UK.segments, _BUILT.segment_offsets, strict=True):
        if seg.type != ec.PT_NOTE:
            continue
        payload = seg.payload()
        fields += [(at, 4), (at + 4, 4), (at + 8, 4)]  # namesz, descsz, type
        # descriptor words: ABI target/version, manifest version/entries, entry types/names
        fields += [(at + k, 4) for k in range(12, len(payload), 4)]
    return fields


FIELDS = _fields()
INTERESTING = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 20, 56, 64, 104, 0x100, 0xFFF, 0x1000, 0x1001, 0xFFFF,
    0x10000, 0xFFFFF, 0x100000, 0x101000, 0x200000, 0x3154464D, 0x31494241, 0x40000000,
    0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 2**32, 2**47, 2**63, 2**64 - 0x1000, 2**64 - 1,
]  # fmt: skip


@st.composite
def mutations(draw: st.DrawFn) -> bytes:
    data = bytearray(BASE)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["field", "field", "field", "byte"]))
        if kind == "field":
            offset, size = draw(st.sampled_from(FIELDS))
            bits = 8 * size
            value = draw(
                st.one_of(
                    st.sampled_from(INTERESTING).map(lambda v, b=bits: v % 2**b),
                    st.integers(0, 2**bits - 1),
                )
            )
            data[offset : offset + size] = value.to_bytes(size, "little")
        else:
            offset = draw(st.integers(0, len(data) - 1))
            data[offset] = draw(st.integers(0, 255))
    if draw(st.booleans()) and draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


class _Hang(Exception):
    pass


@contextmanager
def _hang_guard(seconds: float) -> Iterator[None]:
    def on_alarm(signum: int, frame: object) -> None:
        raise _Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _check_accepted(image: UnikernelImage, size: int) -> None:
    """What the launcher relies on for any image load_unikernel returns."""
    assert image.segments
    previous_end = 0
    for s in image.segments:
        assert s.offset + s.filesz <= size
        assert s.filesz <= s.memsz
        assert s.vaddr >= MIN_LOAD_ADDR
        assert not (s.flags & PF_W and s.flags & PF_X)
        assert s.vaddr & ~0xFFF >= previous_end
        previous_end = (s.vaddr + s.memsz + 0xFFF) & ~0xFFF
        assert image.kernel_end >= s.vaddr + s.memsz
    assert image.kernel_end < 2**64
    assert any(
        s.flags & PF_X and s.vaddr <= image.entry < s.vaddr + s.memsz for s in image.segments
    )
    assert len(image.manifest.entries) <= 64


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "mutant.spt"


def test_base_image_is_valid(fuzz_file: Path):
    fuzz_file.write_bytes(BASE)
    _check_accepted(load_unikernel(fuzz_file), len(BASE))


@settings(
    max_examples=1500,
    deadline=timedelta(milliseconds=500),
    database=None,  # leave nothing behind in the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=mutations())
def test_mutants_load_or_raise_runncerror(fuzz_file: Path, data: bytes):
    fuzz_file.write_bytes(data)
    with _hang_guard(HANG_SECONDS):
        try:
            image = load_unikernel(fuzz_file)
        except RunncError as exc:
            line = exc.line()
            assert line.startswith(f"{fuzz_file}: ")
            assert "\n" not in line
        else:
            _check_accepted(image, len(data))
        assert looks_like_unikernel(fuzz_file) in (True, False)


def test_fields_cover_the_notes():
    """Guards the strategy: it must reach the ABI note's target word and the manifest."""
    note_offsets = [
        at for seg, at in zip(_UK.segments, _BUILT.segment_offsets, strict=True)
        if seg.type == ec.PT_NOTE
    ]  # fmt: skip
    offsets = {offset for offset, _ in FIELDS}
    assert note_offsets[0] + 20 in offsets  # ABI1 abi_target
    assert note_offsets[1] + 24 + 4 in offsets  # MFT1 entries count
    assert struct.unpack_from("<I", BASE, note_offsets[0] + 20) == (2,)
