"""Build (or load from the cache) the compiled correlation extension; ``python -m flownet_ros.ops.build``.

The extension is one shared library that registers the ``flownet_ros::correlation`` operators with the
PyTorch dispatcher: the CPU kernels always, the CUDA kernels too when a CUDA PyTorch and a CUDA
toolkit are present. It is compiled just in time with :func:`torch.utils.cpp_extension.load` into a
cache folder (``$FLOWNET_ROS_BUILD_DIR``, else ``$XDG_CACHE_HOME/flownet_ros`` or
``~/.cache/flownet_ros``); later processes reuse the cached library unless a source file changed.
CUDA code is compiled for the GPU that is present unless ``TORCH_CUDA_ARCH_LIST`` says otherwise.

As a command it builds, prints the active backend and exits 0 even when the build fails (the op then
falls back to the pure-PyTorch reference), unless ``--require`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import sys
import sysconfig
from pathlib import Path
from typing import List

import torch

CSRC = Path(__file__).resolve().parent / "csrc"
CPU_SOURCES = ("correlation_cpu.cpp",)
CUDA_SOURCES = ("correlation_cuda_binding.cpp", "correlation_cuda_kernels.cu")
HEADERS = ("correlation_geometry.h", "correlation_checks.h", "correlation_cuda.h")


def cache_root() -> Path:
    """Folder holding every build of the extension (created on demand).

    ``$FLOWNET_ROS_BUILD_DIR``, else ``~/.cache/flownet_ros/src-<hash of the source folder>``: the build
    arguments contain the source path, so two checkouts sharing one folder would rebuild each other's
    library back and forth (and wait on each other's build lock).
    """
    env = os.environ.get("FLOWNET_ROS_BUILD_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    source = hashlib.sha1(str(CSRC.resolve()).encode()).hexdigest()[:10]
    return Path(base) / "flownet_ros" / f"src-{source}"


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
    """Compile (or reuse the cached build of) the extension and load it into this process.

    Registers ``torch.ops.flownet_ros.correlation`` / ``correlation_backward`` for CPU (and CUDA when
    ``with_cuda``). Returns the shared-library path. Raises on compiler or loader errors.
    """
    from torch.utils import cpp_extension

    name = extension_name(with_cuda)
    build_dir = cache_root() / name
    build_dir.mkdir(parents=True, exist_ok=True)
    sources = [str(CSRC / s) for s in CPU_SOURCES]
    cflags = ["/O2"] if sys.platform.startswith("win") else ["-O3"]
    cflags += _openmp_flags()
    cuda_flags: List[str] = []
    if with_cuda:
        sources += [str(CSRC / s) for s in CUDA_SOURCES]
        cflags.append("-DFLOWNET_ROS_WITH_CUDA")
        cuda_flags = ["-O3", "-DFLOWNET_ROS_WITH_CUDA"]
    # load() hashes sources and flags, not included headers: add them to the flags via a digest so a
    # header edit rebuilds too.
    cflags.append(f"-DFLOWNET_ROS_HEADERS={_headers_digest()}")
    with _build_lock(build_dir):
        path = cpp_extension.load(
            name=name,
            sources=sources,
            extra_cflags=cflags,
            extra_cuda_cflags=cuda_flags or None,
            extra_ldflags=_openmp_flags(),
            extra_include_paths=[str(CSRC)],
            build_directory=str(build_dir),
            with_cuda=with_cuda,
            is_python_module=False,
            verbose=verbose,
        )
    return str(path) if path else str(build_dir / f"{name}{sysconfig.get_config_var('SHLIB_SUFFIX') or '.so'}")


def _headers_digest() -> str:
    h = hashlib.sha1()
    for name in HEADERS:
        p = CSRC / name
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flownet_ros.ops.build", description=__doc__.split("\n")[0])
    parser.add_argument("--verbose", action="store_true", help="show the compiler commands and output")
    parser.add_argument("--require", action="store_true",
                        help="exit 1 unless a compiled backend (cuda or cpu-compiled) is active")
    args = parser.parse_args(argv)
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
