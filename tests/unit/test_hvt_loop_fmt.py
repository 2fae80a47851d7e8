"""The hvt run loop's own formatter (csrc/hvt/loop/fmt.c) writes what snprintf and glibc's
strerror wrote before the loop lost libc: its reports must read exactly as they did.

A small harness compiled with the host's gcc and libc prints each case both ways.
"""

from __future__ import annotations

import errno
import shutil
import subprocess

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

# (format, C arguments): every conversion the monitor's messages use, at its edges.
CASES = [
    ("guest fault: triple fault (unhandled exception), rip=%#llx", "0x1001a2ULL"),
    ("rip=%#llx", "0ULL"),
    ("rip=%#llx", "~0ULL"),
    ("guest fault: %s of I/O port %#x, rip=%#llx", '"write", 0x3f8u, 0x100000ULL'),
    ("guest fault: %s of I/O port %#x, rip=%#llx", '"read", 0u, 0ULL'),
    ("KVM internal error, suberror %u, at rip=%#llx", "4294967295u, 0xffffffff80000000ULL"),
    ("unknown hypercall %u", "0u"),
    ("puts of %llu bytes at %#llx outside guest memory", "18446744073709551615ULL, 0x10ULL"),
    ("%s hypercall with its argument at %#llx outside %sguest memory", '"poll", 0x7ULL, ""'),
    ("signed %d and %lld, 100%%", "-2147483647 - 1, -9223372036854775807LL - 1"),
]

HARNESS = r"""
#include <stdio.h>
#include <string.h>
#include "loop.h"

static void show(const char *ours, const char *libc) { printf("%s\n%s\n", ours, libc); }

int main(void)
{
    char a[512], b[512];
CASES
    for (int e = 1; e < 134; e++) {
        loop_fail_errno(a, sizeof a, "KVM_RUN", e);
        snprintf(b, sizeof b, "KVM_RUN: %s", strerror(e));
        printf("%d\n%s\n%s\n", e, a, b);
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def harness_output(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    tmp = tmp_path_factory.mktemp("loopfmt")
    calls = "".join(
        f'    loop_fail(a, sizeof a, "{fmt}", {args});\n'
        f'    snprintf(b, sizeof b, "{fmt}", {args});\n'
        "    show(a, b);\n"
        for fmt, args in CASES
    )
    (tmp / "harness.c").write_text(HARNESS.replace("CASES\n", calls))
    loop = REPO / "csrc" / "hvt" / "loop"
    exe = tmp / "harness"
    cmd = ["gcc", "-O2", "-Wall", "-Wno-format", "-fno-builtin", f"-I{loop}"]
    cmd += [f"-I{REPO / 'csrc' / 'hvt'}", f"-I{REPO / 'csrc' / 'common'}"]
    subprocess.run([*cmd, "-o", str(exe), str(tmp / "harness.c"), str(loop / "fmt.c")], check=True)
    return subprocess.run([exe], capture_output=True, text=True, check=True).stdout.splitlines()


def test_formats_match_snprintf(harness_output: list[str]) -> None:
    lines = harness_output[: 2 * len(CASES)]
    pairs = list(zip(lines[::2], lines[1::2], strict=True))
    assert [ours for ours, _ in pairs] == [libc for _, libc in pairs]


# The errors the loop's calls (KVM_RUN, epoll_pwait, timerfd_settime, prctl, seccomp, munmap)
# can return: these must read as strerror does.
EHWPOISON = 133  # not in Python's errno module
LOOP_ERRORS = [errno.EPERM, errno.EINTR, errno.EIO, errno.ENXIO, errno.E2BIG, errno.EBADF,
               errno.EAGAIN, errno.ENOMEM, errno.EACCES, errno.EFAULT, errno.EBUSY,
               errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, EHWPOISON]  # fmt: skip


def test_errors_read_as_strerror(harness_output: list[str]) -> None:
    rest = harness_output[2 * len(CASES) :]
    by_errno = {int(rest[i]): (rest[i + 1], rest[i + 2]) for i in range(0, len(rest), 3)}
    for e in LOOP_ERRORS:
        ours, libc = by_errno[e]
        assert ours == libc, e
    # Any other error reads as strerror's text or, as glibc says for what it does not know,
    # "Unknown error N": never a wrong text.
    for e, (ours, libc) in by_errno.items():
        assert ours in (libc, f"KVM_RUN: Unknown error {e}"), e
