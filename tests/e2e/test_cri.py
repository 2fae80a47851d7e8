"""The Kubernetes node path: containerd's CRI with the runtime handler `runnc-py`.

What kubelet does for a pod with `runtimeClassName: runnc-py`, through a minimal CRI v1 client
(cri_client.py): RunPodSandbox with runtime_handler `runnc-py` (a host-network pod; its pause
container is an ordinary program, which runnc-py hands to runc), CreateContainer and
StartContainer of our hello image in that pod, its log and exit code from the CRI, then the
teardown, after which nothing of the pod is left: no CRI objects, no containerd tasks, no
runtime state, no processes.

The private containerd (conftest.py) got the handler from `runnc-py install --containerd`
and RUNNC_PY_DELEGATE=/usr/sbin/runc in its environment. The pause image is a static C program
built here; no registry is reachable.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DELEGATE, NAME, PAUSE_IMAGE, Containerd, debugfs_cat, run
from tests.e2e.images import pause_binary, plain_archive, unikernel_image

pytestmark = [pytest.mark.e2e, pytest.mark.root]

grpc = pytest.importorskip("grpc", reason="grpcio missing: pip install -e .[test]")
pytest.importorskip("grpc_tools", reason="grpcio-tools missing: pip install -e .[test]")

from tests.e2e.cri_client import Cri  # noqa: E402

K8S_NAMESPACE = "k8s.io"  # containerd namespace of CRI objects
SHIM_ROOT = Path("/run/containerd/runc") / K8S_NAMESPACE  # the runc v2 shim's --root
EXIT_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def cri(containerd: Containerd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cri]:
    client = Cri(containerd.address, tmp_path_factory.mktemp("cri-stubs"))
    version = client.call("Version", client.pb.VersionRequest(version="v1"))
    assert version.runtime_name == "containerd"
    yield client
    client.close()


def ctr_import(containerd: Containerd, archive: Path) -> None:
    done = containerd.ctr("--namespace", K8S_NAMESPACE, "images", "import", str(archive))
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def images(
    containerd: Containerd, guests: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The pause image containerd's config names, and our hello image (its name), in CRI's
    namespace. (test_cri_settings.py reuses it.)"""
    work = tmp_path_factory.mktemp("cri-images")
    hello = f"docker.io/runnc-py-e2e/hello:{uuid.uuid4().hex[:12]}"
    ctr_import(containerd, plain_archive({"pause": pause_binary(work)}, ["/pause"], PAUSE_IMAGE,
                                         work / "pause.tar"))  # fmt: skip
    ctr_import(containerd, unikernel_image(guests / "hello.spt", hello, work / "hello.tar"))
    yield hello
    for name in (hello, PAUSE_IMAGE):
        containerd.ctr("--namespace", K8S_NAMESPACE, "images", "rm", name)


@pytest.fixture(scope="module")
def lkl_image(
    containerd: Containerd, guests: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Our LKL-shaped guest (block device `rootfs`) as an image in CRI's namespace."""
    name = f"docker.io/runnc-py-e2e/rootfs:{uuid.uuid4().hex[:12]}"
    work = tmp_path_factory.mktemp("cri-lkl")
    ctr_import(containerd, unikernel_image(guests / "rootfs.spt", name, work / "rootfs.tar"))
    yield name
    containerd.ctr("--namespace", K8S_NAMESPACE, "images", "rm", name)


@pytest.fixture
def pod(cri: Cri, images: str, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A host-network pod with runtime handler runnc-py: (its id, its config); torn down
    (stopped, removed) afterwards, as kubelet does."""
    config = pod_config(cri, tmp_path, uuid.uuid4().hex[:10])
    request = cri.pb.RunPodSandboxRequest(config=config, runtime_handler=NAME)
    pod_id = cri.call("RunPodSandbox", request).pod_sandbox_id
    try:
        yield pod_id, config
    finally:
        cri.call("StopPodSandbox", cri.pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        cri.call("RemovePodSandbox", cri.pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


def create_container(cri: Cri, pod: tuple[str, Any], name: str, image: str, args: list[str]) -> str:
    pb = cri.pb
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name),
        image=pb.ImageSpec(image=image),
        args=args,
        log_path=f"{name}.log",
    )
    request = pb.CreateContainerRequest(pod_sandbox_id=pod[0], config=config, sandbox_config=pod[1])
    container = cri.call("CreateContainer", request).container_id
    cri.call("StartContainer", pb.StartContainerRequest(container_id=container))
    return str(container)


def pod_config(cri: Cri, logs: Path, label: str) -> Any:
    pb = cri.pb
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=f"uk-{label}", uid=label, namespace="default"),
        log_directory=str(logs),
        labels={"runnc-py-e2e": label},
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE)
            )
        ),
    )


def wait_exited(cri: Cri, container: str) -> Any:
    deadline = time.monotonic() + EXIT_TIMEOUT
    while True:
        status = cri.call("ContainerStatus", cri.pb.ContainerStatusRequest(container_id=container))
        if status.status.state == cri.pb.CONTAINER_EXITED:
            return status.status
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


def cri_log_lines(path: Path) -> list[str]:
    """The messages of a CRI log file (`TIME STREAM TAG MESSAGE` per line)."""
    return [line.split(" ", 3)[3] for line in path.read_text().splitlines()]


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(int(entry))
    return found


def test_pod_with_runtime_class_runs_our_image(
    cri: Cri, images: str, containerd: Containerd, tmp_path: Path
) -> None:
    pb = cri.pb
    config = pod_config(cri, tmp_path, uuid.uuid4().hex[:10])
    pod = cri.call(
        "RunPodSandbox", pb.RunPodSandboxRequest(config=config, runtime_handler=NAME)
    ).pod_sandbox_id
    try:
        pods = cri.call("ListPodSandbox", pb.ListPodSandboxRequest()).items
        assert [p.runtime_handler for p in pods if p.id == pod] == [NAME]
        # The pause container went through runnc-py to runc (its state is in our .delegate).
        paused = run([DELEGATE, "--root", str(SHIM_ROOT / ".delegate"), "state", pod])
        assert paused.returncode == 0, paused.stderr
        assert json.loads(paused.stdout)["status"] == "running"

        container = create_container(
            cri, (pod, config), "hello", images, ["from", "kubernetes", "exit=3"]
        )
        status = wait_exited(cri, container)
        assert status.exit_code == 3, status
        lines = cri_log_lines(tmp_path / "hello.log")
        assert "Hello, World" in lines
        assert "Command line is: 'from kubernetes exit=3'" in lines
        cri.call("RemoveContainer", pb.RemoveContainerRequest(container_id=container))
    finally:
        cri.call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod))
        cri.call("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod))

    # Nothing left: CRI objects, containerd tasks and containers, runtime state, processes.
    assert pod not in [p.id for p in cri.call("ListPodSandbox", pb.ListPodSandboxRequest()).items]
    listed = cri.call("ListContainers", pb.ListContainersRequest()).containers
    assert container not in [c.id for c in listed]
    ctr = ["ctr", "--address", containerd.address, "--namespace", K8S_NAMESPACE]
    assert pod not in run([*ctr, "tasks", "ls", "-q"]).stdout.split()
    assert container not in run([*ctr, "containers", "ls", "-q"]).stdout.split()
    assert not (SHIM_ROOT / container).exists()
    assert not (SHIM_ROOT / ".delegate" / pod).exists()
    assert processes_mentioning(pod) == []
    assert processes_mentioning(container) == []


def test_lkl_container_in_a_pod_gets_the_pods_files(
    cri: Cri, lkl_image: str, containerd: Containerd, pod: tuple[str, Any], tmp_path: Path
) -> None:
    """An LKL-shaped guest in a pod: its ext4 copy holds the /etc/hosts, /etc/hostname and
    /etc/resolv.conf containerd bind-mounts into the pod's containers."""
    pb = cri.pb
    container = create_container(cri, pod, "lkl", lkl_image, ["sleep=60"])
    try:
        bundle = containerd.state / "io.containerd.runtime.v2.task" / K8S_NAMESPACE / container
        mounts = json.loads((bundle / "config.json").read_text())["mounts"]
        sources = {m["destination"]: m["source"] for m in mounts if m.get("type") == "bind"}
        copy = Path(json.loads((SHIM_ROOT / container / "state.json").read_text())["rootfsImage"])
        for path in ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf"):
            assert debugfs_cat(copy, path) == Path(sources[path]).read_text(), path
        assert "rootfs: ext4 ok" in cri_log_lines(tmp_path / "lkl.log")
    finally:
        cri.call("StopContainer", pb.StopContainerRequest(container_id=container, timeout=10))
    assert wait_exited(cri, container).exit_code == 143  # SIGTERM, within the grace period
    assert not copy.exists()
    cri.call("RemoveContainer", pb.RemoveContainerRequest(container_id=container))
