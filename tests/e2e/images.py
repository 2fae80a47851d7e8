"""Images for the engine tests, built locally (no registry is reachable).

`unikernel_image` uses `runnc-py image build` (docker-archive: what `docker load`, `podman load`
and `ctr images import` all take). `plain_archive` writes a docker-archive by hand for what is
not a unikernel image: the pause container of the Kubernetes test (a static C program).
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.conftest import runnc_binary


def unikernel_image(
    guest: Path, tag: str, out: Path, *, rootfs: Path | None = None, extra: Sequence[str] = ()
) -> Path:
    """OUT: a docker-archive of GUEST tagged TAG, made by `runnc-py image build`."""
    cmd = [*runnc_binary(), "image", "build", str(guest), "-t", tag]
    cmd += ["--format", "docker-archive", "-o", str(out), *extra]
    if rootfs is not None:
        cmd += ["--rootfs", str(rootfs)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return out


def _layer(files: Mapping[str, Path]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in sorted(files.items()):
            info = tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            with open(path, "rb") as f:
                tar.addfile(info, f)
    return buf.getvalue()


def plain_archive(
    files: Mapping[str, Path], entrypoint: Sequence[str], tag: str, out: Path
) -> Path:
    """OUT: a one-layer docker-archive holding FILES (name in image -> host file)."""
    layer = _layer(files)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": list(entrypoint)},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [tag], "Layers": ["layer.tar"]}]
    ).encode()
    with tarfile.open(out, "w") as tar:
        for name, data in (
            ("layer.tar", layer),
            (config_name, config),
            ("manifest.json", manifest),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def busybox_archive(tag: str, out: Path) -> Path:
    """An ordinary Linux image: Debian's static busybox as /bin/busybox (no entrypoint)."""
    return plain_archive({"bin/busybox": Path("/usr/bin/busybox")}, [], tag, out)


def pause_binary(workdir: Path) -> Path:
    """A static program that waits for a signal and exits 0: the pod's pause container."""
    source = workdir / "pause.c"
    source.write_text(
        "#include <signal.h>\n#include <unistd.h>\n"
        "static void done(int sig) { (void)sig; _exit(0); }\n"
        "int main(void) {\n"
        "    signal(SIGTERM, done); signal(SIGINT, done);\n"
        "    for (;;) pause();\n"
        "}\n"
    )
    binary = workdir / "pause"
    done = subprocess.run(
        ["gcc", "-static", "-O2", "-o", str(binary), str(source)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return binary
