"""create makes the container's cgroup while its init enters the namespaces (oci/lifecycle.py
`_make_cgroup_meanwhile`): when the init fails there, its own error is what create reports,
and nothing is left behind. (An init that already exited is still our unreaped child, so
joining it to the cgroup mostly succeeds; when the join does fail, create asks the init first,
so the message is the init's either way.)"""

from __future__ import annotations

from tests.integration import test_lifecycle as lifecycle
from tests.integration.test_lifecycle import Runtime, assert_gone, cgroup_dirs

rt = lifecycle.rt
subreaper = lifecycle.subreaper


def test_an_init_that_fails_entering_namespaces_reports_its_own_error(rt: Runtime) -> None:
    cid = rt.new_id("nsfail")
    not_a_namespace = rt.tmp / "not-a-namespace"
    not_a_namespace.write_text("")
    bundle = rt.bundle(namespaces=[{"type": "network", "path": str(not_a_namespace)}])
    done, out = rt.create(cid, bundle)
    text = out.read_text()
    assert done.returncode != 0
    assert f"{not_a_namespace}: cannot join network namespace: Invalid argument" in text, text
    assert "No such process" not in text and "no such process" not in text, text
    assert_gone(rt, cid)


def test_a_created_container_is_in_its_cgroup(rt: Runtime) -> None:
    """The normal order still holds: the init joined the cgroup before `created`."""
    cid = rt.new_id("cgorder")
    pid, _ = rt.created(cid, rt.bundle())
    procs = [d / "cgroup.procs" for d in cgroup_dirs(f"/runnc-py/{cid}")]
    assert procs and all(str(pid) in p.read_text().split() for p in procs if p.exists())
    assert rt("delete", "--force", cid).returncode == 0
    assert_gone(rt, cid)
