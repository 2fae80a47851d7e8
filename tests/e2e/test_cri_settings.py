"""Per-pod settings on the Kubernetes node path: containerd's CRI passes `org.runnc-py.*` pod
and container annotations to the runtime because `install --containerd` lists them in the
handler's `pod_annotations` / `container_annotations` (containerd passes no others).

Reuses the CRI client, fixtures and helpers of test_cri.py (same private containerd).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import NAME

pytestmark = [pytest.mark.e2e, pytest.mark.root]

pytest.importorskip("grpc", reason="grpcio missing: pip install -e .[test]")
pytest.importorskip("grpc_tools", reason="grpcio-tools missing: pip install -e .[test]")

from tests.e2e import test_cri  # noqa: E402
from tests.e2e.cri_client import Cri  # noqa: E402

cri = test_cri.cri
images = test_cri.images


def test_container_annotation_reaches_the_runtime(cri: Cri, images: str, tmp_path: Path) -> None:
    pb = cri.pb
    label = uuid.uuid4().hex[:10]
    config = test_cri.pod_config(cri, tmp_path, label)
    pod = cri.call(
        "RunPodSandbox", pb.RunPodSandboxRequest(config=config, runtime_handler=NAME)
    ).pod_sandbox_id
    try:
        container = cri.call(
            "CreateContainer",
            pb.CreateContainerRequest(
                pod_sandbox_id=pod,
                config=pb.ContainerConfig(
                    metadata=pb.ContainerMetadata(name="hello"),
                    image=pb.ImageSpec(image=images),
                    args=["k8s"],
                    annotations={"org.runnc-py.cmdline": "env", "other.example/x": "y"},
                    log_path="hello.log",
                ),
                sandbox_config=config,
            ),
        ).container_id
        cri.call("StartContainer", pb.StartContainerRequest(container_id=container))
        status = test_cri.wait_exited(cri, container)
        assert status.exit_code == 0, status
        lines = test_cri.cri_log_lines(tmp_path / "hello.log")
        line = next(x for x in lines if x.startswith("Command line is:"))
        # cmdline=env arrived: the environment words (if any), `--`, then the arguments;
        # without it the line would be just 'k8s'.
        assert line.endswith("-- k8s'"), line
        cri.call("RemoveContainer", pb.RemoveContainerRequest(container_id=container))
    finally:
        cri.call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod))
        cri.call("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod))
