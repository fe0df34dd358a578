"""Build (or load prebuilt, or from the cache) the compiled correlation extension; ``python -m flownet_ros.ops.build``.

The extension is one shared library that registers the ``flownet_ros::correlation`` operators with the
PyTorch dispatcher: the CPU kernels always, the CUDA kernels too when a CUDA PyTorch and a CUDA
toolkit are present. Where it comes from, in order:

1. prebuilt: ``flownet_ros/ops/prebuilt/<name>.so``, written at install time (``colcon build`` /
   ``pip install`` run ``--install-into`` from setup.py when torch and a compiler are there), loaded in
   milliseconds;
2. the cache: ``$FLOWNET_ROS_BUILD_DIR``, else ``$XDG_CACHE_HOME/flownet_ros`` or ``~/.cache/flownet_ros``,
   one folder per library name and build key (:func:`build_key`: sources, torch, Python ABI, CUDA, compiler
   and flags, never the interpreter's or venv's paths), so every checkout and venv with the same sources
   and torch shares one build; a library found there is loaded as it is, never relinked;
3. compiled just in time with :func:`torch.utils.cpp_extension.load` in a private folder and renamed into
   the cache (:func:`os.replace`: a loading process never sees a half-written file); one time, about a
   minute or two of one core, announced on stderr with the reason.

``<name>`` encodes torch, Python and CUDA versions (:func:`extension_name`). CUDA code is compiled for the
GPU that is present unless ``TORCH_CUDA_ARCH_LIST`` says otherwise.

As a command it builds, prints the active backend and exits 0 even when the build fails (the op then
falls back to the pure-PyTorch reference), unless ``--require`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

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
    return prebuilt_library(with_cuda) is None and not cached_library(with_cuda).is_file()


def build_key(with_cuda: bool) -> Dict[str, str]:
    """Everything that changes the compiled library. Not the interpreter's, venv's or checkout's paths: the
    library names torch's libraries without a path (they are loaded before it) and the sources are copied
    into the cache, so one build serves every checkout and venv with the same sources and torch."""
    return {"sources": sources_digest(), "torch": torch.__version__, "torch_git": str(torch.version.git_version),
            "cxx11_abi": str(torch.compiled_with_cxx11_abi()), "python": sys.implementation.cache_tag,
            "platform": sysconfig.get_platform(), "cxx": os.environ.get("CXX", "c++"),
            "cflags": " ".join(_cflags(with_cuda)[0]), "cuda": str(torch.version.cuda) if with_cuda else "",
            "cuda_arch": os.environ.get("TORCH_CUDA_ARCH_LIST", "") if with_cuda else ""}


def build_dir(with_cuda: bool) -> Path:
    """The cache folder of this build key."""
    key = hashlib.sha1(json.dumps(build_key(with_cuda), sort_keys=True).encode()).hexdigest()[:12]
    return cache_root() / f"{extension_name(with_cuda)}-{key}"


def cached_library(with_cuda: bool) -> Path:
    """Where the cache holds (or will hold) the library of this build key."""
    return build_dir(with_cuda) / f"{extension_name(with_cuda)}{_suffix()}"


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


def _cflags(with_cuda: bool):
    """(C++ flags, CUDA flags) of the build."""
    cflags = ["/O2"] if sys.platform.startswith("win") else ["-O3"]
    cflags += _openmp_flags()
    if not with_cuda:
        return cflags, []
    return cflags + ["-DFLOWNET_ROS_WITH_CUDA"], ["-O3", "-DFLOWNET_ROS_WITH_CUDA"]


@contextlib.contextmanager
def _build_lock(folder: Path):
    """Exclusive OS lock on a cache folder while it is built (released by the kernel if the process dies)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; two simultaneous first builds both compile, the last rename wins
        yield
        return
    with open(folder / ".flownet_ros_build.lock", "w", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load_extension(with_cuda: bool, verbose: bool = False) -> str:
    """Load the prebuilt library, the cached one, or compile it into the cache, into this process.

    Registers ``torch.ops.flownet_ros.correlation`` / ``correlation_backward`` for CPU (and CUDA when
    ``with_cuda``). Returns the shared-library path. Raises on compiler or loader errors.
    """
    lib = prebuilt_library(with_cuda)
    if lib is None:
        lib, loaded = _cached_or_built(with_cuda, verbose)
        if loaded:
            return str(lib)
    torch.ops.load_library(str(lib))
    return str(lib)


def _cached_or_built(with_cuda: bool, verbose: bool):
    """(the cached library of this build key, whether this process built and so already loaded it); compiled
    under the build lock when missing."""
    library = cached_library(with_cuda)
    if library.is_file():  # complete by construction (renamed into place); never relinked
        return library, False
    folder = build_dir(with_cuda)
    folder.mkdir(parents=True, exist_ok=True)
    with _build_lock(folder):
        if library.is_file():  # another process built it while this one waited
            return library, False
        _build(with_cuda, verbose, folder, library)
    return library, True


def _rebuild_reason(with_cuda: bool) -> str:
    """Why the cache has no library for this key: what differs from the newest other build of this flavour."""
    key = build_key(with_cuda)
    flavour = f"flownet_ros_corr_{'cuda' if with_cuda else 'cpu'}_"
    manifests = sorted(cache_root().glob(f"{flavour}*/build.json"), key=lambda p: p.stat().st_mtime)
    for manifest in reversed(manifests):
        try:
            other = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        changed = [k for k in key if other.get(k) != key[k]]
        if changed:
            return "changed since the build in " + f"{manifest.parent}: " + ", ".join(changed)
    return f"no earlier build in {cache_root()}"


def _build(with_cuda: bool, verbose: bool, folder: Path, library: Path) -> None:
    """Compile (and load: cpp_extension does) in a private folder under ``folder``, then rename the library
    into ``library``: the loaded file keeps its inode, so a later load of ``library`` is the same library."""
    from torch.utils import cpp_extension

    name = extension_name(with_cuda)
    print(f"flownet_ros: compiling the correlation extension (one time, typically 1-2 minutes) into {folder} "
          f"({_rebuild_reason(with_cuda)})", file=sys.stderr, flush=True)
    src = folder / "src"
    src.mkdir(exist_ok=True)
    for f in CPU_SOURCES + CUDA_SOURCES + HEADERS:  # the cache's own copy: stable paths, one build per key
        if (CSRC / f).is_file():
            shutil.copyfile(CSRC / f, src / f)
    cflags, cuda_flags = _cflags(with_cuda)
    for stale in folder.glob("build-*"):  # left by a killed build (this process holds the lock)
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=folder))
    try:
        built = cpp_extension.load(
            name=name, sources=[str(src / s) for s in CPU_SOURCES + (CUDA_SOURCES if with_cuda else ())],
            extra_cflags=cflags, extra_cuda_cflags=cuda_flags or None, extra_ldflags=_openmp_flags(),
            extra_include_paths=[str(src)], build_directory=str(work), with_cuda=with_cuda,
            is_python_module=False, verbose=verbose)
        os.replace(built, library)
        (folder / "build.json").write_text(json.dumps(build_key(with_cuda), indent=1, sort_keys=True) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def install_into(directory: Path, with_cuda: bool) -> Path:
    """Build (or reuse the cached build) and copy the library and its source digest into ``directory``."""
    path, _ = _cached_or_built(with_cuda, verbose=False)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{extension_name(with_cuda)}{_suffix()}"
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(path, tmp)
    os.replace(tmp, target)
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
