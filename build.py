#!/usr/bin/env python3
"""cffi builder for runnc-py's C launcher, and the project's task runner.

    python3 build.py setup            apt packages, pip install -e .[test], test guests, PATH link
    python3 build.py guests --out DIR build our freestanding test unikernels into DIR
    python3 build.py test [ARGS...]   run the test suite (pytest)
    python3 build.py ext              rebuild the C extensions (spt launcher, hvt monitor) in place
    python3 build.py front            rebuild and install the C front end and the Python entry

`pip install` imports this file for `ffibuilder` (see setup.py's `cffi_modules`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CSRC = HERE / "csrc"
GUESTS_SRC = CSRC / "guests"
BUNDLED_GUESTS = HERE / "runnc_py" / "guests"

# Debian packages the runtime and its tests use (binary name -> package).
APT_PACKAGES = {
    "gcc": "gcc",
    "mke2fs": "e2fsprogs",
    "ip": "iproute2",
    "ping": "iputils-ping",
    "dockerd": "docker.io",
    "runc": "runc",
    "crun": "crun",
    "hyperfine": "hyperfine",
    "debugfs": "e2fsprogs",
    "tar": "tar",
    "zstd": "zstd",  # zstd-compressed image layers (rootfs)
    "mkfs.xfs": "xfsprogs",  # rootfs reflink copies are tested on a loop-mounted XFS
    "ps": "procps",  # `runnc-py ps` table rows
    "mount": "mount",
    "losetup": "mount",
    "unshare": "util-linux",
    "podman": "podman",  # e2e: tests/e2e/test_podman.py
    "containerd": "containerd",  # e2e: ctr and the Kubernetes CRI path
    "ctr": "containerd",
    "skopeo": "skopeo",  # tests/integration/test_image_build.py: reads our image archives
    "umoci": "umoci",  # ... and unpacks them into runtime bundles
    "busybox": "busybox-static",  # e2e: the ordinary (runc) containers next to ours
}
APT_LIBS = {
    "/usr/include/seccomp.h": "libseccomp-dev",  # pyseccomp loads libseccomp.so
    "/usr/include/sys/capability.h": "libcap-dev",  # python-prctl builds against it
    "/usr/include/jansson.h": "libjansson-dev",  # the C front end reads state.json with it
    "/usr/lib/cni/bridge": "containernetworking-plugins",  # podman's default network (CNI)
}


HVT_SRC = CSRC / "hvt"


def _cffi_builder(module: str, header: Path, *, absolute_paths: bool = False):  # type: ignore[no-untyped-def]
    """A cffi builder for MODULE from HEADER's directory: every .c there and in csrc/common/ is
    compiled in (plus what EXTRA_SOURCES generates for MODULE), and the cdef is the header's
    block between the CFFI-BEGIN/END markers (one source of truth for the struct layouts C and
    Python share). setuptools wants sources relative to the project (it runs there);
    `build.py ext` compiles from a temporary directory and needs absolute paths."""
    from cffi import FFI

    def src(path: Path) -> str:
        return str(path if absolute_paths else path.relative_to(HERE))

    match = re.search(r"/\* CFFI-BEGIN \*/(.*)/\* CFFI-END \*/", header.read_text(), re.S)
    if match is None:
        raise SystemExit(f"{header}: missing CFFI-BEGIN/CFFI-END block")
    builder = FFI()
    builder.cdef(match.group(1))
    shared = CSRC / "common"  # host helpers both extensions link
    builder.set_source(
        module,
        f'#include "{header.name}"',
        sources=[
            src(p)
            for p in [
                *sorted([*header.parent.glob("*.c"), *shared.glob("*.c")]),
                *(make() for make in EXTRA_SOURCES.get(module, ())),
            ]
        ],
        include_dirs=[src(header.parent), src(shared)],
        extra_compile_args=["-O2", "-Wall", "-Wextra", "-std=gnu11", "-fno-strict-aliasing"],
    )
    return builder


# The hvt monitor's run loop (csrc/hvt/loop/) keeps running after the monitor has unmapped
# libc and the interpreter, so it is built apart: freestanding (no libc, no stack protector,
# no errno/TLS), linked into one image from address 0 that the monitor copies into memory of
# its own, and compiled into runnc_py._hvt as a byte array (docs/hvt.md, "The run loop").
HVT_LOOP_SRC = HVT_SRC / "loop"
# What the freestanding builds (the hvt run loop, the test guests) share.
FREESTANDING_CFLAGS = [
    "-std=gnu11",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    # No libc: gcc's own freestanding stdint.h/stddef.h/stdarg.h only; each build has the rest.
    "-ffreestanding",
    "-fno-builtin",
    # ... and keep gcc from turning memcpy-like loops back into calls to themselves.
    "-fno-tree-loop-distribute-patterns",
    "-fno-stack-protector",  # the canary lives in TLS: none in a guest, unmapped for the loop
    "-fcf-protection=none",
]
# ... and how they link: one static image, no libc, no unwind tables.
FREESTANDING_LINK = [
    "-fno-asynchronous-unwind-tables",
    "-nostdlib",
    "-static",
    "-no-pie",
    "-Wl,--build-id=none",
    "-Wl,-z,noexecstack",
]
HVT_LOOP_CFLAGS = [
    *FREESTANDING_CFLAGS,
    # Position-independent and self-contained: every reference RIP-relative, no tables of
    # addresses (jump tables, switch tables) that would need relocating.
    "-fPIE",
    "-fvisibility=hidden",
    "-fno-jump-tables",
    "-fno-tree-switch-conversion",
    *FREESTANDING_LINK,
]


def build_hvt_loop_image(
    out: Path = HERE / "build" / "hvt-loop", cc: str = "gcc", sources: list[Path] | None = None
) -> Path:
    """Link csrc/hvt/loop/ (or SOURCES) into the run loop image and write it as a C array to
    OUT/hvt_loop_image.c (rewritten only when it changes); returns that file.

    Linked twice, at two addresses: the two images must be the same bytes, so nothing in it
    depends on where the monitor copies it. An undefined symbol (a libc call) fails the link;
    writable or relocated data fails the linker script.
    """
    out.mkdir(parents=True, exist_ok=True)
    images = []
    for base in (0, 0x10000):
        elf, raw = out / f"loop-{base:#x}.elf", out / f"loop-{base:#x}.bin"
        link = [
            cc,
            *HVT_LOOP_CFLAGS,
            f"-I{HVT_SRC}",
            f"-I{CSRC / 'common'}",
            f"-Wl,-T,{HVT_LOOP_SRC / 'loop.ld'}",
            f"-Wl,--section-start=.image={base:#x}",
            "-o",
            str(elf),
            *map(str, sources or sorted(HVT_LOOP_SRC.glob("*.c"))),
        ]
        for cmd in (link, ["objcopy", "-O", "binary", "-j", ".image", str(elf), str(raw)]):
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"building the hvt run loop failed:\n{done.stderr.strip()}")
        images.append(raw.read_bytes())
    if images[0] != images[1]:
        raise SystemExit("the hvt run loop image depends on its load address (csrc/hvt/loop/)")
    rows = ",\n".join(
        "    " + ", ".join(str(b) for b in images[0][i : i + 24])
        for i in range(0, len(images[0]), 24)
    )
    source = out / "hvt_loop_image.c"
    text = (
        "/* Generated by build.py from csrc/hvt/loop/: the hvt run loop image. */\n"
        "#include <stddef.h>\n"
        "const unsigned char runnc_hvt_loop_image[] __attribute__((aligned(16))) = {\n"
        f"{rows}\n}};\n"
        "const size_t runnc_hvt_loop_image_size = sizeof runnc_hvt_loop_image;\n"
    )
    if not source.exists() or source.read_text() != text:
        source.write_text(text)
    return source


# Sources generated at build time, per extension.
EXTRA_SOURCES = {"runnc_py._hvt": [build_hvt_loop_image]}

# The spt launcher (runnc_py._launcher) and the hvt monitor (runnc_py._hvt) are separate
# extensions on purpose: their own header, sources and cdef, so neither build breaks the other.
EXTENSIONS = {
    "runnc_py._launcher": CSRC / "spt_launcher.h",
    "runnc_py._hvt": HVT_SRC / "hvt_monitor.h",
}
ffibuilder = _cffi_builder("runnc_py._launcher", EXTENSIONS["runnc_py._launcher"])


def hvt_ffibuilder():  # type: ignore[no-untyped-def]
    """The hvt monitor's builder, made when setuptools asks (cffi accepts a function): its run
    loop image is compiled first, which importing build.py should not do."""
    return _cffi_builder("runnc_py._hvt", EXTENSIONS["runnc_py._hvt"])


# --------------------------------------------------------------------------------------------
# test guests


GUEST_CFLAGS = [
    *FREESTANDING_CFLAGS,
    "-fno-pic",
    "-fno-pie",
    "-mno-red-zone",
    # No SSE/x87: the same sources must also suit KVM guests where SSE may fault.
    "-mgeneral-regs-only",
    *FREESTANDING_LINK,
    "-Wl,-z,max-page-size=0x1000",
]

# (ABI1 note abi_version, output subdirectory): 2 for Solo5 >= 0.8, 1 for Solo5 <= 0.7.
GUEST_ABI_VERSIONS = ((2, ""), (1, "abi1"))


def guest_sources() -> list[Path]:
    """The guests: every csrc/guests/<name>.c (lib/ holds the shared runtime)."""
    return sorted(GUESTS_SRC.glob("*.c"))


HVT_GUESTS_SRC = GUESTS_SRC / "hvt"

# target -> (sources and their lib/, include/, linker script, output subdirectory)
GUEST_TARGETS = {
    "spt": (GUESTS_SRC, GUESTS_SRC / "spt.ld", ""),
    # hvt guests have their own runtime (hypercalls instead of syscalls) but the same flags;
    # -mgeneral-regs-only matters there: a paravirtual KVM may not emulate guest SSE.
    "hvt": (HVT_GUESTS_SRC, HVT_GUESTS_SRC / "hvt.ld", "hvt"),
}


def build_guests(out: Path, cc: str = "gcc") -> list[Path]:
    """Compile every csrc/guests/<name>.c into OUT/<name>.spt (ABI 2) and OUT/abi1/<name>.spt,
    and every csrc/guests/hvt/<name>.c into OUT/hvt/<name>.hvt and OUT/hvt/abi1/<name>.hvt.

    Each guest is one gcc run over its source, its target's lib/*.c and common/*.c, linked with
    the target's linker script. The runs are independent, so they go in parallel.
    """
    from concurrent.futures import ThreadPoolExecutor

    jobs: list[tuple[list[str], Path]] = []
    shared = GUESTS_SRC / "common"  # the target-independent runtime (console, strings, argv)
    for target_name, (src, linker_script, target_dir) in GUEST_TARGETS.items():
        common = [str(p) for p in sorted([*(src / "lib").glob("*.c"), *shared.glob("*.c")])]
        for abi_version, abi_dir in GUEST_ABI_VERSIONS:
            dest = out / target_dir / abi_dir
            dest.mkdir(parents=True, exist_ok=True)
            for source in sorted(src.glob("*.c")):
                target = dest / f"{source.stem}.{target_name}"
                cmd = [
                    cc,
                    *GUEST_CFLAGS,
                    f"-DSOLO5_ABI_VERSION={abi_version}",
                    f"-I{src / 'include'}",
                    f"-I{shared}",
                    f"-Wl,-T,{linker_script}",
                    "-o",
                    str(target),
                    str(source),
                    *common,
                ]
                jobs.append((cmd, target))

    def run(job: tuple[list[str], Path]) -> Path:
        cmd, target = job
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"building guest {target} failed:\n{done.stderr.strip()}")
        return target

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(run, jobs))


# --------------------------------------------------------------------------------------------
# tasks


def _run(cmd: list[str], **kwargs) -> None:  # type: ignore[no-untyped-def]
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def _apt_install() -> None:
    missing = sorted(
        {pkg for binary, pkg in APT_PACKAGES.items() if shutil.which(binary) is None}
        | {pkg for path, pkg in APT_LIBS.items() if not Path(path).exists()}
    )
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"missing Debian packages {missing}: run setup as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-qq"], env=env)
    _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


def setup() -> None:
    _apt_install()
    # compat mode: a plain path entry in a .pth instead of setuptools' import-hook finder,
    # which costs milliseconds at every interpreter start (runnc-py is on Docker's hot path).
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--config-settings",
            "editable_mode=compat",
            "-e",
            f"{HERE}[test]",
        ]
    )
    # Bytecode ahead of time: with PYTHONDONTWRITEBYTECODE set (as on our CI machines) every
    # call would otherwise recompile the package from source.
    _run([sys.executable, "-m", "compileall", "-q", str(HERE / "runnc_py")])
    build_guests(BUNDLED_GUESTS)
    if os.geteuid() == 0:
        install_front()


ENTRY_POINT = """#!{python} -IS
# runnc-py's Python CLI, written by `build.py setup`. The C front end /usr/local/bin/runnc-py
# execs it for every call it does not do itself (engines call it per container), so
# the interpreter starts isolated and without `site` (-IS): .pth processing alone costs
# 5-30 ms per call, depending on what else is installed. The paths `site` would add are fixed
# here instead; rerun `python3 build.py setup` after moving the interpreter or the checkout.
import sys
sys.path[1:1] = {paths!r}
from runnc_py.cli import main
sys.exit(main())
"""


def entry_point_paths() -> list[str]:
    """What `site` puts on sys.path for this interpreter: site-packages and plain .pth lines."""
    import site

    paths: list[str] = []
    for directory in site.getsitepackages():
        paths.append(directory)
        for pth in sorted(Path(directory).glob("*.pth")):
            for line in pth.read_text().splitlines():
                line = line.strip()
                # `import ...` lines are the costly hooks we skip; comments and blanks too.
                if line and not line.startswith(("#", "import ")) and Path(line).is_dir():
                    paths.append(line)
    return list(dict.fromkeys(paths))


def install_entry_point(target: Path) -> None:
    text = ENTRY_POINT.format(python=sys.executable, paths=entry_point_paths())
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o755)
    tmp.replace(target)
    print(f"wrote {target} (python {sys.executable})")


# --------------------------------------------------------------------------------------------
# the C front end (csrc/front): what engines run; it hands every call it does not do itself to
# the Python entry script, whose path it is built with (docs/state.md)

FRONT_SRC = CSRC / "front"
FRONT_TARGET = Path("/usr/local/bin/runnc-py")
PY_ENTRY = Path("/usr/local/lib/runnc-py/runnc-py-py")
FRONT_CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-fno-strict-aliasing"]


def build_front(target: Path, entry: Path, cc: str = "gcc") -> Path:
    """Compile csrc/front into TARGET (replaced atomically), handing over to ENTRY.

    jansson is linked statically: the front end then maps libc alone, one library less to
    load on every call an engine makes.
    """
    tmp = target.with_name(f".{target.name}.tmp")
    cmd = [
        cc,
        *FRONT_CFLAGS,
        f"-DRUNNC_PY_ENTRY={_c_string(str(entry))}",
        "-o",
        str(tmp),
        *map(str, sorted(FRONT_SRC.glob("*.c"))),
        "-Wl,-Bstatic",
        "-ljansson",
        "-Wl,-Bdynamic",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"building the front end {target} failed:\n{done.stderr.strip()}")
    tmp.chmod(0o755)
    tmp.replace(target)
    return target


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def install_front() -> None:
    """The Python entry script at PY_ENTRY, then the C front end at FRONT_TARGET."""
    PY_ENTRY.parent.mkdir(parents=True, exist_ok=True)
    install_entry_point(PY_ENTRY)
    build_front(FRONT_TARGET, PY_ENTRY)
    print(f"wrote {FRONT_TARGET} (C front end, hands over to {PY_ENTRY})")


def build_extensions() -> list[Path]:
    """Compile the C extensions in place (what `pip install -e` does, in a second or two)."""
    targets = []
    for module, header in EXTENSIONS.items():
        if not header.exists():
            continue
        builder = _cffi_builder(module, header, absolute_paths=True)
        built = Path(builder.compile(tmpdir=str(HERE / "build" / "cffi")))
        name = module.rsplit(".", 1)[1]
        # An older build with another ABI tag (pip's abi3 vs ours) would shadow or be shadowed.
        for stale in (HERE / "runnc_py").glob(f"{name}.*.so"):
            stale.unlink()
        target = HERE / "runnc_py" / built.name
        shutil.copy2(built, target)
        targets.append(target)
    return targets


def test(args: list[str]) -> int:
    return subprocess.call([sys.executable, "-m", "pytest", *args], cwd=HERE)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    task, rest = argv[0], argv[1:]
    if task == "setup":
        setup()
        return 0
    if task == "guests":
        out = Path(rest[rest.index("--out") + 1]) if "--out" in rest else BUNDLED_GUESTS
        for path in build_guests(out):
            print(path)
        return 0
    if task == "ext":
        for target in build_extensions():
            print(target)
        return 0
    if task == "front":
        install_front()
        return 0
    if task == "test":
        return test(rest)
    print(f"build.py: unknown task {task!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
