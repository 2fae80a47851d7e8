"""Engine benchmark (issue 12): `docker run --rm`, `podman run --rm` and `ctr run --rm` with
runnc-py against runc, run as `python3 bench/lifecycle.py --engines [--runs 20]`.

Measured in this one run, round robin so machine noise hits every runtime alike:
  * the whole `ENGINE run --rm`: runnc-py on our hello.spt image (from `runnc-py image build`)
    against runc on an image holding a static /true; median ms and the ratio to runc;
  * each OCI verb as the engine calls it: both runtimes behind a small timing wrapper (a C
    program compiled here) registered as a runtime of its own (Docker: `runnc-py install
    --docker --name ... --runtime WRAPPER`, the file put back byte for byte at the end;
    podman: `--runtime PATH`; ctr: `--runc-binary PATH`); median ms per verb, calls per run,
    and the ratio to runc.
An engine is skipped when it is absent; dockerd must already run (the bench does not start it;
ctr uses the node's containerd, else dockerd's own) and runnc-py must be registered
(`runnc-py install`) for the plain runs.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

RUNNC = "/usr/local/bin/runnc-py"
VERBS = ("create", "start", "state", "kill", "delete", "features", "pause", "resume", "update")
# The wrapper times one runtime call and appends "VERB MS" to its log; the engine sees the
# runtime's exit status. TARGET and LOG are compiled in: engines give runtimes no arguments of
# our choosing.
WRAPPER_C = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *verb_of(int argc, char **argv)
{
    static const char *with_value[] = { "--root", "--log", "--log-format", "--criu", 0 };
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-')
            return argv[i];
        for (int j = 0; with_value[j]; j++)
            if (strcmp(argv[i], with_value[j]) == 0)
                i++;
    }
    return "?";
}

int main(int argc, char **argv)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid = fork();
    if (pid == 0) {
        argv[0] = TARGET;
        execv(TARGET, argv);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
    int fd = open(LOG, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        dprintf(fd, "%s %.3f\n", verb_of(argc, argv), ms);
        close(fd);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
"""


FRESH_ID = "{id}"  # in a case's argv: a new container ID for every run (ctr wants one)
_ids = itertools.count()


def sh(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = [f"runnc-bench-{os.getpid()}-{next(_ids)}" if a == FRESH_ID else a for a in argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-400:]}")
    return done


def timed(argv: list[str]) -> float:
    start = time.perf_counter_ns()
    sh(argv)
    return (time.perf_counter_ns() - start) / 1e6


@dataclass
class Case:
    """One `ENGINE run --rm` to repeat: its argv and the samples."""

    engine: str
    runtime: str  # what the table calls it
    argv: list[str]
    samples: list[float] = field(default_factory=list)


@dataclass
class Wrapper:
    name: str  # runtime name it is registered under (Docker)
    path: Path
    log: Path
    target: str  # the runtime it times

    def verbs(self) -> dict[str, list[float]]:
        found: dict[str, list[float]] = defaultdict(list)
        if self.log.exists():
            for line in self.log.read_text().splitlines():
                verb, ms = line.split()
                found[verb].append(float(ms))
        self.log.unlink(missing_ok=True)
        return found


def build_wrapper(work: Path, name: str, target: str) -> Wrapper:
    source = work / "wrapper.c"
    source.write_text(WRAPPER_C)
    binary, log = work / name, work / f"{name}.log"
    sh(["gcc", "-O2", f'-DTARGET="{target}"', f'-DLOG="{log}"', "-o", str(binary), str(source)])
    return Wrapper(name, binary, log, target)


def static_true_tar(work: Path) -> Path:
    (work / "true-root").mkdir()
    (work / "true.c").write_text("int main(void) { return 0; }\n")
    sh(["gcc", "-static", "-O2", "-o", str(work / "true-root" / "true"), str(work / "true.c")])
    tar = work / "true.tar"
    sh(["tar", "-C", str(work / "true-root"), "-cf", str(tar), "."])
    return tar


def docker_answers() -> bool:
    return (
        shutil.which("docker") is not None and sh(["docker", "info"], check=False).returncode == 0
    )


def docker_runtimes() -> dict[str, object]:
    return json.loads(sh(["docker", "info", "--format", "{{json .Runtimes}}"]).stdout)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_runs(cases: list[Case], runs: int) -> None:
    print(f"\n`ENGINE run --rm`, median of {runs} runs, ms (runnc-py: hello.spt; runc: /true)")
    base = {c.engine: median(c.samples) for c in cases if c.runtime == "runc"}
    for c in cases:
        ratio = median(c.samples) / base[c.engine] if c.engine in base else float("nan")
        print(f"  {c.engine:<7} {c.runtime:<9} {median(c.samples):9.1f}   {ratio:5.2f}x runc")


def print_verbs(engine: str, ours: dict[str, list[float]], runc: dict[str, list[float]],
                runs: int) -> None:  # fmt: skip
    print(f"\n{engine}: each verb as the engine calls it, median ms (calls per `run --rm`)")
    print(f"  {'verb':<9}{'runnc-py':>10}{'runc':>10}{'ratio':>8}")
    for verb in [v for v in VERBS if v in ours or v in runc]:
        a, b = median(ours.get(verb, [])), median(runc.get(verb, []))
        calls = len(ours.get(verb, [])) / runs
        print(f"  {verb:<9}{a:10.1f}{b:10.1f}{a / b:7.2f}x   ({calls:.1f})")


@dataclass
class Setup:
    """Images, wrappers and cases of one benchmark run, and how to undo what it changed."""

    work: Path
    hello_tar: Path
    true_tar: Path
    wrappers: dict[str, Wrapper]
    cases: list[Case] = field(default_factory=list)
    timed: list[tuple[str, str, list[str]]] = field(default_factory=list)  # engine, rt, argv
    cleanup: list[list[str]] = field(default_factory=list)
    restore: list[Callable[[], None]] = field(default_factory=list)


HELLO, TRUE = "runnc-py-bench/hello:latest", "runnc-py-bench/true:latest"
DAEMON_JSON = Path("/etc/docker/daemon.json")


def docker_files() -> dict[Path, bytes]:
    """daemon.json and install's records next to it (`daemon.json.runnc-py.*`), as they are."""
    paths = [DAEMON_JSON, *DAEMON_JSON.parent.glob(DAEMON_JSON.name + ".runnc-py.*")]
    return {p: p.read_bytes() for p in paths if p.exists()}


def restore_docker(saved: dict[Path, bytes]) -> None:
    """Put daemon.json and install's records back as they were; dockerd re-reads it (SIGHUP)."""
    for path in docker_files():
        if path not in saved:
            path.unlink()
    for path, data in saved.items():
        path.write_bytes(data)
    pid = Path("/var/run/docker.pid")
    if pid.exists():
        os.kill(int(pid.read_text()), signal.SIGHUP)


def add_docker(s: Setup) -> None:
    if not docker_answers():
        print("(docker: no dockerd answering: skipped)")
        return
    sh(["docker", "load", "-i", str(s.hello_tar)])
    sh(["docker", "import", str(s.true_tar), TRUE])
    s.cleanup.append(["docker", "rmi", "-f", HELLO, TRUE])
    if "runnc-py" not in docker_runtimes():
        raise SystemExit("runnc-py is not registered: runnc-py install --docker")
    # The wrappers are registered with install and the files put back byte for byte after
    # (not uninstalled: that would also drop the record of the user's own install).
    saved = docker_files()
    s.restore.append(lambda: restore_docker(saved))
    for w in s.wrappers.values():
        sh([RUNNC, "install", "--docker", "--name", w.name, "--runtime", str(w.path), "--reload"])
    base = ["docker", "run", "--rm"]
    s.cases.append(Case("docker", "runnc-py", [*base, "--runtime=runnc-py", HELLO]))
    s.cases.append(Case("docker", "runc", [*base, "--runtime=runc", TRUE, "/true"]))
    for rt, image, args in (("runnc-py", HELLO, []), ("runc", TRUE, ["/true"])):
        s.timed.append(("docker", rt, [*base, f"--runtime={s.wrappers[rt].name}", image, *args]))


def add_podman(s: Setup) -> None:
    if not shutil.which("podman"):
        print("(podman not installed: skipped)")
        return
    sh(["podman", "load", "-i", str(s.hello_tar)])
    sh(["podman", "import", str(s.true_tar), TRUE])
    s.cleanup.append(["podman", "rmi", "-f", HELLO, TRUE])
    base = ["podman", "run", "--rm"]
    s.cases.append(Case("podman", "runnc-py", [*base, "--runtime", "runnc-py", HELLO]))
    s.cases.append(Case("podman", "runc", [*base, "--runtime", "runc", TRUE, "/true"]))
    for rt, image, args in (("runnc-py", HELLO, []), ("runc", TRUE, ["/true"])):
        s.timed.append(("podman", rt, [*base, "--runtime", str(s.wrappers[rt].path), image, *args]))


CTR_SOCKETS = ("/run/containerd/containerd.sock", "/var/run/docker/containerd/containerd.sock")


def add_ctr(s: Setup) -> None:
    """`ctr run --rm --runc-binary`, on the node's containerd or else dockerd's own."""
    address = next((a for a in CTR_SOCKETS if Path(a).exists()), None)
    if not shutil.which("ctr") or address is None or not docker_answers():
        print("(ctr: no containerd socket, or no docker to export the runc image: skipped)")
        return
    ctr = ["ctr", "--address", address, "--namespace", "runnc-py-bench"]
    true_archive = s.work / "true-docker.tar"
    sh(["docker", "save", "-o", str(true_archive), TRUE])
    for archive in (s.hello_tar, true_archive):
        sh([*ctr, "images", "import", str(archive)])
    refs = {HELLO: f"docker.io/{HELLO}", TRUE: f"docker.io/{TRUE}"}
    # After the images (cleanup): the namespace, once containerd's garbage collector has
    # dropped their content, and the cgroup parent named after it that containerd has both
    # runtimes make (/runnc-py-bench/<ID>) and never removes.
    s.restore.append(lambda: remove_ctr_namespace(ctr[:3], "runnc-py-bench"))
    s.cleanup.append([*ctr, "images", "rm", *refs.values()])
    base = [*ctr, "run", "--rm"]
    runc = str(s.wrappers["runc"].target)
    s.cases.append(Case("ctr", "runnc-py", [*base, "--runc-binary", RUNNC, refs[HELLO], FRESH_ID]))
    s.cases.append(
        Case("ctr", "runc", [*base, "--runc-binary", runc, refs[TRUE], FRESH_ID, "/true"])
    )
    for rt, image, args in (("runnc-py", refs[HELLO], []), ("runc", refs[TRUE], ["/true"])):
        wrapper = str(s.wrappers[rt].path)
        s.timed.append(("ctr", rt, [*base, "--runc-binary", wrapper, image, FRESH_ID, *args]))


def remove_ctr_namespace(ctr: list[str], name: str) -> None:
    """Remove containerd namespace NAME (retried: content goes asynchronously), then the
    empty cgroup parent of the same name."""
    deadline = time.monotonic() + 10
    while (
        sh([*ctr, "namespaces", "rm", name], check=False).returncode and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    remove_empty_cgroup(name)


def remove_empty_cgroup(name: str) -> None:
    """rmdir /NAME in every cgroup hierarchy where it is left empty."""
    for parent in [Path("/sys/fs/cgroup"), *Path("/sys/fs/cgroup").iterdir()]:
        with contextlib.suppress(OSError):  # absent, not empty, or not a hierarchy
            (parent / name).rmdir()


def measure_runs(s: Setup, runs: int) -> None:
    for case in s.cases:  # warm-up: image layers, page cache
        sh(case.argv)
    for _ in range(runs):
        for case in s.cases:
            case.samples.append(timed(case.argv))
    print_runs(s.cases, runs)


def measure_verbs(s: Setup, runs: int) -> None:
    for engine in dict.fromkeys(e for e, _, _ in s.timed):
        mine = [(rt, argv) for e, rt, argv in s.timed if e == engine]
        for rt, argv in mine:  # warm-up, not counted
            sh(argv)
            s.wrappers[rt].verbs()
        samples: dict[str, dict[str, list[float]]] = {rt: {} for rt, _ in mine}
        for _ in range(runs):
            for rt, argv in mine:
                sh(argv)
                for verb, ms in s.wrappers[rt].verbs().items():
                    samples[rt].setdefault(verb, []).extend(ms)
        print_verbs(engine, samples["runnc-py"], samples["runc"], runs)


def run_engines(runs: int, guests: Path) -> int:
    if runs < 20:
        raise SystemExit("--runs must be at least 20 for the engine benchmark")
    with tempfile.TemporaryDirectory(prefix="runnc-bench-engines-") as tmp:
        work = Path(tmp)
        hello_tar = work / "hello.tar"
        sh([RUNNC, "image", "build", str(guests / "hello.spt"), "-t", HELLO, "-o", str(hello_tar)])
        runc = shutil.which("runc") or "/usr/sbin/runc"
        wrappers = {
            "runnc-py": build_wrapper(work, "runnc-py-timed", RUNNC),
            "runc": build_wrapper(work, "runc-timed", runc),
        }
        setup = Setup(work, hello_tar, static_true_tar(work), wrappers)
        try:
            add_docker(setup)
            add_podman(setup)
            add_ctr(setup)
            if not setup.cases:
                raise SystemExit("no engine to measure")
            measure_runs(setup, runs)
            measure_verbs(setup, runs)
        finally:
            for argv in reversed(setup.cleanup):
                sh(argv, check=False)
            for undo in setup.restore:
                undo()
    return 0
