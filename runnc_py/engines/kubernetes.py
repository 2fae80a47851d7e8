"""The Kubernetes RuntimeClass that sends pods to containerd's `runnc-py` CRI handler."""

from __future__ import annotations

from runnc_py.engines import Registration


def runtime_class(reg: Registration) -> str:
    """The manifest to `kubectl apply -f -`; pods then ask for `runtimeClassName: NAME`."""
    return (
        "apiVersion: node.k8s.io/v1\n"
        "kind: RuntimeClass\n"
        "metadata:\n"
        f"  name: {reg.name}\n"
        f"handler: {reg.name}  # containerd's CRI runtime handler (runnc-py install --containerd)\n"
    )
