"""build.py's hvt run loop image (csrc/hvt/loop/): what makes it safe to run after the monitor
has unmapped libc and the interpreter is checked when it is built, not found out by a crash.

The image is linked twice at different addresses and must come out the same bytes (nothing
depends on where the monitor copies it); a call into libc fails the link; writable or
relocated data fails the linker script; the entry is the first byte. Needs gcc only.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

ENTRY = '__attribute__((section(".text.entry"), used)) '


def image_bytes(generated: Path) -> bytes:
    numbers = re.search(r"\{\n(.*)\n\};", generated.read_text(), re.S)
    assert numbers is not None
    return bytes(int(n) for n in numbers.group(1).replace("\n", "").split(","))


def build(build_module: Any, tmp_path: Path, source: str) -> bytes:
    src = tmp_path / "loop.c"
    src.write_text(source)
    return image_bytes(build_module.build_hvt_loop_image(tmp_path / "out", sources=[src]))


def test_the_real_loop_builds_into_a_few_pages(build_module: Any, tmp_path: Path) -> None:
    image = image_bytes(build_module.build_hvt_loop_image(tmp_path))
    assert 0 < len(image) <= 16 * 1024  # the monitor keeps all of it resident


def test_a_self_contained_loop_links(build_module: Any, tmp_path: Path) -> None:
    """The control for the refusals below: helpers and constants of its own are fine."""
    image = build(
        build_module,
        tmp_path,
        "static int helper(int x) { return x * 3; }\n"
        f"{ENTRY}int hvt_loop_entry(int x) {{ return helper(x) + 1; }}\n",
    )
    assert len(image) > 0


def test_a_table_of_addresses_is_refused(build_module: Any, tmp_path: Path) -> None:
    """Pointers would be right only where the image was linked, not where it is copied: the
    compiler puts such a table in relocated data, which the linker script refuses."""
    with pytest.raises(SystemExit, match="writable static data"):
        build(
            build_module,
            tmp_path,
            'static const char *const names[] = {"a", "b"};\n'
            f"{ENTRY}const char *hvt_loop_entry(int i) {{ return names[i]; }}\n",
        )


def test_an_absolute_address_in_the_image_is_refused(build_module: Any, tmp_path: Path) -> None:
    """... and one that slips into the image itself changes its bytes with the address."""
    with pytest.raises(SystemExit, match="depends on its load address"):
        build(
            build_module,
            tmp_path,
            '__asm__(".pushsection .rodata\\ntable: .quad hvt_loop_entry\\n.popsection");\n'
            f"{ENTRY}int hvt_loop_entry(void) {{ return 0; }}\n",
        )


def test_a_libc_call_is_refused(build_module: Any, tmp_path: Path) -> None:
    """libc is unmapped while the loop runs."""
    with pytest.raises(SystemExit, match="undefined reference to `getpid'"):
        build(
            build_module,
            tmp_path,
            f"int getpid(void);\n{ENTRY}int hvt_loop_entry(void) {{ return getpid(); }}\n",
        )


def test_writable_static_data_is_refused(build_module: Any, tmp_path: Path) -> None:
    """The copy is mapped read-only and executable: state lives in hvt_loop_args."""
    with pytest.raises(SystemExit, match="writable static data"):
        build(
            build_module,
            tmp_path,
            f"static int calls;\n{ENTRY}int hvt_loop_entry(void) {{ return ++calls; }}\n",
        )


def test_an_entry_elsewhere_is_refused(build_module: Any, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="first byte"):
        build(
            build_module,
            tmp_path,
            '__attribute__((section(".text.entry"))) int first(void) { return 1; }\n'
            "int hvt_loop_entry(void) { return first(); }\n",
        )
