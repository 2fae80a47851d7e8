"""Seccomp policies: loading, validation errors, resolution, BPF compilation and its cache.

No root needed: the compiled programs are checked by running them in a tiny classic-BPF
interpreter below (the kernel test in tests/integration/test_bpf_kernel.py loads them for real).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from runnc_py.errors import RunncError
from runnc_py.sandbox import bpf as bpfmod
from runnc_py.sandbox.libseccomp import syscall_number
from runnc_py.sandbox.policy import (
    ACTION_ALLOW,
    ACTIONS,
    BootFacts,
    DeviceFacts,
    ResolvedRule,
    load_policy,
    resolve,
)

X86_64 = os.uname().machine == "x86_64"
pytestmark = pytest.mark.skipif(not X86_64, reason="the spt policy and goldens are x86_64's")

REPO = Path(__file__).resolve().parents[2]
KILL = ACTIONS["kill_process"]
# linux/audit.h: EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
AUDIT_ARCH_X86_64 = 62 | 0x80000000 | 0x40000000
CAP = 64 * 1024 * 1024

NET = DeviceFacts(kind="net", name="service0", hostfd=5)
BLOCK = DeviceFacts(kind="block", name="storage", hostfd=6, capacity=CAP, block_size=512)

BASE_GOLDEN = [
    ("exit_group", None, ()),
    ("write", None, ((0, "eq", 1),)),
    ("arch_prctl", None, ((0, "eq", 0x1002),)),
    ("epoll_pwait", None, ((0, "eq", 3),)),
    ("timerfd_settime", None, ((0, "eq", 4),)),
    ("clock_gettime", None, ((0, "eq", 1),)),
    ("clock_gettime", None, ((0, "eq", 0),)),
]


def net_golden(
    name: str, fd: int
) -> list[tuple[str, str | None, tuple[tuple[int, str, int], ...]]]:
    return [("read", name, ((0, "eq", fd),)), ("write", name, ((0, "eq", fd),))]


def block_golden(name: str, fd: int, cap: int, bs: int) -> list:  # type: ignore[type-arg]
    conds = ((0, "eq", fd), (2, "eq", bs), (3, "le", cap - bs))
    return [("pread64", name, conds), ("pwrite64", name, conds)]


def semantic(rules: tuple[ResolvedRule, ...]) -> list:  # type: ignore[type-arg]
    return [(r.syscall, r.device, tuple((c.index, c.op, c.value) for c in r.conds)) for r in rules]


def facts(*devices: DeviceFacts, epollfd: int = 3, timerfd: int = 4) -> BootFacts:
    return BootFacts(epollfd=epollfd, timerfd=timerfd, devices=devices)


@pytest.fixture(scope="module")
def spt():  # type: ignore[no-untyped-def]
    return load_policy("spt")


# ------------------------------------------------------------------------ golden resolved rules


@pytest.mark.parametrize(
    ("devices", "expected"),
    [
        ((), BASE_GOLDEN),
        ((NET,), BASE_GOLDEN + net_golden("service0", 5)),
        ((BLOCK,), BASE_GOLDEN + block_golden("storage", 6, CAP, 512)),
        (
            (NET, BLOCK),
            BASE_GOLDEN + net_golden("service0", 5) + block_golden("storage", 6, CAP, 512),
        ),
    ],
    ids=["no-devices", "net", "block", "net+block"],
)
def test_resolved_rules_golden(spt, devices, expected) -> None:  # type: ignore[no-untyped-def]
    assert semantic(resolve(spt, facts(*devices))) == expected


def test_shipped_policy_shape(spt) -> None:  # type: ignore[no-untyped-def]
    assert spt.name == "spt"
    assert spt.default_action == "kill_process"
    assert Path(spt.path) == REPO / "policies" / "spt.toml"
    rules = resolve(spt, facts(NET, BLOCK))
    assert all(r.why for r in rules)
    assert all(c.why for r in rules for c in r.conds)
    # Displayed spelling of each value survives resolution.
    assert [c.expr for c in rules[-1].conds] == ["hostfd", "block_size", "capacity - block_size"]


def test_each_block_device_gets_its_own_bounds(spt) -> None:  # type: ignore[no-untyped-def]
    other = DeviceFacts(kind="block", name="data", hostfd=7, capacity=8 << 30, block_size=4096)
    rules = resolve(spt, facts(BLOCK, other))
    assert semantic(rules)[-2:] == block_golden("data", 7, 8 << 30, 4096)


def test_hvt_policy_loads_and_needs_vcpufd() -> None:
    hvt = load_policy("hvt")
    with pytest.raises(RunncError, match="vcpufd"):
        resolve(hvt, facts())
    rules = resolve(hvt, BootFacts(epollfd=3, timerfd=4, vcpufd=9))
    assert semantic(rules)[0] == ("ioctl", None, ((0, "eq", 9), (1, "eq", 0xAE80)))


def test_load_by_path_equals_load_by_name(spt) -> None:  # type: ignore[no-untyped-def]
    assert load_policy(str(REPO / "policies" / "spt.toml")) == spt


# ---------------------------------------------------------------------------- validation errors

MINIMAL = """
[default]
action = "kill_process"
why = "deny the rest"
[[rules]]
syscall = "exit_group"
why = "leave"
"""


def rule(body: str) -> str:
    """A minimal policy plus one extra rule table BODY (syscall write)."""
    return MINIMAL + '[[rules]]\nsyscall = "write"\nwhy = "out"\n' + body


def arg(body: str) -> str:
    return rule("[[rules.args]]\n" + body)


GOOD_ARG = 'index = 0\nop = "eq"\nvalue = 1\nwhy = "stdout"\n'

CASES = [
    ("top-key", "colour = 1\n" + MINIMAL, "policy: unknown key 'colour'"),
    ("no-default", '[[rules]]\nsyscall = "exit_group"\nwhy = "x"\n', "policy: missing [default]"),
    ("default-key", MINIMAL.replace('why = "deny', 'whyy = "deny'), "default: unknown key 'whyy'"),
    ("default-why", MINIMAL.replace('why = "deny the rest"', ""), "default: missing 'why'"),
    ("action", MINIMAL.replace("kill_process", "allow"), "default.action: unknown action 'allow'"),
    ("errno-0", MINIMAL.replace('"kill_process"', '"errno:0"'), "default.action: errno action"),
    ("no-rules", '[default]\naction = "trap"\nwhy = "x"\n', "policy: missing [[rules]]"),
    ("rules-type", "rules = 3\n" + MINIMAL.split("[[rules]]")[0], "rules: must be an array"),
    ("rule-key", rule("flags = 1\n"), "rules[1]: unknown key 'flags'"),
    ("no-syscall", MINIMAL + '[[rules]]\nwhy = "x"\n', "rules[1]: missing 'syscall'"),
    (
        "unknown-syscall",
        MINIMAL + '[[rules]]\nsyscall = "frobnicate"\nwhy = "x"\n',
        "rules[1] (frobnicate).syscall: unknown syscall 'frobnicate'",
    ),
    (
        "foreign-syscall",
        MINIMAL + '[[rules]]\nsyscall = "socketcall"\nwhy = "x"\n',
        "rules[1] (socketcall).syscall: unknown syscall 'socketcall' on x86_64",
    ),
    ("no-why", MINIMAL + '[[rules]]\nsyscall = "write"\n', "rules[1] (write): missing 'why'"),
    (
        "empty-why",
        MINIMAL + '[[rules]]\nsyscall = "write"\nwhy = "  "\n',
        "rules[1] (write).why: must be a non-empty string",
    ),
    ("arches", rule('arches = "x86_64"\n'), "rules[1] (write).arches: must be a list"),
    ("args-type", rule("args = 1\n"), "rules[1] (write).args: must be an array of tables"),
    ("arg-key", arg(GOOD_ARG + "size = 4\n"), "rules[1] (write).args[0]: unknown key 'size'"),
    ("arg-no-op", arg('index = 0\nvalue = 1\nwhy = "x"\n'), "args[0]: missing 'op'"),
    ("arg-bad-op", arg(GOOD_ARG.replace('"eq"', '"eqq"')), "args[0].op: unknown op 'eqq'"),
    ("arg-no-why", arg('index = 0\nop = "eq"\nvalue = 1\n'), "args[0]: missing 'why'"),
    (
        "index-range",
        arg(GOOD_ARG.replace("index = 0", "index = 6")),
        "args[0].index: 6 is out of range 0..5",
    ),
    (
        "index-bool",
        arg(GOOD_ARG.replace("index = 0", "index = true")),
        "args[0].index: must be an integer, got bool",
    ),
    (
        "index-str",
        arg(GOOD_ARG.replace("index = 0", 'index = "0"')),
        "args[0].index: must be an integer, got str",
    ),
    (
        "value-negative",
        arg(GOOD_ARG.replace("value = 1", "value = -1")),
        "args[0].value: -1 is out of range",
    ),
    (
        "value-huge",
        arg(GOOD_ARG.replace("value = 1", "value = 18446744073709551616")),
        "args[0].value: 18446744073709551616 is out of range",
    ),
    (
        "value-float",
        arg(GOOD_ARG.replace("value = 1", "value = 1.5")),
        "args[0].value: must be an integer, got float",
    ),
    (
        "unknown-constant",
        arg(GOOD_ARG.replace("value = 1", 'value = "STDOUTT"')),
        "args[0].value: unknown constant or placeholder 'STDOUTT'",
    ),
    (
        "device-placeholder-in-base",
        arg(GOOD_ARG.replace("value = 1", 'value = "hostfd"')),
        "args[0].value: placeholder 'hostfd' is not available in base rules",
    ),
    ("mask-with-eq", arg(GOOD_ARG + "mask = 3\n"), "args[0].mask: 'mask' only applies"),
    (
        "masked-eq-no-mask",
        arg(GOOD_ARG.replace('"eq"', '"masked_eq"')),
        "args[0]: op 'masked_eq' needs a 'mask'",
    ),
    (
        "duplicate-index",
        arg(GOOD_ARG + "[[rules.args]]\n" + GOOD_ARG),
        "args[1].index: argument 0 is already compared",
    ),
    (
        "seven-args",
        rule("".join(f"[[rules.args]]\n{GOOD_ARG}" for _ in range(7))),
        "(write).args: a syscall has at most 6 arguments",
    ),
    ("device-kind", MINIMAL + '[devices.usb]\nwhy = "x"\n', "devices.usb: unknown device kind"),
    ("device-type", MINIMAL + "[devices]\nnet = 1\n", "devices.net: must be a table"),
    ("device-key", MINIMAL + '[devices.net]\nwhen = "x"\n', "devices.net: unknown key 'when'"),
    (
        "device-no-rules",
        MINIMAL + '[devices.net]\nwhy = "x"\n',
        "devices.net: missing [[devices.net.rules]]",
    ),
    (
        "block-placeholder-in-net",
        MINIMAL
        + '[[devices.net.rules]]\nsyscall = "read"\nwhy = "x"\n[[devices.net.rules.args]]\n'
        + 'index = 2\nop = "eq"\nvalue = "block_size"\nwhy = "x"\n',
        "devices.net.rules[0] (read).args[0].value: placeholder 'block_size' is not available "
        "in net devices",
    ),
    ("toml-syntax", MINIMAL + "[[rules]\n", "invalid TOML"),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validation_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(RunncError) as info:
        load_policy(str(path))
    line = info.value.line()
    assert line.startswith(f"{path}: "), line
    assert message in line, line
    assert "\n" not in line


def test_minimal_policy_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(
        arg(GOOD_ARG) + "[[rules.args]]\nindex = 1\nop = 'masked_eq'\nmask = 0xff\n"
        "value = 'STDOUT'\nwhy = 'x'\n"
    )
    pol = load_policy(str(path))
    assert pol.name == "ok"  # defaults to the file's stem
    assert semantic(resolve(pol, facts())) == [
        ("exit_group", None, ()),
        ("write", None, ((0, "eq", 1), (1, "masked_eq", 1))),
    ]
    assert resolve(pol, facts())[1].conds[1].mask == 0xFF


def test_installed_policies_are_found_under_the_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    share = tmp_path / "share" / "runnc-py" / "policies"
    share.mkdir(parents=True)
    (share / "onlyinstalled.toml").write_text(MINIMAL)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert load_policy("onlyinstalled").path == str(share / "onlyinstalled.toml")
    # the checkout's own policies/ still wins over an installed copy of the same name
    (share / "spt.toml").write_text(MINIMAL)
    assert Path(load_policy("spt").path) == REPO / "policies" / "spt.toml"


def test_missing_policy_names_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(RunncError, match=r"policy 'nosuch' not found \(looked in .*policies"):
        load_policy("nosuch")
    with pytest.raises(RunncError, match="no such policy file"):
        load_policy(str(tmp_path / "absent.toml"))
    with pytest.raises(RunncError, match="invalid policy name"):
        load_policy("..")


@pytest.mark.parametrize(
    ("boot", "message"),
    [
        (
            facts(DeviceFacts("block", "d", 5, capacity=100, block_size=512)),
            "device d: capacity 100 is smaller than one block (512)",
        ),
        (
            facts(DeviceFacts("block", "d", 5, capacity=CAP, block_size=0)),
            "device d: block size 0 must be positive",
        ),
        (facts(DeviceFacts("net", "n", 3)), "device n fd 3 is also epollfd's"),
        (facts(DeviceFacts("net", "n", 1)), "device n fd 1 is also stdout's"),
        (facts(DeviceFacts("net", "a", 5), DeviceFacts("net", "b", 5)), "device b fd 5 is also"),
        (
            facts(DeviceFacts("net", "n", 5), DeviceFacts("block", "n", 6, CAP, 512)),
            "device n: device name given twice",
        ),
        (facts(DeviceFacts("net", "n", -1)), "device n fd -1 is not a valid file descriptor"),
        (facts(epollfd=4, timerfd=4), "timerfd fd 4 is also epollfd's"),
        (facts(DeviceFacts("usb", "u", 5)), "policy has no rules for 'usb' devices"),
    ],
)
def test_resolve_errors(spt, boot: BootFacts, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RunncError) as info:
        resolve(spt, boot)
    assert message in info.value.line()
    assert info.value.line().startswith("policy spt")


def test_policy_without_device_rules_refuses_devices(tmp_path: Path) -> None:
    path = tmp_path / "nodev.toml"
    path.write_text(MINIMAL)
    with pytest.raises(RunncError, match=r"no rules for 'net' devices \(it covers: none"):
        resolve(load_policy(str(path)), facts(NET))


# ----------------------------------------------------------------------- a classic-BPF emulator


def insns(program: bytes) -> list[tuple[int, int, int, int]]:
    assert len(program) % 8 == 0 and program
    return [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]


def run_bpf(
    program: bytes, nr: int, args: tuple[int, ...] = (), arch: int = AUDIT_ARCH_X86_64
) -> int:
    """Evaluate a seccomp program on one `struct seccomp_data` the way the kernel does."""
    full = (*args, *[0] * (6 - len(args)))
    data = struct.pack("<iIQ6Q", nr, arch, 0, *full)
    code = insns(program)
    a = x = 0
    mem = [0] * 16
    pc = 0
    m32 = 0xFFFFFFFF
    while True:
        op, jt, jf, k = code[pc]
        pc += 1
        cls = op & 0x07
        if op == 0x20:  # ld [k]
            a = struct.unpack_from("<I", data, k)[0]
        elif op == 0x00:  # ld #k
            a = k
        elif op == 0x01:  # ldx #k
            x = k
        elif op == 0x60:  # ld M[k]
            a = mem[k]
        elif op == 0x61:  # ldx M[k]
            x = mem[k]
        elif op == 0x02:  # st M[k]
            mem[k] = a
        elif op == 0x03:  # stx M[k]
            mem[k] = x
        elif op == 0x07:  # tax
            x = a
        elif op == 0x87:  # txa
            a = x
        elif cls == 0x04:  # alu
            src = x if op & 0x08 else k
            fn = op & 0xF0
            alu = {
                0x00: a + src,
                0x10: a - src,
                0x20: a * src,
                0x50: a & src,
                0x40: a | src,
                0x60: a << src,
                0x70: a >> src,
                0xA0: a ^ src,
            }
            assert fn in alu, f"unsupported alu op {op:#x}"
            a = alu[fn] & m32
        elif op == 0x05:  # ja
            pc += k
        elif cls == 0x05:
            src = x if op & 0x08 else k
            fn = op & 0xF0
            taken = {0x10: a == src, 0x20: a > src, 0x30: a >= src, 0x40: bool(a & src)}[fn]
            pc += jt if taken else jf
        elif op == 0x06:  # ret #k
            return k
        elif op == 0x16:  # ret a
            return a
        else:
            raise AssertionError(f"unsupported BPF opcode {op:#x} at {pc - 1}")


def nr(name: str) -> int:
    number = syscall_number(name)
    assert number is not None
    return number


@pytest.fixture(scope="module")
def program(spt, tmp_path_factory: pytest.TempPathFactory) -> bytes:  # type: ignore[no-untyped-def]
    rules = resolve(spt, facts(NET, BLOCK))
    return bpfmod.compile_bpf(rules, spt.default_action, directory=tmp_path_factory.mktemp("c"))


def test_bpf_starts_with_the_arch_check(program: bytes) -> None:
    code = insns(program)
    assert code[0] == (0x20, 0, 0, 4)  # ld [4]: seccomp_data.arch
    op, _, jf, k = code[1]
    assert (op, k) == (0x15, AUDIT_ARCH_X86_64)  # jeq #AUDIT_ARCH_X86_64
    # the "not equal" branch lands on a kill_process return
    assert code[2 + jf] == (0x06, 0, 0, KILL)
    assert code[2] == (0x20, 0, 0, 0)  # then ld [0]: the syscall number
    assert len(code) <= bpfmod.BPF_MAXINSNS


def test_bpf_returns_only_allow_or_kill_process(program: bytes) -> None:
    rets = {k for op, _, _, k in insns(program) if op == 0x06}
    assert rets == {ACTION_ALLOW, KILL}


BS = 512
LAST = CAP - BS
DECISIONS = [
    ("exit_group", (), True),
    ("write", (1,), True),
    ("write", (2,), False),
    ("write", (5,), True),  # the tap
    ("write", (6,), False),  # the block fd is not for write(2)
    ("write", (1 | 1 << 32,), False),  # high bits set: not fd 1 to the filter
    ("read", (5,), True),
    ("read", (0,), False),
    ("arch_prctl", (0x1002,), True),
    ("arch_prctl", (0x1003,), False),
    ("epoll_pwait", (3,), True),
    ("epoll_pwait", (4,), False),
    ("timerfd_settime", (4,), True),
    ("timerfd_settime", (3,), False),
    ("clock_gettime", (1,), True),
    ("clock_gettime", (0,), True),
    ("clock_gettime", (7,), False),  # CLOCK_BOOTTIME
    ("pread64", (6, 0, BS, 0), True),
    ("pread64", (6, 0, BS, LAST), True),
    ("pread64", (6, 0, BS, LAST + 1), False),
    ("pread64", (6, 0, BS, LAST | 1 << 32), False),  # same low word, beyond in the high word
    ("pread64", (6, 0, BS * 2, 0), False),
    ("pread64", (5, 0, BS, 0), False),
    ("pwrite64", (6, 0, BS, LAST), True),
    ("pwrite64", (6, 0, BS, CAP), False),
    ("getpid", (), False),
    ("openat", (), False),
]


@pytest.mark.parametrize(("name", "args", "allowed"), DECISIONS)
def test_bpf_decisions(program: bytes, name: str, args: tuple[int, ...], allowed: bool) -> None:
    assert run_bpf(program, nr(name), args) == (ACTION_ALLOW if allowed else KILL)


def test_bpf_kills_other_abis(program: bytes) -> None:
    assert run_bpf(program, nr("write"), (1,), arch=3 | 0x40000000) == KILL  # i386
    assert run_bpf(program, nr("write") | 0x40000000, (1,)) == KILL  # x32


# -------------------------------------------------------------------------------------- cache


def test_cache_miss_then_hit(spt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rules = resolve(spt, facts(NET))
    before = bpfmod.compile_count()
    first = bpfmod.compile_bpf(rules, "kill_process", directory=tmp_path)
    assert bpfmod.compile_count() == before + 1
    key = bpfmod.cache_key(rules, "kill_process")
    stored = (tmp_path / f"{key}.bpf").read_bytes()
    assert stored[:-32] == first
    second = bpfmod.compile_bpf(rules, "kill_process", directory=tmp_path)
    assert second == first
    assert bpfmod.compile_count() == before + 1  # served from the cache
    assert [p.name for p in tmp_path.iterdir()] == [f"{key}.bpf"]  # no temp files left
    assert (tmp_path / f"{key}.bpf").stat().st_mode & 0o777 == 0o600


def test_cache_key_follows_semantics_only(spt) -> None:  # type: ignore[no-untyped-def]
    key = bpfmod.cache_key(resolve(spt, facts(NET)), "kill_process")
    assert key == bpfmod.cache_key(resolve(spt, facts(NET)), "kill_process")
    assert key != bpfmod.cache_key(resolve(spt, facts(NET, epollfd=7)), "kill_process")
    moved = DeviceFacts(kind="net", name="service0", hostfd=6)
    assert key != bpfmod.cache_key(resolve(spt, facts(moved)), "kill_process")
    assert key != bpfmod.cache_key(resolve(spt, facts(NET, BLOCK)), "kill_process")
    assert key != bpfmod.cache_key(resolve(spt, facts(NET)), "trap")
    # a changed explanation does not change the program
    reworded = tuple(
        ResolvedRule(r.syscall, r.conds, "reworded", r.device) for r in resolve(spt, facts(NET))
    )
    assert key == bpfmod.cache_key(reworded, "kill_process")


def test_tampered_or_untrusted_cache_is_not_used(spt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rules = resolve(spt, facts())
    good = bpfmod.compile_bpf(rules, "kill_process", directory=tmp_path)
    path = tmp_path / f"{bpfmod.cache_key(rules, 'kill_process')}.bpf"
    data = bytearray(path.read_bytes())
    data[12] ^= 0xFF  # flip bits inside the program, digest unchanged
    path.write_bytes(bytes(data))
    before = bpfmod.compile_count()
    assert bpfmod.compile_bpf(rules, "kill_process", directory=tmp_path) == good
    assert bpfmod.compile_count() == before + 1
    assert path.read_bytes()[:-32] == good  # repaired
    tmp_path.chmod(0o777)  # anyone could have planted it: compile instead of trusting
    try:
        assert bpfmod.compile_bpf(rules, "kill_process", directory=tmp_path) == good
        assert bpfmod.compile_count() == before + 2
    finally:
        tmp_path.chmod(0o700)


def test_cache_hit_never_imports_pyseccomp(spt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    script = (
        "import sys\n"
        "from runnc_py.sandbox.policy import BootFacts, load_policy, resolve\n"
        "from runnc_py.sandbox.bpf import compile_bpf, compile_count\n"
        "p = load_policy('spt')\n"
        "b = compile_bpf(resolve(p, BootFacts(3, 4)), p.default_action)\n"
        "print(len(b), compile_count(), 'pyseccomp' in sys.modules)\n"
    )
    env = {**os.environ, "RUNNC_PY_CACHE": str(tmp_path)}

    def run() -> str:
        return subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        ).stdout.split()

    size, compiles, imported = run()
    assert (compiles, imported) == ("1", "True")  # miss: pyseccomp compiled it
    assert (tmp_path / "bpf").is_dir()
    assert run() == [size, "0", "False"]  # hit: same program, pyseccomp never imported


def test_uncached_compile_and_bad_action(spt) -> None:  # type: ignore[no-untyped-def]
    rules = resolve(spt, facts())
    before = bpfmod.compile_count()
    bpfmod.compile_bpf(rules, "kill_process", cache=False)
    bpfmod.compile_bpf(rules, "kill_process", cache=False)
    assert bpfmod.compile_count() == before + 2
    with pytest.raises(RunncError, match="unknown seccomp action 'allow'"):
        bpfmod.compile_bpf(rules, "allow", cache=False)


def test_cache_dir_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RUNNC_PY_CACHE", str(tmp_path))
    assert bpfmod.cache_dir() == tmp_path / "bpf"
    monkeypatch.delenv("RUNNC_PY_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    expected = Path("/var/lib/runnc-py/bpf") if os.geteuid() == 0 else tmp_path / "runnc-py/bpf"
    assert bpfmod.cache_dir() == expected


# --------------------------------------------------------------------------------------- CLI


def test_policy_show_cli(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from runnc_py.cli import cli

    runner = CliRunner()
    env = {"RUNNC_PY_CACHE": str(tmp_path)}
    res = runner.invoke(
        cli,
        ["policy", "show", "--net", "n0", "--block", "d:1M:4096", "--bpf", "--json", "spt"],
        env=env,
    )
    assert res.exit_code == 0, res.output
    import json

    doc = json.loads(res.output)
    assert doc["policy"] == "spt"
    assert "epollfd 3, timerfd 4, devices from 5" in doc["facts"]["note"]
    assert [r["syscall"] for r in doc["rules"]][-4:] == ["read", "write", "pread64", "pwrite64"]
    assert doc["rules"][-1]["args"][2] == {
        "index": 3,
        "op": "le",
        "value": (1 << 20) - 4096,
        "mask": 0,
        "expr": "capacity - block_size",
        "why": doc["rules"][-1]["args"][2]["why"],
    }
    assert doc["bpf"]["bytes"] == doc["bpf"]["instructions"] * 8 > 0
    text = runner.invoke(cli, ["policy", "show", "--block", "d"], env=env)
    assert text.exit_code == 0
    assert "[d] pread64  if arg0 == 5 (hostfd) && arg2 == 512 (block_size)" in text.output
    assert "why:" in text.output
    bad = runner.invoke(cli, ["policy", "show", "--block", "d:lots"], env=env)
    assert bad.exit_code != 0


def test_policy_cli_errors_are_one_line(tmp_path: Path) -> None:
    from tests.conftest import runnc_binary

    bad = tmp_path / "bad.toml"
    bad.write_text(arg(GOOD_ARG.replace('"eq"', '"eqq"')))
    res = subprocess.run(
        [*runnc_binary(), "policy", "check", str(bad)], capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1
    assert f"{bad}: rules[1] (write).args[0].op: unknown op 'eqq'" in res.stderr
    ok = subprocess.run(
        [*runnc_binary(), "policy", "check", "spt", "hvt"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count(": ok (") == 2
