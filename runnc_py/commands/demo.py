"""`runnc-py demo`: boot the bundled hello unikernel and show what happened."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import click

from runnc_py.errors import RunncError
from runnc_py.paths import runnc_command

GUESTS = Path(__file__).resolve().parent.parent / "guests"


@click.command()
@click.option("--guest", default="hello", show_default=True, help="Bundled guest to boot.")
def demo(guest: str) -> None:
    """Boot a bundled demo unikernel under spt and explain the result."""
    from runnc_py.unikernel.elf import load_unikernel

    path = GUESTS / f"{guest}.spt"
    if not path.exists():
        raise RunncError(f"{path} not found; run `python3 build.py setup` first", where="demo")
    image = load_unikernel(path)
    click.echo(f"unikernel   {path}")
    click.echo(
        f"built for   solo5 {image.target.name.lower()}, ABI version {image.abi_version}, "
        f"{len(image.segments)} segments, {len(image.manifest.devices())} devices"
    )
    click.echo("host view   a plain process: guest memory + one trampoline page, behind a")
    click.echo("            seccomp filter of ~7 syscalls (see `runnc-py policy show spt`)")
    argv = [*runnc_command(), "exec", "--mem", "16", str(path), "--", "hello", "from", "runnc-py"]
    click.echo(f"running     {' '.join(argv)}")
    click.echo("---- guest output ----")
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    elapsed = (time.perf_counter() - start) * 1000
    click.echo(proc.stdout.decode(errors="replace"), nl=False)
    click.echo("----------------------")
    click.echo(f"exit status {proc.returncode} after {elapsed:.1f} ms (whole CLI, Python included)")
    if proc.returncode != 0:
        raise RunncError(f"the demo guest exited with status {proc.returncode}", where="demo")
    _show_live_guest(GUESTS / "time.spt")


def _show_live_guest(path: Path) -> None:
    """Boot a sleeping guest and read what the kernel says about it, not what we promise."""
    if not path.exists():
        return
    argv = [*runnc_command(), "exec", "--mem", "16", str(path), "sleep=2"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "sleeping": past the filter, running guest code
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        )
        maps = Path(f"/proc/{proc.pid}/maps").read_text().splitlines()
        fds = sorted(Path(f"/proc/{proc.pid}/fd").iterdir(), key=lambda p: int(p.name))
        click.echo(f"\nlive guest  {path.name} (pid {proc.pid}), as /proc shows it:")
        click.echo(f"  Seccomp     {status['Seccomp'].strip()} (2 = filter installed)")
        click.echo(f"  NoNewPrivs  {status['NoNewPrivs'].strip()}")
        click.echo(f"  VmRSS       {status['VmRSS'].strip()} (Python's memory was unmapped)")
        click.echo(f"  mappings    {len(maps)}: guest memory split by segment + trampoline")
        targets = ", ".join(f"{fd.name}->{os.readlink(fd)}" for fd in fds)
        click.echo(f"  open fds    {targets}")
    finally:
        proc.kill()
        proc.wait()
