"""`runnc-py policy show|check`: what a seccomp policy allows for a given device set."""

from __future__ import annotations

import json
import re
from typing import Any

import click

from runnc_py.sandbox.policy import (
    BootFacts,
    DeviceFacts,
    Policy,
    ResolvedRule,
    describe,
    load_policy,
    resolve,
)

EXAMPLE_EPOLLFD = 3
EXAMPLE_TIMERFD = 4
FIRST_DEVICE_FD = 5
DEFAULT_CAPACITY = 64 * 1024 * 1024
DEFAULT_BLOCK_SIZE = 512
_SIZE_RE = re.compile(r"^(\d+)([KMGT]?)$", re.I)
_NAME_RE = re.compile(r"^[A-Za-z0-9]{1,67}$")  # Solo5 manifest names


@click.group()
def policy() -> None:
    """Inspect and check seccomp policies."""


def _size(text: str, what: str, spec: str) -> int:
    match = _SIZE_RE.match(text)
    if not match:
        raise click.BadParameter(f"{what} {text!r} is not a size (e.g. 512, 64M)", param_hint=spec)
    shift = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[match.group(2).upper()]
    return int(match.group(1)) << shift


def _block(spec: str) -> tuple[str, int, int]:
    """`NAME[:CAPACITY[:BLOCK_SIZE]]` with defaults 64M and 512."""
    parts = spec.split(":")
    if len(parts) > 3 or not _NAME_RE.match(parts[0]):
        raise click.BadParameter(
            f"{spec!r} is not NAME[:CAPACITY[:BLOCK_SIZE]]", param_hint="--block"
        )
    capacity = _size(parts[1], "capacity", "--block") if len(parts) > 1 else DEFAULT_CAPACITY
    block_size = _size(parts[2], "block size", "--block") if len(parts) > 2 else DEFAULT_BLOCK_SIZE
    return parts[0], capacity, block_size


def example_facts(nets: tuple[str, ...], blocks: tuple[str, ...]) -> BootFacts:
    """Boot facts with example fds: epoll 3, timer 4, devices from 5 upward, vcpu after them."""
    devices: list[DeviceFacts] = []
    fd = FIRST_DEVICE_FD
    for name in nets:
        if not _NAME_RE.match(name):
            raise click.BadParameter(f"{name!r} is not a device name", param_hint="--net")
        devices.append(DeviceFacts(kind="net", name=name, hostfd=fd))
        fd += 1
    for spec in blocks:
        name, capacity, block_size = _block(spec)
        devices.append(
            DeviceFacts(
                kind="block", name=name, hostfd=fd, capacity=capacity, block_size=block_size
            )
        )
        fd += 1
    return BootFacts(
        epollfd=EXAMPLE_EPOLLFD, timerfd=EXAMPLE_TIMERFD, devices=tuple(devices), vcpufd=fd
    )


def _facts_line(facts: BootFacts, uses_vcpu: bool) -> str:
    parts = [f"epollfd={facts.epollfd}", f"timerfd={facts.timerfd}"]
    for d in facts.devices:
        extra = f", capacity={d.capacity}, block_size={d.block_size}" if d.kind == "block" else ""
        parts.append(f"{d.name} ({d.kind}, hostfd={d.hostfd}{extra})")
    if uses_vcpu:
        parts.append(f"vcpufd={facts.vcpufd}")
    return "; ".join(parts)


def _uses_vcpu(pol: Policy) -> bool:
    templates = [*pol.rules, *(r for rules in pol.device_rules.values() for r in rules)]
    return any(a.value == "vcpufd" for t in templates for a in t.args)


def _rule_json(rule: ResolvedRule) -> dict[str, Any]:
    return {
        "syscall": rule.syscall,
        "device": rule.device,
        "why": rule.why,
        "args": [
            {
                "index": c.index,
                "op": c.op,
                "value": c.value,
                "mask": c.mask,
                "expr": c.expr,
                "why": c.why,
            }
            for c in rule.conds
        ],
    }


@policy.command()
@click.argument("name", default="spt")
@click.option("--policy", "policy_file", metavar="FILE", help="Policy file instead of NAME.")
@click.option("--net", "nets", multiple=True, metavar="NAME", help="Attach a net device.")
@click.option(
    "--block",
    "blocks",
    multiple=True,
    metavar="NAME[:CAPACITY[:BLOCK_SIZE]]",
    help="Attach a block device (defaults 64M, 512).",
)
@click.option("--bpf", "with_bpf", is_flag=True, help="Also compile it and give the length.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(
    name: str,
    policy_file: str | None,
    nets: tuple[str, ...],
    blocks: tuple[str, ...],
    with_bpf: bool,
    as_json: bool,
) -> None:
    """Print the effective rules of policy NAME (default: spt) for a device set."""
    pol = load_policy(policy_file or name)
    facts = example_facts(nets, blocks)
    uses_vcpu = _uses_vcpu(pol)
    rules = resolve(pol, facts)
    bpf_len = None
    if with_bpf:
        from runnc_py.sandbox.bpf import compile_bpf

        bpf_len = len(compile_bpf(rules, pol.default_action))
    note = "example fds: epollfd 3, timerfd 4, devices from 5 upward in the order given"
    if as_json:
        doc: dict[str, Any] = {
            "policy": pol.name,
            "path": pol.path,
            "default_action": pol.default_action,
            "default_why": pol.default_why,
            "facts": {
                "note": note,
                "epollfd": facts.epollfd,
                "timerfd": facts.timerfd,
                "devices": [
                    {
                        "kind": d.kind,
                        "name": d.name,
                        "hostfd": d.hostfd,
                        "capacity": d.capacity,
                        "block_size": d.block_size,
                    }
                    for d in facts.devices
                ],
            },
            "rules": [_rule_json(r) for r in rules],
        }
        if uses_vcpu:
            doc["facts"]["vcpufd"] = facts.vcpufd
        if bpf_len is not None:
            doc["bpf"] = {"bytes": bpf_len, "instructions": bpf_len // 8}
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"policy {pol.name}: {pol.path}")
    if pol.description:
        click.echo(f"  {pol.description}")
    click.echo(f"facts ({note}):")
    click.echo(f"  {_facts_line(facts, uses_vcpu)}")
    click.echo(f"default action: {pol.default_action}")
    click.echo(f"  why: {pol.default_why}")
    click.echo(f"allowed ({len(rules)} rules):")
    for rule in rules:
        conds = " && ".join(describe(c) for c in rule.conds)
        device = f"[{rule.device}] " if rule.device else ""
        click.echo(f"  {device}{rule.syscall}" + (f"  if {conds}" if conds else ""))
        click.echo(f"      why: {rule.why}")
        for c in rule.conds:
            click.echo(f"      arg{c.index}: {c.why}")
    if bpf_len is not None:
        click.echo(f"bpf: {bpf_len // 8} instructions ({bpf_len} bytes)")


@policy.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE|NAME...")
def check(files: tuple[str, ...]) -> None:
    """Validate policy files; the first error is reported and the exit status is 1."""
    for item in files:
        pol = load_policy(item)
        count = len(pol.rules) + sum(len(r) for r in pol.device_rules.values())
        kinds = ", ".join(pol.device_rules) or "none"
        click.echo(f"{pol.path}: ok ({count} rules; device kinds: {kinds})")
