"""`features` follows the runtime spec's features document; `spec` makes a runnable bundle."""

from __future__ import annotations

from pathlib import Path

from runnc_py.oci.features import features, spec_template
from runnc_py.oci.plan import plan_from_spec
from runnc_py.oci.spec import HOOK_KINDS, parse_spec


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("-")[0].split("."))


def test_features_document() -> None:
    doc = features()
    assert _version(doc["ociVersionMin"]) <= _version(doc["ociVersionMax"])
    assert doc["hooks"] == list(HOOK_KINDS)
    assert set(doc["linux"]["cgroup"]) == {"v1", "v2", "systemd", "systemdUser", "rdma"}
    assert "user" not in doc["linux"]["namespaces"]  # refused, so not advertised
    assert all(k.startswith("org.runnc-py.") for k in doc["annotations"])


def test_spec_template_is_a_valid_unikernel_bundle(tmp_path: Path, guests: Path) -> None:
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "rootfs" / "hello.spt").write_bytes((guests / "hello.spt").read_bytes())
    spec = parse_spec(spec_template("/hello.spt", ("a",)), str(tmp_path))
    plan = plan_from_spec(spec)
    assert plan.unikernel == str(tmp_path / "rootfs" / "hello.spt")
    assert plan.args == ("a",)
    assert plan.mem_mb == 56  # 64 MiB limit in the template
