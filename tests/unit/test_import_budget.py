"""The boot path's import budget, checked by structure (what is imported), never by time.

`runnc-py exec` and `create` start a fresh interpreter per call (`python3 -IS`, see
build.py's Python entry), so every module they import is paid for on every call. The heavy
standard modules below cost more than the whole rest of an `exec` (dataclasses pulls in
inspect, ast, dis and tokenize; re compiles its own tables; json imports re), and click and
pyroute2 are worse. Each check runs in a fresh `python -IS` process set up as the entry is,
imports (or runs) the boot path there and lists what got imported. docs/boot-path.md says why.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.unit import elfcraft as ec

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("dataclasses", "typing", "inspect", "re", "enum", "json", "click", "pyroute2")
HEAVY_EXEC = (*HEAVY, "hashlib", "contextlib", "site")
# create also does without `collections` (what `collections.abc` imports: ~1.4 ms) and
# `contextlib` (~1 ms with functools): abstract types only under TYPE_CHECKING, JSON objects
# checked as dicts, try/except for suppress.
HEAVY_CREATE = (*HEAVY, "collections", "contextlib")

# What `runnc-py exec UNIKERNEL` imports, from the CLI's fast path to the launcher.
EXEC_MODULES = (
    "runnc_py.cli",
    "runnc_py.monitor.exec_run",
    "runnc_py.monitor.tender_args",
    "runnc_py.monitor.launch",
    "runnc_py.monitor.devices",
    "runnc_py.monitor.hvt",  # an hvt unikernel's monitor
    "runnc_py.unikernel.cache",
    "runnc_py.unikernel.elf",
    "runnc_py.unikernel.manifest",
    "runnc_py.unikernel.notes",
    "runnc_py.sandbox.facts",
    "runnc_py.sandbox.programs",
    "runnc_py.sandbox.locate",
    "runnc_py.oci.security",
    "runnc_py.cachedir",
    "runnc_py.record",
)

# What `create` imports: reading config.json, planning the guest, its cgroup, namespaces,
# hooks and image settings, and the init it forks.
CREATE_MODULES = (
    "runnc_py.oci.lifecycle",
    "runnc_py.oci.state",
    "runnc_py.oci.fastjson",
    "runnc_py.oci.spec",
    "runnc_py.oci.plan",
    "runnc_py.oci.autodev",
    "runnc_py.oci.security",
    "runnc_py.oci.rootpath",
    "runnc_py.oci.fds",
    "runnc_py.oci.mounts",
    "runnc_py.oci.cgroup_plan",
    "runnc_py.oci.cgroups",
    "runnc_py.oci.namespaces",
    "runnc_py.oci.init",
    "runnc_py.oci.hooks",
    "runnc_py.image.settings",
    "runnc_py.image.readback",
    "runnc_py.net.handover",
    "runnc_py.monitor.launch",
    "runnc_py._launcher",
)


def boot_python(
    code: str, env: dict[str, str] | None = None, wrapper: list[str] | None = None
) -> set[str]:
    """sys.modules after CODE, in `python -IS` with the entry's sys.path (build.py), run
    under WRAPPER (a command such as `unshare --net`) if given."""
    paths = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], str(REPO)]
    program = (
        f"import sys\nsys.path[1:1] = {paths!r}\n{code}\n"
        "print(repr(sorted(sys.modules)), flush=True)\n"
    )
    out = subprocess.run(
        [*(wrapper or []), sys.executable, "-IS", "-c", program],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return set(ast.literal_eval(out.stdout.strip().splitlines()[-1]))


def over_budget(modules: set[str], heavy: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in heavy)


def test_the_interpreter_alone_is_within_budget() -> None:
    """The baseline the other checks rely on: `python -IS` imports none of them itself."""
    assert over_budget(boot_python("pass"), HEAVY_EXEC) == []


def test_exec_modules_import_nothing_heavy() -> None:
    modules = boot_python("\n".join(f"import {m}" for m in EXEC_MODULES))
    assert over_budget(modules, HEAVY_EXEC) == []


def test_exec_boot_path_with_warm_caches_imports_nothing_heavy(tmp_path: Path) -> None:
    """Up to the launcher, as `runnc-py exec --mem=8 K` runs it: the arguments parsed, the
    unikernel's facts and the compiled filter read from the caches, every fd opened, every
    capability dropped (in the child process only)."""
    kernel = ec.Unikernel.solo5().write(tmp_path / "k.spt")
    env = {**os.environ, "RUNNC_PY_CACHE": str(tmp_path / "cache")}
    code = (
        "from runnc_py.monitor.tender_args import parse_exec_args\n"
        "from runnc_py.monitor.launch import prepare\n"
        "import runnc_py.cli, runnc_py.monitor.exec_run, runnc_py.oci.security\n"
        f"prepare(parse_exec_args(['--mem=8', {str(kernel)!r}]).request()).close()\n"
        "runnc_py.oci.security.drop_capabilities()\n"
    )
    cold = boot_python(code, env)
    assert "elftools" in cold, "the first run validates the ELF and fills the caches"
    warm = boot_python(code, env)
    assert "elftools" not in warm and "pyseccomp" not in warm, "the second run hits both caches"
    assert over_budget(warm, HEAVY_EXEC) == []


def test_create_modules_import_nothing_heavy() -> None:
    modules = boot_python("\n".join(f"import {m}" for m in CREATE_MODULES))
    assert over_budget(modules, HEAVY_CREATE) == []


def test_create_plans_a_bundle_within_budget(tmp_path: Path) -> None:
    """create's whole step 1 (lifecycle.plan_create), as an engine's create runs it: config.json
    read, the unikernel's facts, mounts, cgroup, namespaces, hooks and process security
    planned, the launch request checked; then the modules of the later steps imported (the
    state file, the init it forks, cgroups, hooks, image settings)."""
    rootfs = tmp_path / "bundle" / "rootfs"
    rootfs.mkdir(parents=True)
    ec.Unikernel.solo5().write(rootfs / "k.spt")
    config = {
        "ociVersion": "1.0.2",
        "process": {"args": ["/k.spt"], "user": {"uid": 0, "gid": 0}, "cwd": "/"},
        "root": {"path": "rootfs"},
        "hostname": "budget",
        "hooks": {"poststop": [{"path": "/bin/true", "args": ["true"], "timeout": 5}]},
        "linux": {
            "cgroupsPath": "/docker/budget",
            "namespaces": [{"type": "network"}, {"type": "uts"}, {"type": "mount"}],
            "resources": {
                "memory": {"limit": 64 << 20},
                "cpu": {"shares": 512, "cpus": "0-1"},
                "pids": {"limit": 100},
                "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
            },
        },
    }
    (tmp_path / "bundle" / "config.json").write_text(json.dumps(config))
    state_root = tmp_path / "state"
    state_root.mkdir(mode=0o700)
    env = {**os.environ, "RUNNC_PY_CACHE": str(tmp_path / "cache")}
    code = (
        "from runnc_py.globals import Globals\n"
        "from runnc_py.oci.lifecycle import plan_create\n"
        "from runnc_py.oci.state import Store\n"
        f"g = Globals(root={str(state_root)!r})\n"
        f"job = plan_create(g, Store(g.root), 'budget', {str(tmp_path / 'bundle')!r},"
        " None, False, 0)\n"
        "assert job.cg_plan.path == '/docker/budget', job.cg_plan\n"
        "assert [a.type for a in job.ns_actions] == ['network', 'uts'], job.ns_actions\n"
        "job.plan.close()\n"
        "import runnc_py.oci.init, runnc_py.oci.cgroups, runnc_py.oci.hooks\n"
        "import runnc_py.image.readback, runnc_py.net.handover\n"
    )
    boot_python(code, env)  # fills the image cache
    assert over_budget(boot_python(code, env), HEAVY_CREATE) == []


# The init's networking (net/handover.py's `hand_over`, docs/boot-path.md): create's budget,
# and `socket` (~6 ms with its enum), `threading` (~3 ms) and `ctypes` (~2 ms) imported only
# where a call needs them (another namespace, an interpreter without os.setns); `ipaddress`
# (~2 ms with functools) only for what inet_pton cannot canonicalise like it (net/facts.py).
HEAVY_NET = (*HEAVY_CREATE, "socket", "threading", "ctypes", "functools", "ipaddress")

NET_FACTS = (
    "from runnc_py.net.facts import Address, DnsFacts, InterfaceFacts, NetworkFacts, Route\n"
    "eth0 = InterfaceFacts('eth0', '02:42:ac:11:00:02', 1500, (Address('172.17.0.2', 16),),"
    " (Address('fd00::2', 64),), (Route('0.0.0.0', 0, '172.17.0.1', 'eth0', metric=5),))\n"
    "facts = NetworkFacts((eth0,), DnsFacts(('10.0.0.53',), ('example.org',)))\n"
)


def test_the_networking_path_renders_and_journals_within_budget(tmp_path: Path) -> None:
    """What `hand_over` does besides talking to the kernel, as the init does it: the guest's
    command line and configuration for every kind, resolv.conf read, the net.json journal
    written and read back (repair's path), and every module of the wiring imported."""
    (tmp_path / "resolv.conf").write_text("nameserver 10.0.0.53\nsearch example.org\n")
    code = (
        "from runnc_py.net.handover import hand_over, free_net_devices, has_interfaces\n"
        "import runnc_py.net.wiring, runnc_py.net.unwiring, runnc_py.net.repair\n"
        "from runnc_py.net import store\n"
        "from runnc_py.net.cmdline import GuestLine, guest_words\n"
        "from runnc_py.net.config import CONFIG_KINDS, guest_config\n"
        "from runnc_py.net.read import read_resolv_conf\n"
        "from runnc_py.net.wired import GuestNic, IfaceUndo, WiredNetwork\n"
        f"{NET_FACTS}"
        f"assert read_resolv_conf({str(tmp_path / 'resolv.conf')!r}) == facts.dns\n"
        "for kind in CONFIG_KINDS:\n"
        "    if kind != 'none':\n"
        "        text = guest_config(facts, kind, device_names=['service0'])\n"
        "        assert text, kind\n"
        "    guest_words(kind, GuestLine(args=('a', 'b c')), facts, device_names=['service0'])\n"
        "nic = GuestNic('service0', 'tapeth0', eth0.mac, 1500, 'eth0')\n"
        "wired = WiredNetwork(None, '1:2', (nic,), (IfaceUndo('eth0', tap='tapeth0'),), '1:2')\n"
        f"save = store.journal({str(tmp_path)!r}, facts, 'lkl-json', text)\n"
        "save(wired)\n"
        f"assert store.load({str(tmp_path)!r}) == store.NetRecord(facts, wired, 'lkl-json', text)\n"
    )
    assert over_budget(boot_python(code), HEAVY_NET) == []


def test_hand_over_wires_a_namespace_within_budget(tmp_path: Path) -> None:
    """`hand_over` itself, as create's init calls it, in a network namespace of its own (made
    by `unshare --net`) with a veth pair (addresses on both, the default route on eth0), a
    resolv.conf and a state directory (so the journal and the stale-wiring repair run too);
    then the wiring undone. Needs root (taps, addresses, tc)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: wiring creates taps and moves addresses")
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare(1) and ip(8)")
    (tmp_path / "resolv.conf").write_text("nameserver 10.0.0.53\n")
    state_dir = tmp_path / "state" / "budget"
    state_dir.mkdir(parents=True)
    setup = (
        "ip link set lo up && ip link add eth0 type veth peer name peer0 && ip link set eth0 up"
        " && ip addr add 10.77.0.2/24 dev eth0 && ip route add default via 10.77.0.1"
        " && ip link set peer0 up && ip addr add 10.78.0.2/24 dev peer0"
    )
    code = (
        "import os\n"
        f"assert os.system({setup!r}) == 0\n"
        "from runnc_py.monitor.launch import LaunchRequest\n"
        "from runnc_py.net.handover import hand_over, has_interfaces\n"
        "from runnc_py.net.wiring import unwire\n"
        "assert has_interfaces()\n"
        "handed = hand_over(LaunchRequest('k', args=('a',)), ['service0', 'service1'],"
        " kind='solo5-cmdline',"
        f" resolv_conf={str(tmp_path / 'resolv.conf')!r}, state_dir={str(state_dir)!r})\n"
        "assert sorted(handed.request.nets) == ['service0', 'service1'], handed.request.nets\n"
        "assert handed.record.facts.interfaces[0].ipv4[0].addr == '10.77.0.2'\n"
        "unwire(handed.record.wired)\n"
    )
    modules = boot_python(code, wrapper=["unshare", "--net"])
    assert "runnc_py.net.wiring" in modules
    assert over_budget(modules, HEAVY_NET) == []
