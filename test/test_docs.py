"""Every command block of README.md (and the quick-start blocks of docs/*.md) runs as written.

The blocks run in order, in a fresh copy of the repository (git's files only: no data/, no out/), whose
``.venv`` is the venv running this test (a fresh clone after ``make setup``). A block is run as it stands
unless the line before its fence is a marker comment, one of:

* ``<!-- doc-test: robot -->``: needs a robot's ROS 2 install (apt, colcon, ``ros2 launch``); not run here
  (test_colcon_build.py and test_launch.py cover the package and the launch file);
* ``<!-- doc-test: long (why) -->``: hours of work or a download; each command is checked without doing the
  work: ``make -n TARGET ...``, and ``TOOL ARGS --help`` for the project's tools (the module exists, the
  options parse);
* ``<!-- doc-test: background -->``: a server (the node); it must start, say it is ready and stop on Ctrl-C.

docs/*.md blocks run only when marked ``<!-- doc-test: quick-start -->``. The number of ``robot`` blocks is
capped, so the list stays short.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>bash|python)\s*$")
MARKER = re.compile(r"<!--\s*doc-test:\s*(?P<kind>[\w-]+)")
KINDS = ("run", "robot", "long", "background", "quick-start")
MAX_ROBOT_BLOCKS = 4
IN_VENV = sys.prefix != sys.base_prefix


def blocks(path: Path):
    """[(first line number, language, marker kind, code)] of the fenced bash/python blocks of ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        prev = next((ln for ln in reversed(lines[:i]) if ln.strip()), "")
        marker = MARKER.search(prev)
        kind = marker.group("kind") if marker else "run"
        assert kind in KINDS, f"{path.name}:{i}: unknown doc-test marker {kind!r}"
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        code = "\n".join(ln[len(m.group("indent")):] for ln in lines[i + 1:end])
        out.append((i + 1, m.group("lang"), kind, code))
        i = end + 1
    return out


def commands(code: str):
    """Logical command lines of a bash block (backslash continuations joined, comments and blanks dropped)."""
    joined = code.replace("\\\n", " ")
    return [ln for ln in (shlex.split(raw, comments=True) for raw in joined.splitlines()) if ln]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, copy_package):
    """A fresh copy of the repository with this venv as its .venv (set up by ``make setup``)."""
    if not IN_VENV:
        pytest.skip("not running in a venv (the README's commands use .venv/bin/...)")
    dest = copy_package(tmp_path_factory.mktemp("fresh_clone"))
    (dest / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    stale = subprocess.run(["make", "-q", ".venv/.setup-stamp"], cwd=dest, capture_output=True)
    if stale.returncode != 0:
        pytest.skip(f"{sys.prefix} was not set up by `make setup` for these sources (run it first)")
    return dest


def _env(checkout: Path):
    # the copy's sources, not those the venv's editable install points to (another checkout, in CI the clone)
    return dict(os.environ, PYTHONPATH=str(checkout), PYTHONUNBUFFERED="1")


def _run(args, checkout, timeout=1200, **kw):
    res = subprocess.run(args, cwd=checkout, env=_env(checkout), capture_output=True, text=True, timeout=timeout,
                         **kw)
    assert res.returncode == 0, f"{args}: exit {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


def _check_long(code: str, checkout: Path) -> None:
    for cmd in commands(code):
        while cmd and re.match(r"^[A-Z_]+=", cmd[0]):
            cmd = cmd[1:]
        if cmd[0] == "make":
            _run(["make", "-n", *cmd[1:]], checkout, timeout=120)
            continue
        assert cmd[0].startswith(".venv/bin/"), f"a long block may hold make and .venv/bin commands only: {cmd}"
        if "-m" in cmd:  # python -m MOD ..., torchrun ... -m MOD ...
            k = cmd.index("-m")
            cmd = [".venv/bin/python", "-m", *cmd[k + 1:]]
        _run([*cmd, "--help"], checkout, timeout=300)


def _run_background(code: str, checkout: Path) -> None:
    (cmd,) = commands(code)
    log = checkout / "background.log"
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(cmd, cwd=checkout, env=_env(checkout), stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and "ready" not in log.read_text():
            time.sleep(0.5)
        assert proc.poll() is None and "ready" in log.read_text(), log.read_text()[-3000:]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) in (0, -signal.SIGINT, 130), log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _execute(path: Path, number: int, lang: str, kind: str, code: str, checkout: Path) -> None:
    if kind == "long":
        _check_long(code, checkout)
    elif kind == "background":
        _run_background(code, checkout)
    elif lang == "bash":
        _run(["bash", "-e", "-o", "pipefail", "-c", code], checkout)
    else:
        _run([str(checkout / ".venv" / "bin" / "python"), "-"], checkout, input=code)


def test_readme_blocks_run_as_written(checkout):
    found = blocks(checkout / "README.md")
    assert sum(kind == "robot" for *_, kind, _ in found) <= MAX_ROBOT_BLOCKS, "keep the robot-only list short"
    assert sum(kind == "run" for *_, kind, _ in found) >= 3
    for number, lang, kind, code in found:
        if kind != "robot":
            _execute(checkout / "README.md", number, lang, kind, code, checkout)


def test_docs_quick_start_blocks_run_as_written(checkout):
    ran = 0
    for page in sorted((checkout / "docs").glob("*.md")):
        for number, lang, kind, code in blocks(page):
            if kind == "quick-start":
                _execute(page, number, lang, "run", code, checkout)
                ran += 1
    assert ran >= 2


def test_package_imports_from_any_directory(tmp_path):
    """`make setup` installed the package into the venv: importable outside the checkout, no PYTHONPATH."""
    if not IN_VENV:
        pytest.skip("not running in a venv")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = "import flownet_ros, flownet_ros.inference; print(flownet_ros.__file__)"
    res = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, f"run `make setup` (it installs the package into the venv)\n{res.stderr[-2000:]}"
    for tool in ("flownet_node", "flownet_replay", "flownet_report", "flownet_demo", "flownet_evaluate"):
        assert (Path(sys.prefix) / "bin" / tool).is_file(), f"{tool} not installed in {sys.prefix}/bin"
    res = subprocess.run([str(Path(sys.prefix) / "bin" / "flownet_report"), "--help"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "--offline" in res.stdout, res.stderr[-2000:]
