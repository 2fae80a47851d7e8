"""Load a bundle's `config.json` into typed objects. Pure apart from reading the file.

Only the parts of the OCI runtime spec a unikernel container uses are typed; everything else
is kept in `Spec.raw` (hooks, resources and `process` are handed on as parsed here). Every
error names the JSON path (`config.json: process.args[0]`) so a user can find the bad field.
"""

from __future__ import annotations

import os

from runnc_py.errors import RunncError
from runnc_py.oci import fastjson
from runnc_py.record import FrozenRecord
from runnc_py.strictnum import INT64_MAX, INT64_MIN, json_int

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

HOOK_KINDS = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)
SUPPORTED_MAJOR = "1"
# Bounds on what a bundle may hand us. config.json is read whole, parsed, and its annotations
# are copied into state.json (read by every `state`/`kill` poll), so each is capped before it
# costs anything. Real configs are a few KiB (Docker's, with its seccomp profile, ~25 KiB) and
# nest about 6 levels deep.
MAX_CONFIG_BYTES = 4 << 20
MAX_JSON_DEPTH = 64
# Kubernetes' own cap on a pod's annotations (TotalAnnotationSizeLimitB), so whatever a
# kubelet accepts we accept; the count cap keeps state.json small even for tiny entries.
MAX_ANNOTATION_BYTES = 256 << 10
MAX_ANNOTATIONS = 4096
MAX_HOOK_TIMEOUT = (1 << 31) - 1  # seconds; poll(2) and friends take a C int


class Hook(FrozenRecord):
    """One OCI hook: `path` is run with argv `args` (args[0] is argv[0]) and `env`."""

    __slots__ = ("args", "env", "path", "timeout")
    path: str
    args: tuple[str, ...]
    env: tuple[str, ...] | None  # None: inherit the runtime's environment
    timeout: int | None  # seconds

    def __init__(
        self,
        path: str,
        args: tuple[str, ...] = (),
        env: tuple[str, ...] | None = None,
        timeout: int | None = None,
    ) -> None:
        self._set(path=path, args=args, env=env, timeout=timeout)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path}
        if self.args:
            out["args"] = list(self.args)
        if self.env is not None:
            out["env"] = list(self.env)
        if self.timeout is not None:
            out["timeout"] = self.timeout
        return out


class Namespace(FrozenRecord):
    """One `linux.namespaces` entry: its type and, to join one, its path."""

    __slots__ = ("path", "type")
    type: str
    path: str | None

    def __init__(self, type: str, path: str | None = None) -> None:
        self._set(type=type, path=path)


class Spec(FrozenRecord):
    """The typed view of config.json."""

    __slots__ = (
        *("oci_version", "root_path", "args", "env", "terminal", "hostname", "annotations"),
        *("hooks", "namespaces", "resources", "cgroups_path", "process", "raw"),
    )
    oci_version: str
    root_path: str  # absolute (relative paths are resolved against the bundle)
    args: tuple[str, ...]
    env: tuple[str, ...]
    terminal: bool
    hostname: str | None
    annotations: Mapping[str, str]
    hooks: Mapping[str, tuple[Hook, ...]]
    namespaces: tuple[Namespace, ...]
    resources: Mapping[str, Any]
    cgroups_path: str | None
    process: Mapping[str, Any]  # raw, for process security
    raw: Mapping[str, Any]

    def __init__(
        self,
        oci_version: str,
        root_path: str,
        args: tuple[str, ...],
        env: tuple[str, ...] = (),
        terminal: bool = False,
        hostname: str | None = None,
        annotations: Mapping[str, str] | None = None,
        hooks: Mapping[str, tuple[Hook, ...]] | None = None,
        namespaces: tuple[Namespace, ...] = (),
        resources: Mapping[str, Any] | None = None,
        cgroups_path: str | None = None,
        process: Mapping[str, Any] | None = None,
        raw: Mapping[str, Any] | None = None,
    ) -> None:
        self._set(
            oci_version=oci_version,
            root_path=root_path,
            args=args,
            env=env,
            terminal=terminal,
            hostname=hostname,
            annotations={} if annotations is None else annotations,
            hooks={} if hooks is None else hooks,
            namespaces=namespaces,
            resources={} if resources is None else resources,
            cgroups_path=cgroups_path,
            process={} if process is None else process,
            raw={} if raw is None else raw,
        )

    @property
    def memory_limit(self) -> int | None:
        """linux.resources.memory.limit in bytes, None when unset or unlimited (-1)."""
        memory = self.resources.get("memory") or {}
        limit = memory.get("limit")
        if limit is None or limit < 0:
            return None
        return int(limit)  # an int64: parse_spec checked it


def _where(path: str) -> str:
    return f"config.json: {path}"


def _expect(value: Any, kind: type, path: str, what: str) -> Any:
    # bool is an int subclass in Python: `true` is never a number here.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        got = "null" if value is None else type(value).__name__
        raise RunncError(f"must be {what}, got {got}", where=_where(path))
    return value


def _strings(value: Any, path: str) -> tuple[str, ...]:
    _expect(value, list, path, "a list of strings")
    for i, item in enumerate(value):
        _expect(item, str, f"{path}[{i}]", "a string")
    return tuple(value)


def _hooks(value: Any) -> dict[str, tuple[Hook, ...]]:
    if value is None:
        return {}
    _expect(value, dict, "hooks", "an object")
    out: dict[str, tuple[Hook, ...]] = {}
    for kind, items in value.items():
        if kind not in HOOK_KINDS:
            raise RunncError(
                f"unknown hook kind {kind!r} (known: {', '.join(HOOK_KINDS)})",
                where=_where("hooks"),
            )
        _expect(items, list, f"hooks.{kind}", "a list of hooks")
        hooks = []
        for i, item in enumerate(items):
            where = f"hooks.{kind}[{i}]"
            _expect(item, dict, where, "an object")
            hook_path = _expect(item.get("path"), str, f"{where}.path", "a string")
            if not os.path.isabs(hook_path):
                raise RunncError("must be an absolute path", where=_where(f"{where}.path"))
            args = _strings(item["args"], f"{where}.args") if "args" in item else ()
            env = _strings(item["env"], f"{where}.env") if "env" in item else None
            timeout = item.get("timeout")
            if timeout is not None:
                json_int(timeout, where=_where(f"{where}.timeout"), low=1, high=MAX_HOOK_TIMEOUT)
            hooks.append(Hook(path=hook_path, args=args, env=env, timeout=timeout))
        out[kind] = tuple(hooks)
    return out


def _namespaces(value: Any) -> tuple[Namespace, ...]:
    if value is None:
        return ()
    _expect(value, list, "linux.namespaces", "a list")
    out = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        where = f"linux.namespaces[{i}]"
        _expect(item, dict, where, "an object")
        ns_type = _expect(item.get("type"), str, f"{where}.type", "a string")
        if ns_type in seen:
            raise RunncError(f"namespace {ns_type!r} given twice", where=_where(where))
        seen.add(ns_type)
        ns_path = item.get("path")
        if ns_path is not None:
            _expect(ns_path, str, f"{where}.path", "a string")
            if not os.path.isabs(ns_path):
                raise RunncError("must be an absolute path", where=_where(f"{where}.path"))
        out.append(Namespace(type=ns_type, path=ns_path or None))
    return tuple(out)


def _check_annotations(annotations: Mapping[Any, Any]) -> None:
    if len(annotations) > MAX_ANNOTATIONS:
        raise RunncError(
            f"{len(annotations)} annotations, at most {MAX_ANNOTATIONS} are accepted",
            where=_where("annotations"),
        )
    total = 0
    for key, value in annotations.items():
        shown = key if len(key) <= 64 else key[:61] + "..."
        _expect(value, str, f"annotations[{shown!r}]", "a string")
        total += len(key.encode("utf-8", "surrogatepass")) + len(
            value.encode("utf-8", "surrogatepass")
        )
    if total > MAX_ANNOTATION_BYTES:
        raise RunncError(
            f"annotations hold {total} bytes, at most {MAX_ANNOTATION_BYTES} are accepted",
            where=_where("annotations"),
        )


def check_depth(data: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than LIMIT levels. Iterative: the depth is what is untrusted."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            raise RunncError(f"nested deeper than {limit} levels", where=_where("(top level)"))
        stack.extend((child, depth + 1) for child in children)


def parse_spec(data: Any, bundle: str) -> Spec:
    """Validate the decoded config.json DATA of the bundle directory BUNDLE."""
    _expect(data, dict, "(top level)", "an object")
    check_depth(data)
    version = _expect(data.get("ociVersion"), str, "ociVersion", "a string")
    if version.split(".", 1)[0] != SUPPORTED_MAJOR:
        raise RunncError(
            f"unsupported version {version!r} (runnc-py implements 1.x)", where=_where("ociVersion")
        )
    root = data.get("root")
    _expect(root, dict, "root", "an object")
    root_path = _expect(root.get("path"), str, "root.path", "a string")
    if not root_path:
        raise RunncError("must not be empty", where=_where("root.path"))
    root_path = os.path.normpath(os.path.join(bundle, root_path))

    process = data.get("process")
    _expect(process, dict, "process", "an object")
    if "args" not in process:
        raise RunncError("is required: the unikernel to run", where=_where("process.args"))
    args = _strings(process["args"], "process.args")
    if not args or not args[0]:
        raise RunncError("must name the unikernel to run", where=_where("process.args[0]"))
    env = _strings(process["env"], "process.env") if process.get("env") is not None else ()
    terminal = process.get("terminal", False)
    _expect(terminal, bool, "process.terminal", "true or false")

    annotations = data.get("annotations") or {}
    _expect(annotations, dict, "annotations", "an object")
    _check_annotations(annotations)

    hostname = data.get("hostname")
    if hostname is not None:
        _expect(hostname, str, "hostname", "a string")

    linux = data.get("linux") or {}
    _expect(linux, dict, "linux", "an object")
    resources = linux.get("resources") or {}
    _expect(resources, dict, "linux.resources", "an object")
    memory = resources.get("memory")
    if memory is not None:
        _expect(memory, dict, "linux.resources.memory", "an object")
        if memory.get("limit") is not None:
            # The spec's type is int64; a larger number would wrap in the kernel's parser
            # (2**64+5 becomes a 5-byte limit and the init is OOM-killed).
            json_int(
                memory["limit"],
                where=_where("linux.resources.memory.limit"),
                low=INT64_MIN,
                high=INT64_MAX,
                unit="bytes",
            )
    cgroups_path = linux.get("cgroupsPath")
    if cgroups_path is not None:
        _expect(cgroups_path, str, "linux.cgroupsPath", "a string")

    return Spec(
        oci_version=version,
        root_path=root_path,
        args=args,
        env=env,
        terminal=terminal,
        hostname=hostname,
        annotations=dict(annotations),
        hooks=_hooks(data.get("hooks")),
        namespaces=_namespaces(linux.get("namespaces")),
        resources=dict(resources),
        cgroups_path=cgroups_path or None,
        process=dict(process),
        raw=data,
    )


def load_spec(bundle: str) -> Spec:
    """Read and validate BUNDLE/config.json."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise RunncError("no config.json in the bundle", where=bundle) from None
    except OSError as exc:
        raise RunncError(f"cannot read: {exc.strerror}", where=path) from None
    if len(text) > MAX_CONFIG_BYTES:
        raise RunncError(f"larger than {MAX_CONFIG_BYTES} bytes", where=path)
    try:
        data = fastjson.loads(text)
    except ValueError as exc:
        raise RunncError(f"not valid JSON: {exc}", where=path) from None
    except RecursionError:
        # The C scanner stops at the interpreter's recursion limit (~1000 levels).
        raise RunncError(f"nested deeper than {MAX_JSON_DEPTH} levels", where=path) from None
    return parse_spec(data, bundle)
