"""Declarative seccomp policies: load and validate a TOML policy, then resolve it for one boot.

A policy is data (Firecracker's rule): base rules plus per-device-kind rule templates, each
rule and each argument condition carrying a `why`. Values are integers, symbolic constants
(`STDOUT`, `CLOCK_MONOTONIC`, ...) or placeholders that only the boot knows (`epollfd`,
`hostfd`, `capacity - block_size`, ...). Loading checks everything that can be checked
without the boot's facts, so a broken policy fails before any fd is opened; `resolve` then
turns the templates into concrete rules, one set per attached device (as solo5-spt's device
modules do). Pure: reading the file and asking libseccomp for syscall numbers are the only
outside contacts; compiling to BPF lives in `bpf.py`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runnc_py.errors import RunncError
from runnc_py.sandbox import libseccomp
from runnc_py.sandbox.facts import BootFacts, DeviceFacts
from runnc_py.sandbox.locate import find_policy

OPS = ("eq", "ne", "lt", "le", "gt", "ge", "masked_eq")
OP_SYMBOLS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
DEVICE_KINDS = ("net", "block")
U64_MAX = 2**64 - 1

# Seccomp return values (linux/seccomp.h); the policy names them, bpf.py hands them to libseccomp.
ACTIONS: dict[str, int] = {
    "kill_process": 0x80000000,
    "kill_thread": 0x00000000,
    "trap": 0x00030000,
    "log": 0x7FFC0000,
}
ACTION_ERRNO = 0x00050000
ACTION_ALLOW = 0x7FFF0000

# Symbolic constants a policy may use (x86_64/generic Linux values).
CONSTANTS: dict[str, int] = {
    "STDIN": 0,
    "STDOUT": 1,
    "STDERR": 2,
    "CLOCK_REALTIME": 0,
    "CLOCK_MONOTONIC": 1,
    "CLOCK_PROCESS_CPUTIME_ID": 2,
    "CLOCK_THREAD_CPUTIME_ID": 3,
    "CLOCK_MONOTONIC_RAW": 4,
    "CLOCK_REALTIME_COARSE": 5,
    "CLOCK_MONOTONIC_COARSE": 6,
    "CLOCK_BOOTTIME": 7,
    "ARCH_SET_GS": 0x1001,
    "ARCH_SET_FS": 0x1002,
    "ARCH_GET_FS": 0x1003,
    "ARCH_GET_GS": 0x1004,
    "KVM_RUN": 0xAE80,  # _IO(KVMIO, 0x80)
}

_ALL = frozenset(("base", *DEVICE_KINDS))
_BLOCK = frozenset(("block",))
_DEVICES = frozenset(DEVICE_KINDS)

# Names of the top-level tables/keys a policy may contain; anything else is a typo.
_TOP_KEYS = {"name", "description", "default", "rules", "devices"}
_DEFAULT_KEYS = {"action", "why"}
_DEVICE_KEYS = {"why", "rules"}
_RULE_KEYS = {"syscall", "why", "args", "arches"}
_ARG_KEYS = {"index", "op", "value", "mask", "why"}


@dataclass(frozen=True)
class ArgCond:
    """`arg[index] OP value` (masked_eq: `arg[index] & mask == value`)."""

    index: int
    op: str
    value: int
    mask: int = 0
    why: str = ""
    expr: str = ""  # the policy's own spelling of the value (`hostfd`, `STDOUT`), for display


@dataclass(frozen=True)
class ResolvedRule:
    """Allow SYSCALL when every condition holds."""

    syscall: str
    conds: tuple[ArgCond, ...]
    why: str
    device: str | None = None


@dataclass(frozen=True)
class ArgTemplate:
    index: int
    op: str
    value: int | str  # int, or a placeholder name resolved at boot
    mask: int
    why: str
    expr: str


@dataclass(frozen=True)
class RuleTemplate:
    syscall: str
    args: tuple[ArgTemplate, ...]
    why: str
    where: str  # location in the policy file, for errors at resolve time


@dataclass(frozen=True)
class Policy:
    name: str
    path: str
    default_action: str
    default_why: str
    description: str
    rules: tuple[RuleTemplate, ...]
    device_rules: Mapping[str, tuple[RuleTemplate, ...]]
    device_whys: Mapping[str, str]


# ---------------------------------------------------------------------------------- placeholders


def _vcpufd(boot: BootFacts, dev: DeviceFacts | None) -> int:
    if boot.vcpufd is None:
        raise RunncError("placeholder 'vcpufd' needs the hvt monitor's vcpu fd in the boot facts")
    return boot.vcpufd


def _dev(dev: DeviceFacts | None) -> DeviceFacts:
    assert dev is not None  # load_policy only lets device placeholders into device templates
    return dev


# placeholder -> (where it may appear: "base" and/or device kinds, how to compute it)
PLACEHOLDERS: dict[str, tuple[frozenset[str], Callable[[BootFacts, DeviceFacts | None], int]]] = {
    "epollfd": (_ALL, lambda b, d: b.epollfd),
    "timerfd": (_ALL, lambda b, d: b.timerfd),
    "vcpufd": (_ALL, _vcpufd),
    "hostfd": (_DEVICES, lambda b, d: _dev(d).hostfd),
    "block_size": (_BLOCK, lambda b, d: _dev(d).block_size),
    "capacity": (_BLOCK, lambda b, d: _dev(d).capacity),
    "capacity - block_size": (_BLOCK, lambda b, d: _dev(d).capacity - _dev(d).block_size),
}


def _normalize_expr(text: str) -> str:
    """`capacity-block_size` and `capacity  -  block_size` are the same placeholder."""
    return " ".join(text.replace("-", " - ").split())


# --------------------------------------------------------------------------------------- loading


def load_policy(name_or_path: str) -> Policy:
    """Load and validate a policy: `spt` -> the shipped policies/spt.toml, or a file path."""
    path = find_policy(name_or_path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise RunncError(f"invalid TOML: {exc}", where=str(path)) from exc
    except OSError as exc:
        raise RunncError(f"cannot read policy: {exc.strerror}", where=str(path)) from exc
    return parse_policy(data, str(path))


def parse_policy(data: Mapping[str, Any], path: str) -> Policy:
    """Validate an already-parsed policy document (PATH only names it in errors)."""
    v = _Validator(path)
    v.keys(data, _TOP_KEYS, "policy")
    name = v.string(data, "name", "policy", required=False) or Path(path).stem
    description = v.string(data, "description", "policy", required=False)

    default = v.table(data, "default", "policy", required=True)
    v.keys(default, _DEFAULT_KEYS, "default")
    action = v.string(default, "action", "default")
    _check_action(action, v.err_at("default.action"))
    default_why = v.string(default, "why", "default")

    rules = v.rules(data, "rules", "base", required=True)

    device_rules: dict[str, tuple[RuleTemplate, ...]] = {}
    device_whys: dict[str, str] = {}
    devices = v.table(data, "devices", "policy", required=False)
    for kind, spec in devices.items():
        where = f"devices.{kind}"
        if kind not in DEVICE_KINDS:
            raise v.error(where, f"unknown device kind {kind!r} (known: {', '.join(DEVICE_KINDS)})")
        if not isinstance(spec, dict):
            raise v.error(where, "must be a table")
        v.keys(spec, _DEVICE_KEYS, where)
        device_whys[kind] = v.string(spec, "why", where, required=False)
        device_rules[kind] = v.rules(spec, "rules", kind, required=True, prefix=where)

    return Policy(
        name=name,
        path=path,
        default_action=action,
        default_why=default_why,
        description=description,
        rules=rules,
        device_rules=device_rules,
        device_whys=device_whys,
    )


def action_value(action: str) -> int:
    """The seccomp return value of a policy action name (`kill_process`, `errno:1`, ...)."""
    if action in ACTIONS:
        return ACTIONS[action]
    if action.startswith("errno:"):
        return ACTION_ERRNO | int(action.split(":", 1)[1])
    raise RunncError(f"unknown seccomp action {action!r}")


def _check_action(action: str, fail: Callable[[str], RunncError]) -> None:
    if action in ACTIONS:
        return
    if action.startswith("errno:"):
        number = action.split(":", 1)[1]
        if number.isdigit() and 0 < int(number) < 4096:
            return
        raise fail(f"errno action needs a number 1..4095, got {number!r}")
    known = ", ".join([*ACTIONS, "errno:N"])
    raise fail(f"unknown action {action!r} (known: {known}; 'allow' would make rules pointless)")


class _Validator:
    """Type/shape checks that raise one-line RunncErrors naming the file and the key."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.arch = os.uname().machine

    def error(self, where: str, message: str) -> RunncError:
        return RunncError(message, where=f"{self.path}: {where}")

    def err_at(self, where: str) -> Callable[[str], RunncError]:
        return lambda message: self.error(where, message)

    def keys(self, table: Mapping[str, Any], allowed: set[str], where: str) -> None:
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise self.error(
                where, f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
            )

    def string(self, table: Mapping[str, Any], key: str, where: str, required: bool = True) -> str:
        if key not in table:
            if required:
                raise self.error(where, f"missing {key!r}")
            return ""
        value = table[key]
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.error(f"{where}.{key}", "must be a non-empty string")
        return value.strip()

    def table(
        self, table: Mapping[str, Any], key: str, where: str, required: bool
    ) -> dict[str, Any]:
        if key not in table:
            if required:
                raise self.error(where, f"missing [{key}] table")
            return {}
        value = table[key]
        if not isinstance(value, dict):
            raise self.error(key, "must be a table")
        return value

    def integer(self, value: Any, where: str, low: int, high: int) -> int:
        # TOML booleans are Python bools, which are ints: refuse them explicitly.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(where, f"must be an integer, got {type(value).__name__}")
        if not low <= value <= high:
            raise self.error(where, f"{value} is out of range {low}..{high}")
        return value

    def rules(
        self,
        table: Mapping[str, Any],
        key: str,
        scope: str,
        required: bool,
        prefix: str = "",
    ) -> tuple[RuleTemplate, ...]:
        where = f"{prefix}.{key}" if prefix else key
        raw = table.get(key)
        if raw is None:
            if required:
                raise self.error(prefix or "policy", f"missing [[{where}]]")
            return ()
        if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
            raise self.error(where, "must be an array of tables ([[...]])")
        out = []
        for i, rule in enumerate(raw):
            parsed = self.rule(rule, scope, f"{where}[{i}]")
            if parsed is not None:
                out.append(parsed)
        return tuple(out)

    def rule(self, rule: Mapping[str, Any], scope: str, where: str) -> RuleTemplate | None:
        self.keys(rule, _RULE_KEYS, where)
        syscall = self.string(rule, "syscall", where)
        where = f"{where} ({syscall})"
        why = self.string(rule, "why", where)
        arches = rule.get("arches")
        if arches is not None and (
            not isinstance(arches, list) or not all(isinstance(a, str) for a in arches)
        ):
            raise self.error(f"{where}.arches", "must be a list of architecture names")
        raw_args = rule.get("args", [])
        if not isinstance(raw_args, list) or not all(isinstance(a, dict) for a in raw_args):
            raise self.error(f"{where}.args", "must be an array of tables ([[...args]])")
        if len(raw_args) > 6:
            raise self.error(f"{where}.args", "a syscall has at most 6 arguments")
        args = tuple(self.arg(a, scope, f"{where}.args[{j}]") for j, a in enumerate(raw_args))
        seen: set[int] = set()
        for j, arg in enumerate(args):
            if arg.index in seen:
                # libseccomp refuses two comparisons of one argument in a single rule (EINVAL).
                raise self.error(
                    f"{where}.args[{j}].index", f"argument {arg.index} is already compared"
                )
            seen.add(arg.index)
        if arches is not None and self.arch not in arches:
            return None  # e.g. arch_prctl is x86_64-only; checked for shape, not for its name
        if libseccomp.syscall_number(syscall) is None:
            raise self.error(f"{where}.syscall", f"unknown syscall {syscall!r} on {self.arch}")
        return RuleTemplate(syscall=syscall, args=args, why=why, where=f"{self.path}: {where}")

    def arg(self, arg: Mapping[str, Any], scope: str, where: str) -> ArgTemplate:
        self.keys(arg, _ARG_KEYS, where)
        for key in ("index", "op", "value"):
            if key not in arg:
                raise self.error(where, f"missing {key!r}")
        index = self.integer(arg["index"], f"{where}.index", 0, 5)
        op = arg["op"]
        if op not in OPS:
            raise self.error(f"{where}.op", f"unknown op {op!r} (known: {', '.join(OPS)})")
        why = self.string(arg, "why", where)
        mask = 0
        if op == "masked_eq":
            if "mask" not in arg:
                raise self.error(where, "op 'masked_eq' needs a 'mask'")
            mask = self.integer(arg["mask"], f"{where}.mask", 0, U64_MAX)
        elif "mask" in arg:
            raise self.error(f"{where}.mask", f"'mask' only applies to op 'masked_eq', not {op!r}")
        value, expr = self.value(arg["value"], scope, f"{where}.value")
        return ArgTemplate(index=index, op=op, value=value, mask=mask, why=why, expr=expr)

    def value(self, raw: Any, scope: str, where: str) -> tuple[int | str, str]:
        if isinstance(raw, str):
            if raw in CONSTANTS:
                return CONSTANTS[raw], raw
            name = _normalize_expr(raw)
            if name in PLACEHOLDERS:
                scopes, _ = PLACEHOLDERS[name]
                if scope not in scopes:
                    what = "base rules" if scope == "base" else f"{scope} devices"
                    raise self.error(where, f"placeholder {name!r} is not available in {what}")
                return name, name
            raise self.error(
                where,
                f"unknown constant or placeholder {raw!r} "
                f"(placeholders: {', '.join(PLACEHOLDERS)})",
            )
        return self.integer(raw, where, 0, U64_MAX), str(raw)


# ------------------------------------------------------------------------------------- resolving


def resolve(policy: Policy, facts: BootFacts) -> tuple[ResolvedRule, ...]:
    """The concrete allowlist for one boot: base rules, then each device's rules in order."""
    _check_facts(policy, facts)
    out = [_resolve_rule(rule, facts, None) for rule in policy.rules]
    for dev in facts.devices:
        out += [_resolve_rule(rule, facts, dev) for rule in policy.device_rules[dev.kind]]
    return tuple(out)


def _check_facts(policy: Policy, facts: BootFacts) -> None:
    where = f"policy {policy.name}"
    owners: dict[int, str] = {0: "stdin", 1: "stdout", 2: "stderr"}
    boot_fds = [("epollfd", facts.epollfd), ("timerfd", facts.timerfd)]
    if facts.vcpufd is not None:
        boot_fds.append(("vcpufd", facts.vcpufd))
    named = boot_fds + [(f"device {d.name}", d.hostfd) for d in facts.devices]
    for owner, fd in named:
        if isinstance(fd, bool) or not isinstance(fd, int) or fd < 0:
            raise RunncError(f"{owner} fd {fd!r} is not a valid file descriptor", where=where)
        if fd in owners:
            raise RunncError(f"{owner} fd {fd} is also {owners[fd]}'s", where=where)
        owners[fd] = owner
    names: set[str] = set()
    for dev in facts.devices:
        dwhere = f"{where}: device {dev.name}"
        if dev.name in names:
            raise RunncError("device name given twice", where=dwhere)
        names.add(dev.name)
        if dev.kind not in policy.device_rules:
            kinds = ", ".join(policy.device_rules) or "none"
            raise RunncError(
                f"policy has no rules for {dev.kind!r} devices (it covers: {kinds})", where=dwhere
            )
        if dev.kind == "block":
            if dev.block_size <= 0:
                raise RunncError(f"block size {dev.block_size} must be positive", where=dwhere)
            if dev.capacity < dev.block_size:
                raise RunncError(
                    f"capacity {dev.capacity} is smaller than one block ({dev.block_size})",
                    where=dwhere,
                )


def _resolve_rule(rule: RuleTemplate, facts: BootFacts, dev: DeviceFacts | None) -> ResolvedRule:
    conds = []
    for arg in rule.args:
        value = arg.value
        if isinstance(value, str):
            _, compute = PLACEHOLDERS[value]
            value = compute(facts, dev)
        if not 0 <= value <= U64_MAX:
            raise RunncError(
                f"{arg.expr} = {value} does not fit in a syscall argument", where=rule.where
            )
        conds.append(
            ArgCond(
                index=arg.index, op=arg.op, value=value, mask=arg.mask, why=arg.why, expr=arg.expr
            )
        )
    return ResolvedRule(
        syscall=rule.syscall,
        conds=tuple(conds),
        why=rule.why,
        device=dev.name if dev else None,
    )


def describe(cond: ArgCond) -> str:
    """`arg0 == 5 (hostfd)` — one condition as a human reads it."""
    if cond.op == "masked_eq":
        text = f"arg{cond.index} & {cond.mask:#x} == {cond.value}"
    else:
        text = f"arg{cond.index} {OP_SYMBOLS[cond.op]} {cond.value}"
    if cond.expr and cond.expr != str(cond.value):
        text += f" ({cond.expr})"
    return text
