"""install/uninstall's pure cores (one per engine file) and the file shell's round trip."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from runnc_py.engines import Registration, containerd, docker, files, podman
from runnc_py.engines.kubernetes import runtime_class
from runnc_py.errors import RunncError
from tests.conftest import runnc_binary

REG = Registration(nofile_hard=20000, nproc_hard=96363)
ROOMY = Registration(nofile_hard=1 << 20, nproc_hard=1 << 22)  # podman's defaults fit

DAEMON_JSONS = [
    None,
    "",
    '{"log-level": "warn"}',
    '{\n    "runtimes": {"runc2": {"path": "/usr/bin/runc"}},\n    "debug": true\n}\n',
    '{"runtimes": {}}\n',
]
CONTAINERS_CONFS = [
    None,
    "",
    '# site settings\n[engine]\n# keep me\ncgroup_manager = "cgroupfs"\n\n'
    '[network]\nnetwork_backend = "netavark"\n',
    '[containers]\ndefault_ulimits = [\n  "core=0:0", # no cores\n]\n',
    '[containers]\ndefault_ulimits = ["nofile=4096:4096"]\n[engine.runtimes]\nkata = ["/k"]\n',
]
CONFIG_TOMLS = [
    None,
    'version = 2\n\n[plugins]\n  [plugins."io.containerd.grpc.v1.cri"]\n'
    '    [plugins."io.containerd.grpc.v1.cri".cni]\n      bin_dir = "/usr/lib/cni"\n'
    '  [plugins."io.containerd.internal.v1.opt"]\n    path = "/var/lib/containerd/opt"\n',
    '# v1 layout\n[plugins.cri.containerd]\n  snapshotter = "overlayfs" # comment\n',
    'version = 3\n[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]\n'
    'runtime_type = "io.containerd.runc.v2"\n',
]
CASES = (
    [(docker.CONFIG, t) for t in DAEMON_JSONS]
    + [(podman.CONFIG, t) for t in CONTAINERS_CONFS]
    + [(containerd.CONFIG, t) for t in CONFIG_TOMLS]
)


def _id(case: object) -> str:
    return repr(case)[:40]


@pytest.mark.parametrize(("config", "text"), CASES, ids=_id)
def test_add_is_idempotent_and_remove_undoes_it(
    config: files.EngineConfig, text: str | None
) -> None:
    added = config.add(text, REG)
    assert added != text
    assert config.add(added, REG) == added
    removed = config.remove(added, text or "", REG)
    if text:
        assert config.same(removed, text)
    else:
        assert config.bare(removed)


@pytest.mark.parametrize(("config", "text"), CASES, ids=_id)
def test_file_round_trip_is_byte_identical(
    config: files.EngineConfig, text: str | None, tmp_path: Path
) -> None:
    path = tmp_path / "conf"
    if text is not None:
        path.write_text(text)
    install = files.plan_install(config, str(path), REG)
    files.apply(install)
    assert path.read_text() == install.new
    again = files.plan_install(config, str(path), REG)
    assert not again.changes and not again.backup  # idempotent, backup made once
    # uninstall knows nothing of install's options (the CLI passes only the name): the
    # record's digest tells it the file is untouched since.
    files.apply(files.plan_uninstall(config, str(path), Registration()))
    if text is None:
        assert not path.exists()
    else:
        assert path.read_bytes() == text.encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if text is None else ["conf"])


def test_round_trip_with_other_install_options(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"debug": true}')
    custom = Registration(binary="/opt/runnc-py", delegate="runc")
    files.apply(files.plan_install(docker.CONFIG, str(path), REG))
    files.apply(files.plan_install(docker.CONFIG, str(path), custom))  # changed again
    assert json.loads(path.read_text())["runtimes"]["runnc-py"]["path"] == "/opt/runnc-py"
    files.apply(files.plan_uninstall(docker.CONFIG, str(path), Registration()))
    assert path.read_text() == '{"debug": true}'  # the first backup, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == ["daemon.json"]


def test_docker_merges_keeps_order_and_indent() -> None:
    text = '{\n    "debug": true,\n    "runtimes": {"x": {"path": "/x"}},\n    "z": 1\n}\n'
    added = docker.CONFIG.add(text, Registration(delegate="runc"))
    data = json.loads(added)
    assert list(data) == ["debug", "runtimes", "z"]
    assert data["runtimes"] == {
        "x": {"path": "/x"},
        "runnc-py": {"path": "/usr/local/bin/runnc-py", "runtimeArgs": ["--delegate", "runc"]},
    }
    assert '\n    "debug": true' in added


def test_containerd_v2_handler_is_the_cri_layout() -> None:
    data = tomllib.loads(containerd.CONFIG.add(CONFIG_TOMLS[1], REG))
    handler = data["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["runnc-py"]
    assert handler == {
        "runtime_type": "io.containerd.runc.v2",
        "pod_annotations": ["org.runnc-py.*"],
        "container_annotations": ["org.runnc-py.*"],
        "options": {"BinaryName": "/usr/local/bin/runnc-py"},
    }
    assert data["plugins"]["io.containerd.grpc.v1.cri"]["cni"]["bin_dir"] == "/usr/lib/cni"
    v1 = tomllib.loads(containerd.CONFIG.add(CONFIG_TOMLS[2], REG))
    assert v1["plugins"]["cri"]["containerd"]["runtimes"]["runnc-py"]["options"]
    assert tomllib.loads(containerd.CONFIG.add(None, REG))["version"] == 2


def test_comments_survive() -> None:
    added = podman.CONFIG.add(CONTAINERS_CONFS[2], REG)
    assert "# site settings\n[engine]\n# keep me\n" in added
    assert "# comment" in containerd.CONFIG.add(CONFIG_TOMLS[2], REG)


def test_podman_ulimits_only_where_the_host_is_short() -> None:
    data = tomllib.loads(podman.CONFIG.add(None, REG))
    assert data["containers"]["default_ulimits"] == ["nofile=20000:20000", "nproc=96363:96363"]
    assert data["engine"]["runtimes"]["runnc-py"] == ["/usr/local/bin/runnc-py"]
    assert "containers" not in tomllib.loads(podman.CONFIG.add(None, ROOMY))
    # A limit the file already sets is the admin's: kept, not duplicated.
    mixed = tomllib.loads(podman.CONFIG.add(CONTAINERS_CONFS[4], REG))
    assert mixed["containers"]["default_ulimits"] == ["nofile=4096:4096", "nproc=96363:96363"]
    assert mixed["engine"]["runtimes"]["kata"] == ["/k"]


def test_uninstall_after_an_edit_keeps_the_edit(tmp_path: Path) -> None:
    path = tmp_path / "containers.conf"
    path.write_text(CONTAINERS_CONFS[2])
    files.apply(files.plan_install(podman.CONFIG, str(path), REG))
    path.write_text(path.read_text() + "\n[machine]\ncpus = 2 # added later\n")
    files.apply(files.plan_uninstall(podman.CONFIG, str(path), REG))
    after = path.read_text()
    assert "cpus = 2 # added later" in after
    assert "runnc-py" not in after and "nofile" not in after
    assert tomllib.loads(after)["engine"] == {"cgroup_manager": "cgroupfs"}


def test_uninstall_without_a_record_removes_only_the_runtime(tmp_path: Path) -> None:
    path = tmp_path / "containers.conf"
    path.write_text(podman.CONFIG.add(None, REG))  # registered by hand: no backup
    files.apply(files.plan_uninstall(podman.CONFIG, str(path), REG))
    data = tomllib.loads(path.read_text())
    assert data["containers"]["default_ulimits"]  # not known to be ours: left
    assert "runnc-py" not in data["engine"]["runtimes"]


@pytest.mark.parametrize(
    ("config", "text", "message"),
    [
        (docker.CONFIG, '{"debug": tru', "not valid JSON (line 1"),
        (docker.CONFIG, "[1]", "must hold a JSON object"),
        (docker.CONFIG, '{"runtimes": 3}', "runtimes: must be a JSON object"),
        (podman.CONFIG, "[engine\n", "not valid TOML"),
        (podman.CONFIG, '[containers]\ndefault_ulimits = "x"\n', "must be an array"),
        (containerd.CONFIG, "version = 7\n", "unknown config version 7"),
    ],
)
def test_bad_files_are_one_clear_line(config: files.EngineConfig, text: str, message: str) -> None:
    with pytest.raises(RunncError) as err:
        config.add(text, REG)
    assert message in err.value.line()
    assert config.path in err.value.line()
    assert "\n" not in err.value.line()


def test_runtime_class() -> None:
    text = runtime_class(Registration())
    assert "kind: RuntimeClass" in text and "handler: runnc-py" in text


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*runnc_binary(), *args], capture_output=True, text=True, timeout=60)


def test_cli_dry_run_round_trip_and_bad_file(tmp_path: Path) -> None:
    daemon = tmp_path / "daemon.json"
    daemon.write_text('{"debug": true}')
    conf = ["--docker", "--podman", f"--config=docker={daemon}",
            f"--config=podman={tmp_path / 'containers.conf'}"]  # fmt: skip
    dry = _cli("install", "--dry-run", *conf)
    assert dry.returncode == 0, dry.stderr
    assert f"+++ {daemon}" in dry.stdout and '+    "runnc-py": {' in dry.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["daemon.json"]
    assert _cli("install", *conf).returncode == 0
    assert "runnc-py" in daemon.read_text()
    done = _cli("uninstall", *conf)
    assert done.returncode == 0, done.stderr
    assert daemon.read_text() == '{"debug": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["daemon.json"]
    daemon.write_text("{oops")
    bad = _cli("install", "--docker", f"--config=docker={daemon}")
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0 and f"{daemon}: not valid JSON" in bad.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["daemon.json"]


def test_cli_kubernetes_prints_only_the_manifest() -> None:
    done = _cli("install", "--kubernetes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("apiVersion: node.k8s.io/v1\nkind: RuntimeClass\n")


@pytest.mark.parametrize(
    ("daemon", "systemd", "pid", "command", "signal_pid", "hint"),
    [
        ("dockerd", True, 10, ("systemctl", "reload", "docker"), None, "systemctl reload docker"),
        ("dockerd", False, 10, (), 10, "kill -HUP 10"),
        ("dockerd", False, None, (), None, "not running"),
        ("containerd", True, 7, ("systemctl", "restart", "containerd"), None, "restart"),
        ("containerd", False, 7, (), None, "restart containerd (pid 7, not under systemd)"),
    ],
)
def test_reload_plans(
    daemon: str,
    systemd: bool,
    pid: int | None,
    command: tuple[str, ...],
    signal_pid: int | None,
    hint: str,
) -> None:
    from runnc_py.engines.reload import plan_reload

    action = plan_reload(daemon, systemd=systemd, pid=pid)
    assert action is not None
    assert (action.command, action.pid) == (command, signal_pid)
    assert hint in action.hint
    assert plan_reload(None, systemd=systemd, pid=pid) is None  # podman: nothing to reload


def test_cli_delegate_becomes_an_absolute_path(tmp_path: Path) -> None:
    import shutil

    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc not installed")
    daemon = tmp_path / "daemon.json"
    conf = ["--docker", f"--config=docker={daemon}", "--dry-run"]
    done = _cli("install", *conf, "--delegate", "runc")
    assert done.returncode == 0, done.stderr
    assert f'"{runc}"' in done.stdout  # runtimeArgs: ["--delegate", "/usr/sbin/runc"]
    bad = _cli("install", *conf, "--delegate", "no-such-runtime-here")
    assert bad.returncode == 1
    assert "--delegate no-such-runtime-here: not an executable file" in bad.stderr
    assert not daemon.exists()


@pytest.mark.parametrize(("config", "text"), CASES, ids=_id)
def test_two_names_in_one_file(
    config: files.EngineConfig, text: str | None, tmp_path: Path
) -> None:
    """`install --name` twice: uninstalling one keeps the other (and what they share, such as
    podman's ulimits); uninstalling the last gives the original bytes back."""
    path = tmp_path / "conf"
    if text is not None:
        path.write_text(text)
    other = Registration(name="runnc-py-b", nofile_hard=20000, nproc_hard=96363)
    files.apply(files.plan_install(config, str(path), REG))
    files.apply(files.plan_install(config, str(path), other))
    both = path.read_text()
    files.apply(files.plan_uninstall(config, str(path), Registration()))
    left = path.read_text()
    assert "runnc-py-b" in left and left != both
    assert config.add(left, other) == left  # still fully registered, ulimits included
    files.apply(files.plan_uninstall(config, str(path), Registration(name="runnc-py-b")))
    if text is None:
        assert not path.exists()
    else:
        assert path.read_bytes() == text.encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if text is None else ["conf"])
