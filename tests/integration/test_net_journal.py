"""The wiring journal: crashes at every step, tampered records, and repair by a later create.

Crashes are made deterministic by the test hook `RUNNC_PY_TEST_NET_CRASH_AT=N` (see
runnc_py.net.wiring): at the N-th journal checkpoint (1 = right after the first intent was saved,
before its step; the last = after the last step) the wiring process SIGKILLs itself ("N"), or
SIGSTOPs itself ("N:stop") so the test can kill -9 it and its parent `create` at that point.
After any of them, `unwire` of the saved record (or `delete --force`) leaves the namespace
exactly as before. Layout: netlab.py (namespaces of the test's own, deleted after).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runnc_py.errors import RunncError
from runnc_py.net import store
from runnc_py.net.crashpoint import CRASH_AT_ENV
from runnc_py.net.facts import Address
from runnc_py.net.wired import AddressRecord, IfaceUndo, WiredNetwork
from runnc_py.net.wiring import unwire, wire
from tests.integration import test_lifecycle, test_oci_wiring
from tests.integration.netlab import Lab, sh
from tests.integration.test_lifecycle import Runtime, assert_gone, wait_for
from tests.integration.test_oci_wiring import net_bundle, stop_and_delete

pytestmark = pytest.mark.root

rt = test_lifecycle.rt
subreaper = test_lifecycle.subreaper
lab_cmdline = test_oci_wiring.lab_cmdline
private_cache = test_oci_wiring.private_cache

WIRE = """
import sys
from runnc_py.net import read_facts, store, wire
facts = read_facts(sys.argv[1])
wire(sys.argv[1], facts, journal=store.journal(sys.argv[2], facts))
"""
CHECKPOINTS_PER_INTERFACE = 3  # tap, ingress on the interface, its addresses


def wire_until(lab: Lab, state_dir: Path, crash_at: int) -> int:
    state_dir.mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", WIRE, lab.path, str(state_dir)],
        env={**os.environ, CRASH_AT_ENV: str(crash_at)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr
    return proc.returncode


@pytest.mark.parametrize("interfaces", [1, 3])
def test_kill_9_at_every_wiring_step_then_unwire_restores_everything(
    lab: Lab, tmp_path: Path, interfaces: int
) -> None:
    if interfaces == 3:  # eth0, and both ends of a veth pair inside the namespace
        lab.ip(lab.ctr, "link", "add", "net1", "type", "veth", "peer", "name", "net1p")
        lab.ip(lab.ctr, "addr", "add", "10.88.0.5/24", "dev", "net1")
        lab.ip(lab.ctr, "link", "set", "net1", "up")
        lab.ip(lab.ctr, "-6", "route", "add", "2001:db8::/64", "dev", "net1")
    before = lab.state()
    last = CHECKPOINTS_PER_INTERFACE * interfaces + 1  # + after the last step
    for step in range(1, last + 1):
        state_dir = tmp_path / f"step{step}"
        code = wire_until(lab, state_dir, step)
        assert code == -signal.SIGKILL, f"step {step}"
        record = store.load(state_dir)
        assert record.wired is not None
        unwire(record.wired)
        assert lab.state() == before, f"killed at step {step}"
        unwire(record.wired)  # and again: nothing left to do, nothing to complain about
    assert wire_until(lab, tmp_path / "again", last + 1) == 0  # the namespace still wires


UNWIRE = """
import json, sys
from runnc_py.net import unwire
unwire(json.load(open(sys.argv[1])))
"""


def test_kill_9_at_every_unwiring_step_then_unwire_again_restores_everything(
    lab: Lab, tmp_path: Path
) -> None:
    """`delete` killed in the middle of `unwire`: the tap goes last, so running it again finds
    the proof and finishes; the namespace ends exactly as before."""
    from runnc_py.net import read_facts

    before = lab.state()
    record = tmp_path / "wired.json"
    step = 0
    while True:
        step += 1
        wired = wire(lab.path, read_facts(lab.path))
        record.write_text(json.dumps(wired.to_dict()))
        proc = subprocess.run(
            [sys.executable, "-c", UNWIRE, str(record)],
            env={**os.environ, CRASH_AT_ENV: f"unwire:{step}"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        unwire(wired)
        assert lab.state() == before, f"killed at unwire step {step}"
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr
    # The ingress qdisc, each address and route, the tap: each a step; then the run that ended.
    (undo,) = wired.undo
    assert step == 1 + len(undo.addresses) + len(undo.routes) + 1 + 1
    assert len(undo.addresses) >= 2 and len(undo.routes) == 3


# ---------------------------------------------------------------------------- tampering


def snapshot(ns: str) -> dict[str, Any]:
    return {
        "links": json.loads(sh("ip", "-n", ns, "-j", "-d", "link", "show")),
        "addrs": json.loads(sh("ip", "-n", ns, "-j", "addr", "show")),
        "routes": sh("ip", "-n", ns, "route", "show") + sh("ip", "-n", ns, "-6", "route", "show"),
        "qdiscs": sh("tc", "-n", ns, "qdisc", "show"),
        "filters": sh("tc", "-n", ns, "filter", "show", "dev", "eth0", "ingress"),
    }


def link_index(ns: str, name: str) -> int:
    return int(json.loads(sh("ip", "-n", ns, "-j", "link", "show", name))[0]["ifindex"])


def netns_id(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def foreign_record(lab: Lab, target: str, *, by_index: bool = True) -> tuple[str, WiredNetwork]:
    """A namespace the record does not own: a plain container with eth0 (veth) carrying an
    ingress qdisc + filter of someone else's (and a veth d0 of another pair, or someone else's
    persistent tap `tapother`, when `target` names one); a record naming `target` as its tap
    (by ifindex, or by name only as records from before the journal did) and claiming eth0's
    ingress qdisc and
    addresses."""
    other = lab.add_container("10.77.0.7/24")
    if target == "d0":
        # A veth, not a dummy: the dummy module is missing on some hosts (this one).
        sh("ip", "-n", other, "link", "add", "d0", "type", "veth", "peer", "name", "d0peer")
    if target == "tapother":  # a persistent tap of someone else's, at a kernel-chosen index
        sh("ip", "-n", other, "tuntap", "add", "tapother", "mode", "tap")
    sh("tc", "-n", other, "qdisc", "add", "dev", "eth0", "ingress")
    sh("tc", "-n", other, "filter", "add", "dev", "eth0", "parent", "ffff:", "protocol", "all",
       "prio", "1", "u32", "match", "u32", "0", "0",
       "action", "mirred", "egress", "redirect", "dev", "lo")  # fmt: skip
    path = f"/run/netns/{other}"
    undo = IfaceUndo(
        iface="eth0",
        iface_index=link_index(other, "eth0"),
        tap=target,
        tap_index=link_index(other, target) if by_index else None,
        ingress=True,
        addresses=(AddressRecord(Address("10.66.0.1", 24)),),
    )
    return other, WiredNetwork(path, netns_id(path), (), (undo,), owner="1:1")


@pytest.mark.parametrize(
    ("target", "by_index"),
    [("eth0", True), ("eth0", False), ("d0", True), ("tapother", True), ("tapother", False)],
)
def test_a_tampered_record_naming_foreign_links_touches_nothing(
    lab: Lab, target: str, by_index: bool
) -> None:
    other, record = foreign_record(lab, target, by_index=by_index)
    before = snapshot(other)
    with pytest.raises(RunncError) as err:
        unwire(record)
    line = err.value.line()
    assert "\n" not in line and "left it and eth0 alone" in line, line
    assert snapshot(other) == before


def test_a_record_whose_namespace_id_does_not_match_is_a_no_op(lab: Lab) -> None:
    other, record = foreign_record(lab, "eth0")
    before = snapshot(other)
    unwire(WiredNetwork(record.netns, "1:1", (), record.undo))  # that namespace is not ours
    assert snapshot(other) == before


# ---------------------------------------------------------------------------- through the CLI


def create_stopped_at(rt: Runtime, lab: Lab, cid: str, step: int) -> int:
    """`create` whose init stops itself at wiring checkpoint STEP; kill -9 both; the init pid."""
    bundle = net_bundle(rt, lab, netns=lab.path)
    with open(rt.tmp / f"{cid}.out", "w") as out:
        create = subprocess.Popen(
            [*rt.base, "create", "--bundle", str(bundle), cid],
            stdout=out,
            stderr=out,
            env={**os.environ, CRASH_AT_ENV: f"{step}:stop"},
        )
    try:
        wait_for(lambda: init_pid(rt, cid) > 0, timeout=20, what="the init")
        init = init_pid(rt, cid)
        wait_for(lambda: proc_state(init) == "T", timeout=20, what=f"the init at step {step}")
    finally:
        create.kill()
        create.wait(10)
    os.kill(init, signal.SIGKILL)
    return init


def init_pid(rt: Runtime, cid: str) -> int:
    try:
        return int(json.loads((rt.root / cid / "state.json").read_text()).get("pid") or 0)
    except (OSError, ValueError):  # not written yet, or being replaced
        return 0


def proc_state(pid: int) -> str:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return "gone"
    return data[data.rindex(b")") + 2 :].split()[0].decode()


def warnings(rt: Runtime) -> list[str]:
    return [str(e["msg"]) for e in rt.log_entries() if e["level"].startswith("warn")]


@pytest.mark.parametrize("step", [1, 2, 3, 4])
def test_create_killed_at_each_wiring_step_then_delete_force(
    rt: Runtime, lab_cmdline: Lab, step: int
) -> None:
    lab = lab_cmdline
    before = lab.state()
    cid = rt.new_id(f"k9s{step}")
    init = create_stopped_at(rt, lab, cid, step)
    done = rt("delete", "--force", cid)
    assert done.returncode == 0, done.stderr
    assert_gone(rt, cid, init)
    assert lab.state() == before
    assert not [w for w in warnings(rt) if "wiring" in w]


def test_a_new_create_repairs_a_dead_creates_half_wiring(rt: Runtime, lab_cmdline: Lab) -> None:
    lab = lab_cmdline
    before = lab.state()
    dead = rt.new_id("dead")
    create_stopped_at(rt, lab, dead, 3)  # tap and filters there, addresses about to go
    assert "tapeth0" in lab.state()["links"]  # type: ignore[operator]

    cid = rt.new_id("next")
    pid, _ = rt.created(cid, net_bundle(rt, lab, netns=lab.path))
    # Repaired, so the dead one's delete has nothing left to undo.
    assert store.load(rt.root / dead).wired is None
    stop_and_delete(rt, cid, pid)
    assert lab.state() == before
    done = rt("delete", "--force", dead)
    assert done.returncode == 0, done.stderr
    assert lab.state() == before
    assert not warnings(rt)


def test_a_live_containers_wiring_is_not_repaired_away(rt: Runtime, lab_cmdline: Lab) -> None:
    """A second create in a namespace a live container wired fails (here: eth0 has no address
    left to give) and leaves the first container's taps, filters and record alone."""
    lab = lab_cmdline
    before = lab.state()
    first = rt.new_id("live")
    pid, _ = rt.created(first, net_bundle(rt, lab, netns=lab.path))
    wired = lab.state()
    second = rt.new_id("clash")
    done, _ = rt.create(second, net_bundle(rt, lab, netns=lab.path))
    assert done.returncode != 0
    assert "eth0 has no IP address" in test_lifecycle.last_error(rt)
    assert lab.state() == wired
    assert store.load(rt.root / first).wired is not None
    stop_and_delete(rt, first, pid)
    assert lab.state() == before


def test_delete_of_a_tampered_net_json_warns_once_and_touches_nothing(
    rt: Runtime, lab_cmdline: Lab
) -> None:
    lab = lab_cmdline
    cid = rt.new_id("tamper")
    pid, _ = rt.created(cid, net_bundle(rt, lab, netns=lab.path))
    other, record = foreign_record(lab, "eth0")
    net_json = rt.root / cid / "net.json"
    data = store.load(rt.root / cid).to_dict()
    data["wired"] = record.to_dict()
    net_json.write_text(json.dumps(data))
    before = snapshot(other)
    assert rt("kill", cid, "KILL").returncode == 0
    test_lifecycle.wait_exit(pid)
    done = rt("delete", cid)
    assert done.returncode == 0, done.stderr
    assert_gone(rt, cid)
    assert snapshot(other) == before
    (warning,) = [w for w in warnings(rt) if cid in w]
    assert "left it and eth0 alone" in warning and "\n" not in warning
