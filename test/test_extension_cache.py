"""The correlation extension's build cache (flownet_ros/ops/build.py): one build per build key, shared by
every checkout and venv with the same sources and torch, never relinked once there, and every build
announced on stderr with its reason. Uses the real compiled library of this checkout's cache (the
prebuilt one of an installed package never touches the cache: those tests skip there)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

from flownet_ros.ops import build
from flownet_ros.ops.correlation import compiled_available

PROBE = ("import sys, flownet_ros; from flownet_ros.ops import correlation_backend, build; "
         "print(correlation_backend(), sys.prefix, flownet_ros.__file__, build.cached_library(False))")


@pytest.fixture
def seeded_cache(tmp_path):
    """A private cache holding this checkout's cached library (copied: nothing is compiled here)."""
    if not compiled_available("cpu"):
        pytest.fail("the compiled CPU correlation extension is unavailable")
    if build.prebuilt_library(False) is not None:
        pytest.skip("a prebuilt library is installed next to the package: the cache is not used")
    cache = tmp_path / "cache"
    shutil.copytree(build.build_dir(False), cache / build.build_dir(False).name)
    return cache


def _checkout(dest: Path) -> Path:
    """A second copy of the package's sources (another clone of the same commit)."""
    shutil.copytree(REPO / "flownet_ros", dest / "flownet_ros",
                    ignore=shutil.ignore_patterns("__pycache__", "prebuilt"))
    return dest


def _interpreters(tmp_path):
    """Two paths to this venv's interpreter (as two venvs, or a venv reached through a symlink, give):
    sys.prefix and the include/library paths of a compile command differ between them."""
    if sys.prefix == sys.base_prefix:
        return [sys.executable, sys.executable]
    out = []
    for name in ("venv_a", "venv_b"):
        (tmp_path / name).symlink_to(sys.prefix, target_is_directory=True)
        out.append(str(tmp_path / name / "bin" / Path(sys.executable).name))
    return out


def _probe(python, checkout: Path, cache: Path):
    env = dict(os.environ, PYTHONPATH=str(checkout), FLOWNET_ROS_BUILD_DIR=str(cache),
               FLOWNET_ROS_CORRELATION_BACKEND="cpu-compiled")
    return subprocess.run([python, "-c", PROBE], cwd=checkout, env=env, capture_output=True, text=True, timeout=300)


def test_two_checkouts_and_venvs_alternating_never_rebuild(tmp_path, seeded_cache):
    checkouts = [_checkout(tmp_path / "clone_a"), _checkout(tmp_path / "clone_b")]
    pythons = _interpreters(tmp_path)
    library = build.build_dir(False).name
    lib_path = next((seeded_cache / library).glob("*.so"))
    before = lib_path.stat()
    prefixes = set()
    for turn in range(4):
        res = _probe(pythons[turn % 2], checkouts[turn % 2], seeded_cache)
        assert res.returncode == 0, res.stderr[-3000:]
        backend, prefix, module, cached = res.stdout.split()
        assert backend == "cpu-compiled"
        assert module.startswith(str(checkouts[turn % 2]))  # the scenario holds: each clone imports its own
        assert Path(cached) == lib_path
        assert "compiling" not in res.stderr, res.stderr[-2000:]
        prefixes.add(prefix)
    if sys.prefix != sys.base_prefix:
        assert len(prefixes) == 2  # two venv paths really took turns
    after = lib_path.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    assert [p.name for p in seeded_cache.iterdir()] == [library]  # one build key, no second build
    assert not list((seeded_cache / library).glob("build-*"))


def test_key_ignores_paths_and_names_what_changes_the_build(monkeypatch, tmp_path):
    key = build.build_key(False)
    assert not any(str(sys.prefix) in v or str(REPO) in v for v in key.values())
    assert {"sources", "torch", "python", "cxx", "cflags"} <= set(key)
    monkeypatch.setenv("FLOWNET_ROS_BUILD_DIR", str(tmp_path))
    first = build.build_dir(False)
    monkeypatch.setenv("CXX", "clang++-that-differs")
    assert build.build_dir(False) != first  # another compiler: another build


def test_a_build_says_why_on_stderr(tmp_path):
    """An earlier build of other sources in the cache: the new build names what changed (a compiler that
    fails at once keeps this test short; the library never appears under its final name)."""
    cache = tmp_path / "cache"
    old = cache / "flownet_ros_corr_cpu_old-000000000000"
    old.mkdir(parents=True)
    (old / "build.json").write_text(json.dumps(dict(build.build_key(False), sources="0123456789ab")))
    env = dict(os.environ, PYTHONPATH=str(REPO), FLOWNET_ROS_BUILD_DIR=str(cache), CXX="false",
               FLOWNET_ROS_CORRELATION_BACKEND="auto")
    res = subprocess.run([sys.executable, "-m", "flownet_ros.ops.build"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300)
    assert "flownet_ros: compiling the correlation extension" in res.stderr, res.stderr[-2000:]
    assert f"changed since the build in {old}: sources" in res.stderr, res.stderr[-2000:]
    assert "correlation backend: reference" in res.stdout
    assert not list(cache.glob("flownet_ros_corr_cpu_torch*/*.so"))


def test_leftovers_of_a_killed_build_do_not_block_loading(tmp_path, seeded_cache):
    """A build killed mid-way leaves its private folder (with cpp_extension's lock file) behind: loading
    the complete library beside it neither waits on that lock nor uses the folder."""
    leftover = seeded_cache / build.build_dir(False).name / "build-killed"
    leftover.mkdir()
    (leftover / "lock").touch()
    (leftover / "partial.so").write_bytes(b"\x7fELF truncated")
    res = _probe(sys.executable, REPO, seeded_cache)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split()[0] == "cpu-compiled"
