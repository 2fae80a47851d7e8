"""A minimal Kubernetes CRI v1 client for the e2e tests: gRPC stubs generated at test time
(grpcio-tools) from cri_v1.proto, the few RuntimeService calls kubelet makes for a pod."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

PROTO = Path(__file__).with_name("cri_v1.proto")


def generate(out: Path) -> tuple[ModuleType, ModuleType]:
    """Compile PROTO into OUT and import the message and service modules."""
    from grpc_tools import protoc

    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO.parent}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(PROTO),
        ]
    )
    assert status == 0, f"protoc failed on {PROTO}"
    sys.path.insert(0, str(out))
    try:
        messages = importlib.import_module("cri_v1_pb2")
        services = importlib.import_module("cri_v1_pb2_grpc")
    finally:
        sys.path.remove(str(out))
    return messages, services


class Cri:
    """RuntimeService over containerd's unix socket: `cri.call("RunPodSandbox", request)`."""

    def __init__(self, address: str, stubs_dir: Path) -> None:
        import grpc

        self.pb, services = generate(stubs_dir)
        self.channel = grpc.insecure_channel(f"unix://{address}")
        self.runtime = services.RuntimeServiceStub(self.channel)

    def call(self, method: str, request: Any, timeout: float = 60) -> Any:
        return getattr(self.runtime, method)(request, timeout=timeout)

    def close(self) -> None:
        self.channel.close()
