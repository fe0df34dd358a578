"""Build (or load prebuilt, or from the cache) the compiled correlation extension; ``python -m flownet_ros.ops.build``.

The extension is one shared library that registers the ``flownet_ros::correlation`` operators with the
PyTorch dispatcher: the CPU kernels always, the CUDA kernels too when a CUDA PyTorch and a CUDA
toolkit are present. Where it comes from, in order:

1. prebuilt: ``flownet_ros/ops/prebuilt/<name>.so``, written at install time (``colcon build`` /
   ``pip install`` run ``--install-into`` from setup.py when torch and a compiler are there), loaded in
   milliseconds;
2. the cache: ``$FLOWNET_ROS_BUILD_DIR``, else ``$XDG_CACHE_HOME/flownet_ros`` or ``~/.cache/flownet_ros``,
   one folder per library name and source digest (the sources are copied in, so every checkout or
   installation of the same sources shares one build);
3. compiled just in time with :func:`torch.utils.cpp_extension.load` into that cache (one time, about
   a minute or two of one core; logged as a warning, since a node cannot work meanwhile).

``<name>`` encodes torch, Python and CUDA versions (:func:`extension_name`). CUDA code is compiled for the
GPU that is present unless ``TORCH_CUDA_ARCH_LIST`` says otherwise.

As a command it builds, prints the active backend and exits 0 even when the build fails (the op then
falls back to the pure-PyTorch reference), unless ``--require`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import re
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import List, Optional

import torch

log = logging.getLogger("flownet_ros.ops")
CSRC = Path(__file__).resolve().parent / "csrc"
CPU_SOURCES = ("correlation_cpu.cpp",)
CUDA_SOURCES = ("correlation_cuda_binding.cpp", "correlation_cuda_kernels.cu")
HEADERS = ("correlation_geometry.h", "correlation_checks.h", "correlation_cuda.h")


def cache_root() -> Path:
    """Folder holding every cached build of the extension (created on demand)."""
    env = os.environ.get("FLOWNET_ROS_BUILD_DIR")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")) / "flownet_ros"


def sources_digest() -> str:
    """Digest of every source and header: what makes two copies of the extension the same build."""
    h = hashlib.sha1()
    for name in CPU_SOURCES + CUDA_SOURCES + HEADERS:
        p = CSRC / name
        if p.is_file():
            h.update(name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:12]


PREBUILT = Path(__file__).resolve().parent / "prebuilt"


def prebuilt_library(with_cuda: bool) -> Optional[Path]:
    """The library installed next to the package for this torch/Python/CUDA and these sources, if any."""
    name = extension_name(with_cuda)
    lib = PREBUILT / f"{name}{_suffix()}"
    stamp = PREBUILT / f"{name}.sources"
    if lib.is_file() and stamp.is_file() and stamp.read_text().strip() == sources_digest():
        return lib
    return None


def needs_compile(with_cuda: bool) -> bool:
    """True when loading the extension would compile it (no prebuilt library, no cached build)."""
    name = extension_name(with_cuda)
    cached = cache_root() / f"{name}-{sources_digest()}" / f"{name}{_suffix()}"
    return prebuilt_library(with_cuda) is None and not cached.is_file()


def _suffix() -> str:
    return sysconfig.get_config_var("SHLIB_SUFFIX") or ".so"


def extension_name(with_cuda: bool) -> str:
    """Library name; encodes what makes a cached binary incompatible (torch, Python, CUDA)."""
    tag = f"torch{torch.__version__}_py{sys.version_info[0]}{sys.version_info[1]}"
    if with_cuda:
        tag += f"_cu{torch.version.cuda}"
    tag = re.sub(r"[^0-9A-Za-z]+", "_", tag)
    return f"flownet_ros_corr_{'cuda' if with_cuda else 'cpu'}_{tag}"


def cuda_buildable() -> bool:
    """True when this PyTorch has a usable GPU and a CUDA toolkit (nvcc) is installed."""
    if not torch.cuda.is_available() or torch.version.cuda is None:
        return False
    from torch.utils.cpp_extension import CUDA_HOME

    return CUDA_HOME is not None


def _openmp_flags() -> List[str]:
    if sys.platform.startswith("win"):
        return ["/openmp"]
    if sys.platform == "darwin":
        return []  # Apple clang has no -fopenmp; parallel_for then runs single-threaded
    return ["-fopenmp"]


@contextlib.contextmanager
def _build_lock(build_dir: Path):
    """Exclusive OS lock on the build folder (released by the kernel if the process dies).

    cpp_extension's own lock is a plain file that a killed build leaves behind, after which every later
    load waits forever; holding this lock proves no build is running, so such a file is stale.
    """
    try:
        import fcntl
    except ImportError:  # Windows: rely on cpp_extension's lock alone
        yield
        return
    with open(build_dir / ".flownet_ros_build.lock", "w", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            stale = build_dir / "lock"
            if stale.exists():
                stale.unlink()
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load_extension(with_cuda: bool, verbose: bool = False) -> str:
    """Load the prebuilt library, or compile (or reuse the cached build of) the extension, into this process.

    Registers ``torch.ops.flownet_ros.correlation`` / ``correlation_backward`` for CPU (and CUDA when
    ``with_cuda``). Returns the shared-library path. Raises on compiler or loader errors.
    """
    lib = prebuilt_library(with_cuda)
    if lib is not None:
        torch.ops.load_library(str(lib))
        return str(lib)
    return _compile(with_cuda, verbose)


def _compile(with_cuda: bool, verbose: bool) -> str:
    from torch.utils import cpp_extension

    name = extension_name(with_cuda)
    build_dir = cache_root() / f"{name}-{sources_digest()}"
    src = build_dir / "src"
    src.mkdir(parents=True, exist_ok=True)
    cflags = ["/O2"] if sys.platform.startswith("win") else ["-O3"]
    cflags += _openmp_flags()
    cuda_flags: List[str] = []
    if with_cuda:
        cflags.append("-DFLOWNET_ROS_WITH_CUDA")
        cuda_flags = ["-O3", "-DFLOWNET_ROS_WITH_CUDA"]
    with _build_lock(build_dir):
        for f in CPU_SOURCES + CUDA_SOURCES + HEADERS:  # stable paths: one build for every identical copy
            if (CSRC / f).is_file() and (not (src / f).is_file() or (src / f).read_bytes() != (CSRC / f).read_bytes()):
                shutil.copyfile(CSRC / f, src / f)
        library = build_dir / f"{name}{_suffix()}"
        if not library.is_file():
            log.warning("compiling the correlation extension (one time, typically 1-2 minutes) into %s", build_dir)
        path = cpp_extension.load(
            name=name,
            sources=[str(src / s) for s in CPU_SOURCES + (CUDA_SOURCES if with_cuda else ())],
            extra_cflags=cflags, extra_cuda_cflags=cuda_flags or None, extra_ldflags=_openmp_flags(),
            extra_include_paths=[str(src)], build_directory=str(build_dir), with_cuda=with_cuda,
            is_python_module=False, verbose=verbose)
    return str(path) if path else str(library)


def install_into(directory: Path, with_cuda: bool) -> Path:
    """Build (or reuse the cached build) and copy the library and its source digest into ``directory``."""
    path = Path(_compile(with_cuda, verbose=False))
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{extension_name(with_cuda)}{_suffix()}"
    shutil.copyfile(path, target)
    (directory / f"{extension_name(with_cuda)}.sources").write_text(sources_digest() + "\n")
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flownet_ros.ops.build", description=__doc__.split("\n")[0])
    parser.add_argument("--verbose", action="store_true", help="show the compiler commands and output")
    parser.add_argument("--require", action="store_true",
                        help="exit 1 unless a compiled backend (cuda or cpu-compiled) is active")
    parser.add_argument("--install-into", type=Path, metavar="DIR",
                        help="build and put the library into DIR (setup.py: the installed package's ops/prebuilt)")
    args = parser.parse_args(argv)
    if args.install_into:
        try:
            print(f"flownet_ros correlation extension: {install_into(args.install_into, cuda_buildable())}")
            return 0
        except Exception as exc:  # no compiler, no headers: the package still works (JIT or reference)
            last = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
            print(f"flownet_ros: correlation extension not prebuilt ({type(exc).__name__}: {last})", file=sys.stderr)
            return 1
    if args.verbose:
        os.environ["FLOWNET_ROS_BUILD_VERBOSE"] = "1"
    from flownet_ros.ops import correlation_backend, correlation_status

    backend = correlation_backend()
    print(f"flownet_ros correlation backend: {backend}")
    print(correlation_status())
    if backend == "reference":
        print("warning: the compiled correlation extension is not available; using the pure-PyTorch reference",
              file=sys.stderr)
        return 1 if args.require else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
