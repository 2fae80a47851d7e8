"""Docker's default seccomp profile, as Docker really hands it to runc, summarized by
`runnc-py audit profile` and placed in the `audit compare` table.

A tiny wrapper runtime (a shell script registered with `runnc-py install --runtime` under its
own name) copies the bundle's config.json and execs runc, so an ordinary container (Debian's
static busybox, `docker load`ed, no registry) runs unchanged while we keep its linux.seccomp.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tests.e2e.conftest import DAEMON_JSON, DockerEngine, docker
from tests.e2e.images import busybox_archive
from tests.e2e.test_install_docker import cli, docker_knows, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.root]

NAME = "runnc-py-audit-capture"
CONFIG = ("--docker", "--config", f"docker={DAEMON_JSON}", "--name", NAME)
WRAPPER = """#!/bin/sh
# Keep the bundle's config.json for the audit e2e test, then be runc.
prev=""
for arg in "$@"; do
    case "$prev" in --bundle|-b) cp "$arg/config.json" "{capture}/config-$$.json" ;; esac
    case "$arg" in
        --bundle=*) cp "${{arg#--bundle=}}/config.json" "{capture}/config-$$.json" ;;
    esac
    prev="$arg"
done
exec {runc} "$@"
"""


@pytest.fixture
def capture(dockerd: DockerEngine, tmp_path: Path) -> Iterator[Path]:
    """The wrapper registered with `runnc-py install --runtime`, removed byte for byte after."""
    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc not found: run python3 build.py setup (Debian's runc)")
    folder = tmp_path / "capture"
    folder.mkdir()
    script = folder / "capture-runtime"
    script.write_text(WRAPPER.format(capture=folder, runc=runc))
    script.chmod(0o755)
    before = DAEMON_JSON.read_bytes()
    done = cli("install", *CONFIG, "--runtime", str(script), "--reload")
    assert done.returncode == 0, done.stderr
    try:
        wait_until(lambda: docker_knows(NAME), "dockerd to load the wrapper runtime")
        yield folder
    finally:
        undone = cli("uninstall", *CONFIG, "--reload")
        assert undone.returncode == 0, undone.stderr
        assert DAEMON_JSON.read_bytes() == before
        wait_until(lambda: not docker_knows(NAME), "dockerd to forget the wrapper runtime")


def test_docker_default_profile_from_a_real_container(
    capture: Path, tmp_path: Path, runnc: RunCli
) -> None:
    image = f"localhost/runnc-py-e2e/audit-bb:{uuid.uuid4().hex[:12]}"
    archive = busybox_archive(image, tmp_path / "bb.tar")
    assert docker("load", "-i", str(archive)).returncode == 0
    try:
        done = docker("run", "--rm", f"--runtime={NAME}", image, "/bin/busybox", "true")
    finally:
        docker("rmi", "-f", image)
    assert done.returncode == 0, done.stderr
    configs = sorted(capture.glob("config-*.json"))
    assert configs, "the wrapper runtime never saw a create"
    config = json.loads(configs[-1].read_text())
    seccomp = config["linux"]["seccomp"]
    assert seccomp["defaultAction"] == "SCMP_ACT_ERRNO"

    report = runnc("audit", "profile", "--json", str(configs[-1]))
    assert report.returncode == 0, report.stderr
    doc = json.loads(report.stdout)
    native = doc["sections"][0]
    assert native["arch"] == "x86_64" and native["default"] == "errno 1"
    assert doc["arch_checked"] and {s["arch"] for s in doc["sections"]} >= {"x86_64", "x86"}
    reachable, constrained = set(doc["reachable"]), set(doc["constrained"])
    assert {"read", "write", "openat", "execve", "clone", "personality"} <= reachable
    assert {"kexec_load", "init_module", "mount", "bpf"}.isdisjoint(reachable)
    assert {"personality", "clone"} <= constrained  # argument-filtered in Docker's profile
    rules = {r["syscall"]: r for r in native["rules"]}
    assert rules["personality"]["conditions"]

    table = runnc("audit", "compare", "--json", str(configs[-1]))
    assert table.returncode == 0, table.stderr
    rows = {r["subject"]: r for r in json.loads(table.stdout)["rows"]}
    docker_row = rows["Docker default profile"]
    assert docker_row["reachable"] == len(reachable)
    assert (
        rows["spt guest (1 net, 1 block)"]["reachable"]
        < docker_row["reachable"]
        < rows["unconfined process"]["reachable"]
    )


def test_live_filter_of_a_runc_container_agrees_with_its_profile(
    capture: Path, tmp_path: Path, runnc: RunCli
) -> None:
    """The filter runc compiled and installed (read back from the live process) answers like
    the profile Docker handed it, on calls the profile names: the decompiler reads runc's
    programs, not only ours and libseccomp's."""
    image = f"localhost/runnc-py-e2e/audit-bb:{uuid.uuid4().hex[:12]}"
    archive = busybox_archive(image, tmp_path / "bb.tar")
    assert docker("load", "-i", str(archive)).returncode == 0
    name = f"runnc-py-audit-{uuid.uuid4().hex[:8]}"
    try:
        started = docker(
            "run", "-d", "--name", name, f"--runtime={NAME}", image, "/bin/busybox", "sleep", "60"
        )
        assert started.returncode == 0, started.stderr
        pid = docker("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
        config = sorted(capture.glob("config-*.json"))[-1]
        live = runnc("audit", "--json", pid)
        assert live.returncode == 0, live.stderr  # not a Solo5 guest: a report, no verdict
        calls = ["write(1, *, *)", "mount(*, *, *, *, *)", "personality(0)",
                 "personality(4660)", "kexec_load(*, *, *, *)", "ptrace(*, *, *, *)"]  # fmt: skip
        answers = {}
        for subject in (pid, str(config)):
            done = runnc("audit", "check", "--json", subject, *calls)
            assert done.returncode == 0, done.stderr
            answers[subject] = {
                c["call"]: sorted(a["action"] for a in c["answers"])
                for c in json.loads(done.stdout)["calls"]
            }
        assert answers[pid] == answers[str(config)]
        assert answers[pid]["write(1, *, *)"] == ["allow"]
        assert answers[pid]["mount(*, *, *, *, *)"] == ["errno 1"]
        alive = docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip()
        assert alive == "true"  # the audit's ptrace stop did not disturb it
    finally:
        docker("rm", "-f", name)
        docker("rmi", "-f", image)
