"""Where a filter comes from: a policy, an OCI profile, a raw BPF file, a live process or a
container of ours. Each becomes a `Source`: its programs plus what the report says about it.

Spec syntax for `check` and `diff`: `pid:N` or a bare number, `id:NAME`, `policy:spt|hvt|FILE`
(or `spt`/`hvt`), `profile:FILE`, `bpf:FILE`, `unconfined`; a bare path is told apart by its
suffix (.toml policy, .json profile, anything else raw BPF).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from runnc_py.audit import program as bpf
from runnc_py.audit import semantics
from runnc_py.audit.procfacts import ProcessFacts
from runnc_py.errors import RunncError
from runnc_py.sandbox.facts import BootFacts


@dataclass
class Source:
    label: str
    kind: str  # policy | profile | bpf | live | unconfined
    programs: tuple[bytes, ...] = ()
    notes: list[str] = field(default_factory=list)
    process: ProcessFacts | None = None
    pause_seconds: float | None = None
    expected: Source | None = None  # live: what our policy gives it
    container: str | None = None

    def parsed(self) -> list[tuple[bpf.Insn, ...]]:
        return [bpf.parse(p, where=f"{self.label} filter {i}") for i, p in
                enumerate(self.programs)]

    def semantics(self) -> semantics.Semantics:
        return semantics.of_programs(self.parsed())

    def filters_json(self) -> list[dict[str, Any]]:
        return [{"index": i, "instructions": len(p) // bpf.INSN_SIZE,
                 "sha256": hashlib.sha256(p).hexdigest()} for i, p in enumerate(self.programs)]


def from_policy(name: str, facts: BootFacts, where_facts: str) -> Source:
    from runnc_py.sandbox.bpf import compile_bpf
    from runnc_py.sandbox.policy import load_policy, resolve

    pol = load_policy(name)
    program = compile_bpf(resolve(pol, facts), pol.default_action)
    return Source(label=f"policy {pol.name}", kind="policy", programs=(program,),
                  notes=[f"policy file {pol.path}", where_facts])


def describe_facts(facts: BootFacts) -> str:
    parts = [f"epollfd {facts.epollfd}", f"timerfd {facts.timerfd}"]
    parts += [f"{d.kind} {d.name} fd {d.hostfd}" + (
        f" ({d.capacity} bytes, {d.block_size}-byte blocks)" if d.kind == "block" else "")
        for d in facts.devices]
    if facts.vcpufd is not None:
        parts.append(f"vcpufd {facts.vcpufd}")
    return "fds: " + ", ".join(parts)


def from_profile(path: str) -> Source:
    from runnc_py.audit.profile import compile_profile, load_profile

    compiled = compile_profile(load_profile(path), path)
    notes = [f"OCI profile {path}: default {compiled.default_action}, {compiled.rules} rules"
             " compiled with libseccomp"]
    if compiled.skipped_names:
        notes.append(f"{len(compiled.skipped_names)} syscall names unknown to libseccomp, "
                     "skipped as runc does: " + ", ".join(sorted(set(compiled.skipped_names))))
    return Source(label=f"profile {os.path.basename(path)}", kind="profile",
                  programs=(compiled.program,), notes=notes)


def from_bpf(path: str) -> Source:
    try:
        with open(path, "rb") as fh:
            data = fh.read(bpf.BPF_MAXINSNS * bpf.INSN_SIZE + 1)
    except OSError as exc:
        raise RunncError(f"cannot read BPF file: {exc.strerror}", where=path) from exc
    bpf.parse(data, where=path)
    return Source(label=f"bpf {os.path.basename(path)}", kind="bpf", programs=(data,))


def from_pid(pid: int, *, blocks: list[tuple[str, int]] | None = None) -> Source:
    """Filters and facts of a live process, and what our policy gives a process like it."""
    from runnc_py.audit import expect, procfacts, ptrace

    if pid <= 0:
        raise RunncError("not a process id", where=f"pid {pid}")
    facts = procfacts.read(pid)
    source = Source(label=f"pid {pid}", kind="live", process=facts)
    if facts.seccomp_mode == 0:
        source.notes.append("Seccomp: 0 (no filter at all: every syscall reaches the kernel)")
    elif facts.seccomp_mode == 1:
        source.notes.append("Seccomp: 1 (strict mode: read, write, exit, sigreturn only)")
    else:
        read = ptrace.read_filters(pid)
        source.programs, source.pause_seconds = read.programs, read.pause_seconds
    kind = facts.kind()
    try:
        boot = expect.boot_facts(facts, blocks)
    except RunncError as exc:
        source.notes.append(f"no policy to compare with: {exc.message}")
        return source
    source.expected = from_policy(kind, boot, describe_facts(boot))
    source.expected.label = f"policy {kind} for its fds"
    return source


def from_container(root: str, container_id: str) -> Source:
    from runnc_py.audit.expect import sector_sizes
    from runnc_py.oci.state import Store

    store = Store(root)
    state = store.load(container_id)
    if not state.pid or not state.init_alive():
        raise RunncError("the container has no running process to audit", where=container_id)
    status = state.status(store.dir(container_id))
    if status != "running":
        # created: the init has not become the guest yet; paused: frozen tasks never stop
        # for a tracer.
        raise RunncError(f"the container is {status}: only a running guest can be audited",
                         where=container_id)
    source = from_pid(state.pid, blocks=sector_sizes(state.annotations))
    source.label = f"container {container_id} (pid {state.pid})"
    source.container = container_id
    return source


def resolve_spec(spec: str, root: str, facts: BootFacts) -> Source:
    """One FILTER argument of `check`/`diff` (see the module docstring)."""
    kind, _, rest = spec.partition(":")
    if not rest or kind not in ("pid", "id", "policy", "profile", "bpf"):
        kind, rest = _guess(spec), spec
    if kind == "unconfined":
        return Source(label="unconfined", kind="unconfined")
    if kind == "pid":
        if not rest.isdigit():
            raise RunncError(f"{rest!r} is not a process id", where=spec)
        return from_pid(int(rest))
    if kind == "id":
        return from_container(root, rest)
    if kind == "policy":
        return from_policy(rest, facts, describe_facts(facts))
    if kind == "profile":
        return from_profile(rest)
    return from_bpf(rest)


def _guess(spec: str) -> str:
    if spec == "unconfined":
        return "unconfined"
    if spec.isdigit():
        return "pid"
    if spec in ("spt", "hvt") or spec.endswith(".toml"):
        return "policy"
    if spec.endswith(".json"):
        return "profile"
    return "bpf"
