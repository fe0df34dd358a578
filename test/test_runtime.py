"""Process-wide runtime settings: CPU thread pools and glibc's allocation thresholds."""

import subprocess
import sys
import textwrap

import pytest

from flownet_ros.inference import set_cpu_threads

# mallinfo2().hblks = number of live mmapped blocks; an 8 MiB malloc adds one unless the heap serves it.
_PROBE = textwrap.dedent("""
    import ctypes, sys
    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                     "fordblks", "keepcost")]
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    if sys.argv[1] == "tuned":
        from flownet_ros.inference import keep_frame_buffers_in_heap
        assert keep_frame_buffers_in_heap()
    before = libc.mallinfo2().hblks
    block = libc.malloc(8 << 20)
    print(libc.mallinfo2().hblks - before)
""")


def _mmapped_blocks_for_8mib(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_frame_buffers_come_from_the_heap_after_tuning():
    try:
        default = _mmapped_blocks_for_8mib("default")
    except AssertionError as exc:
        if "mallinfo2" in str(exc):
            pytest.skip("glibc without mallinfo2 (< 2.33)")
        raise
    assert default == 1  # glibc's default: a fresh mmap for a large block
    assert _mmapped_blocks_for_8mib("tuned") == 0


def test_set_cpu_threads():
    import cv2
    import torch

    before = (torch.get_num_threads(), cv2.getNumThreads())
    try:
        assert set_cpu_threads(1) == 1 and torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
        assert set_cpu_threads(0) == 1  # 0 leaves the current setting
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])
    with pytest.raises(ValueError):
        set_cpu_threads(-1)


_TORCH_SEES = textwrap.dedent("""
    import builtins, os
    seen = []
    real_import = builtins.__import__
    def spy(name, *args, **kwargs):
        if name == "torch" and not seen:
            seen.append(os.environ.get("OMP_WAIT_POLICY"))
        return real_import(name, *args, **kwargs)
    builtins.__import__ = spy
    import flownet_ros.ros.node
    print(seen[0])
""")


@pytest.mark.parametrize("env, expected", [({}, "PASSIVE"), ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE")])
def test_node_sets_omp_wait_policy_before_torch_loads(env, expected):
    """OpenMP reads OMP_WAIT_POLICY once, when torch loads it: the node's default must be in place by
    then, and a user's own setting wins."""
    import os

    full = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env
    out = subprocess.run([sys.executable, "-c", _TORCH_SEES], capture_output=True, text=True, timeout=120, env=full)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == expected
