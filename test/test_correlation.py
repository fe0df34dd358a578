"""Correlation op: reference semantics, compiled CPU kernel vs reference, gradcheck, opcheck, torch.compile.

The compiled CPU extension is required here: if it cannot be built these tests FAIL (only CUDA is
optional, see test_correlation_cuda.py).
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO, rand_pair

from flownet_ros.ops import correlation, correlation_backend, correlation_reference, correlation_status
from flownet_ros.ops.correlation import compiled_available
from flownet_ros.ops.shapes import output_shape

# (shape [B, C, H, W], max_displacement, stride2, kernel_size, stride1)
CONFIGS = [
    ((1, 3, 5, 7), 3, 1, 1, 1),
    ((2, 8, 13, 17), 6, 2, 1, 1),       # batch > 1, odd sizes
    ((1, 16, 12, 20), 20, 2, 1, 1),     # FlowNetC setting (441 channels), displacements beyond the image
    ((2, 19, 9, 11), 4, 2, 3, 1),       # 3x3 patch, C not a multiple of the vector width
    ((1, 5, 10, 9), 2, 1, 3, 2),        # stride1 = 2
    ((3, 4, 7, 6), 5, 3, 1, 3),         # max_displacement not a multiple of stride2, stride1 = 3
    ((1, 37, 6, 8), 0, 1, 1, 1),        # D = 1
    ((1, 33, 4, 5), 2, 1, 5, 1),        # 5x5 patch larger than parts of the image
]
IDS = [f"{'x'.join(map(str, s))}-d{d}-s{s2}-k{k}-s1{s1}" for s, d, s2, k, s1 in CONFIGS]


def loop_correlation(f1, f2, md, s2, k, s1):
    """Direct transcription of the correlation formula (docs/correlation.md; numpy, float64): the oracle for the
    reference."""
    a, b = f1.detach().double().numpy(), f2.detach().double().numpy()
    bs, c, h, w = a.shape
    r, kr = md // s2, (k - 1) // 2
    d = 2 * r + 1
    ho, wo = -(-h // s1), -(-w // s1)
    out = np.zeros((bs, d * d, ho, wo))
    for yo in range(ho):
        for xo in range(wo):
            for iy in range(d):
                for ix in range(d):
                    dy, dx = (iy - r) * s2, (ix - r) * s2
                    acc = np.zeros(bs)
                    for oy in range(-kr, kr + 1):
                        for ox in range(-kr, kr + 1):
                            y1, x1 = yo * s1 + oy, xo * s1 + ox
                            y2, x2 = y1 + dy, x1 + dx
                            if 0 <= y1 < h and 0 <= x1 < w and 0 <= y2 < h and 0 <= x2 < w:
                                acc += (a[:, :, y1, x1] * b[:, :, y2, x2]).sum(1)
                    out[:, iy * d + ix, yo, xo] = acc / (k * k * c)
    return torch.from_numpy(out)


@pytest.fixture(scope="module")
def cpu_op():
    """The compiled CPU op; FAILS (never skips) when the extension is unavailable."""
    if not compiled_available("cpu"):
        pytest.fail(f"compiled CPU correlation extension unavailable: {correlation_status()}")
    return torch.ops.flownet_ros.correlation


@pytest.mark.parametrize("cfg", CONFIGS[:6], ids=IDS[:6])
def test_reference_matches_direct_loop(cfg):
    shape, md, s2, k, s1 = cfg
    f1, f2 = rand_pair(shape)
    ref = correlation_reference(f1, f2, md, s2, k, s1)
    assert ref.shape == output_shape(shape, md, s2, k, s1)
    torch.testing.assert_close(ref, loop_correlation(f1, f2, md, s2, k, s1), rtol=1e-12, atol=1e-12)


def test_channel_order_is_y_major_and_flownetc_shape(cpu_op):
    # f2 is f1 shifted by (dy, dx) = (+4, -6) px: f2(p) = f1(p - d), so f1(p) matches f2(p + d).
    f1 = torch.randn(1, 32, 24, 32, dtype=torch.float64)
    f2 = torch.roll(f1, shifts=(4, -6), dims=(2, 3))
    out = correlation(f1, f2)  # FlowNetC defaults: d=20, stride2=2, k=1 -> 441 channels
    assert out.shape == (1, 441, 24, 32)
    best = out[0, :, 8:16, 10:20].mean((1, 2)).argmax().item()
    assert best == (4 // 2 + 10) * 21 + (-6 // 2 + 10)
    # Displaced positions outside the image contribute 0: dy = -20 at row 0 is all outside.
    assert torch.count_nonzero(out[0, 0, :20]) == 0


def test_backend_is_compiled(cpu_op):
    assert correlation_backend() in ("cpu-compiled", "cuda"), correlation_status()


def _loaded_extension_libraries():
    """Paths of the correlation libraries mapped into this process (Linux /proc/self/maps)."""
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "flownet_ros_corr_" in line}
    return sorted(p for p in paths if p.endswith(".so"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps and ELF symbol names")
def test_extension_is_built_with_openmp(cpu_op):
    # ATen's at::parallel_for only fans out when the caller was compiled with -fopenmp; the compiled code
    # then imports libgomp's GOMP_parallel. Without it, every correlation runs on one core.
    libraries = _loaded_extension_libraries()
    assert libraries, "no flownet_ros correlation library is loaded"
    for path in libraries:
        assert b"GOMP_parallel\0" in Path(path).read_bytes(), f"{path} was built without OpenMP"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_compiled_forward_backward_match_reference(cpu_op, cfg, dtype):
    shape, md, s2, k, s1 = cfg
    f1, f2 = rand_pair(shape, dtype, requires_grad=True)
    out = correlation(f1, f2, md, s2, k, s1)
    ref = correlation_reference(f1, f2, md, s2, k, s1)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out, ref, **tol)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (f1, f2), grad)
    want = torch.autograd.grad(ref, (f1, f2), grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, **tol)


def test_non_contiguous_inputs(cpu_op):
    base1, base2 = rand_pair((2, 12, 9, 14), torch.float32)
    f1 = base1[:, ::2].requires_grad_(False)                    # channel-strided view
    f2 = base2.contiguous(memory_format=torch.channels_last)[:, 1::2]
    f1 = f1.clone().requires_grad_(True).transpose(2, 3).contiguous().transpose(2, 3)  # non-contiguous leaf view
    assert not f1.is_contiguous() and not f2.is_contiguous()
    f2 = f2.detach().requires_grad_(True)
    out = correlation(f1, f2, 4, 2)
    ref = correlation_reference(f1, f2, 4, 2)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    grad = torch.randn(out.shape).transpose(2, 3).contiguous().transpose(2, 3)  # non-contiguous grad
    got = torch.autograd.grad(out, (f1, f2), grad)
    want = torch.autograd.grad(ref, (f1, f2), grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_computed_in_float32(cpu_op, dtype):
    f1, f2 = rand_pair((1, 16, 6, 7), torch.float32)
    out = correlation(f1.to(dtype), f2.to(dtype), 4, 2)
    assert out.dtype == dtype
    ref = correlation_reference(f1.to(dtype).float(), f2.to(dtype).float(), 4, 2)
    torch.testing.assert_close(out.float(), ref, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("cfg", [((1, 3, 4, 5), 2, 1, 1, 1), ((2, 2, 5, 4), 2, 2, 3, 2)])
def test_gradcheck_float64(cpu_op, cfg):
    shape, md, s2, k, s1 = cfg
    f1, f2 = rand_pair(shape, torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: cpu_op(a, b, md, s2, k, s1), (f1, f2))


@pytest.mark.parametrize("cfg", [((2, 5, 6, 7), 3, 1, 1, 1), ((1, 4, 7, 5), 4, 2, 3, 2)])
def test_opcheck(cpu_op, cfg):
    shape, md, s2, k, s1 = cfg
    f1, f2 = rand_pair(shape, torch.float32, requires_grad=True)
    torch.library.opcheck(torch.ops.flownet_ros.correlation.default, (f1, f2, md, s2, k, s1))
    grad = torch.randn(output_shape(shape, md, s2, k, s1))
    torch.library.opcheck(torch.ops.flownet_ros.correlation_backward.default,
                          (grad, f1.detach(), f2.detach(), md, s2, k, s1))


def check_compiled_matches_eager(f1, f2):
    """torch.compile (aot_eager, fullgraph) of correlation + loss gives eager values and gradients."""

    def fn(a, b):
        return torch.nn.functional.leaky_relu(correlation(a, b, 4, 2), 0.1).square().sum()

    compiled = torch.compile(fn, backend="aot_eager", fullgraph=True)
    got = compiled(f1, f2)
    got_grads = torch.autograd.grad(got, (f1, f2))
    want = fn(f1, f2)
    want_grads = torch.autograd.grad(want, (f1, f2))
    torch.testing.assert_close(got, want)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w)


def test_torch_compile_smoke(cpu_op):
    check_compiled_matches_eager(*rand_pair((2, 8, 9, 10), torch.float32, requires_grad=True))


def test_bad_arguments_raise():
    f = torch.zeros(1, 2, 3, 4)
    with pytest.raises(ValueError, match="same shape"):
        correlation(f, torch.zeros(1, 2, 3, 5))
    with pytest.raises(ValueError, match="odd kernel_size"):
        correlation(f, f, 2, 1, kernel_size=2)
    with pytest.raises(ValueError, match="floating-point"):
        correlation(f.long(), f.long())


def test_op_checks_in_cpp(cpu_op):
    f = torch.zeros(1, 2, 3, 4)
    with pytest.raises(RuntimeError, match="kernel_size must be odd"):
        cpu_op(f, f, 2, 1, 2, 1)
    with pytest.raises(RuntimeError, match="same shape"):
        cpu_op(f, torch.zeros(1, 2, 3, 3), 2, 1, 1, 1)


def test_flownetc_runs_with_compiled_op(cpu_op, monkeypatch):
    from flownet_ros.models import flownet

    torch.manual_seed(0)
    model = flownet.FlowNetC(width=0.25).train()
    img1, img2 = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)
    flows = model(img1, img2)
    loss = sum(f.square().mean() for f in flows)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    monkeypatch.setattr(flownet, "correlation", correlation_reference)
    ref_flows = model(img1, img2)
    sum(f.square().mean() for f in ref_flows).backward()
    for a, b in zip(flows, ref_flows):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for a, p in zip(grads, model.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-3, atol=1e-5)


def _run_python(code, **env):
    full_env = dict(os.environ, PYTHONPATH=str(REPO), **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, cwd=REPO, timeout=300)


def test_env_var_forces_reference():
    res = _run_python("""
        import torch
        from flownet_ros.ops import correlation, correlation_backend
        correlation(torch.ones(1, 2, 3, 3), torch.ones(1, 2, 3, 3), 2, 1)
        print(correlation_backend())
        """, FLOWNET_ROS_CORRELATION_BACKEND="reference")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "reference"
    assert "RuntimeWarning" not in res.stderr


def test_failed_build_falls_back_with_one_warning(tmp_path):
    # A fresh build folder and a compiler whose every compilation fails (a real compiler fed an #error
    # header): the op must still work, on the reference, after exactly one warning that says why.
    import shutil

    (tmp_path / "broken.h").write_text('#error "simulated compiler failure"\n')
    cxx = tmp_path / "cxx.sh"
    real = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")
    cxx.write_text(f'#!/bin/sh\nexec {real} -include {tmp_path / "broken.h"} "$@"\n')
    cxx.chmod(0o755)
    res = _run_python("""
        import warnings, torch
        warnings.simplefilter("always")
        with warnings.catch_warnings(record=True) as caught:
            from flownet_ros.ops import correlation, correlation_backend, correlation_reference
            a, b = torch.randn(1, 3, 5, 6), torch.randn(1, 3, 5, 6)
            out = correlation(a, b, 2, 1)
            correlation(a, b, 2, 1)
            assert torch.allclose(out, correlation_reference(a, b, 2, 1))
        msgs = [str(w.message) for w in caught if "correlation" in str(w.message)]
        print(correlation_backend())
        print(len(msgs))
        print(msgs[0] if msgs else "")
        """, FLOWNET_ROS_BUILD_DIR=str(tmp_path / "build"), CXX=str(cxx), FLOWNET_ROS_CORRELATION_BACKEND="auto")
    assert res.returncode == 0, res.stderr
    backend, count, message = res.stdout.strip().splitlines()[:3]
    assert backend == "reference"
    assert count == "1"
    assert "unavailable" in message and "simulated compiler failure" in message  # says why
    assert "flownet_ros.ops.build --verbose" in message
    # the build announced itself on stderr with its reason, and left no library under the final name
    assert "compiling the correlation extension" in res.stderr and "no earlier build in" in res.stderr
    assert not list((tmp_path / "build").glob("*/*.so")) and not list((tmp_path / "build").glob("*/build-*"))


def test_forced_backend_failure_raises(tmp_path):
    res = _run_python("""
        import torch
        from flownet_ros.ops import correlation
        correlation(torch.ones(1, 2, 3, 3), torch.ones(1, 2, 3, 3), 2, 1)
        """, FLOWNET_ROS_BUILD_DIR=str(tmp_path), CXX="false", FLOWNET_ROS_CORRELATION_BACKEND="cpu-compiled")
    assert res.returncode != 0
    assert "cpu-compiled but the CPU extension failed to build" in res.stderr


def test_cuda_kernels_under_cpu_emulation(tmp_path):
    """The CUDA kernels' logic (indexing, shared-memory staging, barriers) without a GPU: the .cu file is
    compiled as C++ against csrc/emulation (every CUDA thread a std::thread, __syncthreads a barrier)
    and checked against a direct transcription of the correlation and its gradients."""
    import re
    import shutil

    csrc = os.path.join(REPO, "flownet_ros", "ops", "csrc")
    with open(os.path.join(csrc, "correlation_cuda_kernels.cu"), encoding="utf-8") as fh:
        src = fh.read()
    src = src.replace("extern __shared__ __align__(16) unsigned char smem_raw[];",
                      "unsigned char* smem_raw = emu::smem;")
    src, launches = re.subn(r"(corr_\w+_kernel<[^>]*>)<<<(.*?)>>>\((.*?)\);", r"emu::launch(\2, [&]{ \1(\3); });",
                            src, flags=re.S)
    assert launches == 3 and "extern __shared__" not in src, "kernel file layout changed: update this test"
    (tmp_path / "kernels_emu.cpp").write_text(src, encoding="utf-8")
    cxx = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")
    assert cxx, "no C++ compiler (one is needed for the extension too)"
    exe = tmp_path / "harness"
    build = subprocess.run([cxx, "-std=c++20", "-O1", "-pthread", f"-I{csrc}/emulation", f"-I{tmp_path}", f"-I{csrc}",
                            os.path.join(csrc, "emulation", "harness.cpp"), "-o", str(exe)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    res = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "ALL OK" in res.stdout, res.stdout + res.stderr


@pytest.mark.skipif(__import__("shutil").which("nvcc") is None, reason="nvcc not installed (CUDA compile check)")
def test_cuda_kernels_compile_with_nvcc(tmp_path):
    """`nvcc -c` of the plain .cu file: needs only the CUDA toolkit, no GPU and no CUDA torch."""
    csrc = os.path.join(REPO, "flownet_ros", "ops", "csrc")
    res = subprocess.run(["nvcc", "-c", "-O3", "-std=c++17", f"-I{csrc}",
                          os.path.join(csrc, "correlation_cuda_kernels.cu"),
                          "-o", str(tmp_path / "kernels.o")], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "kernels.o").stat().st_size > 0


def test_torch_export_keeps_the_op(cpu_op):
    class Corr(torch.nn.Module):
        def forward(self, a, b):
            return torch.nn.functional.leaky_relu(correlation(a, b, 4, 2), 0.1)

    a, b = rand_pair((1, 8, 10, 12), torch.float32)
    ep = torch.export.export(Corr(), (a, b))
    targets = [n.target for n in ep.graph.nodes if n.op == "call_function"]
    assert torch.ops.flownet_ros.correlation.default in targets
    torch.testing.assert_close(ep.module()(a, b), Corr()(a, b))


def test_equals_spatial_correlation_sampler_where_installed():
    """The documented equivalence (flownet.md section 3): spatial_correlation_sample(kernel_size=1,
    patch_size=21, dilation_patch=2) reshaped to [B, 441, H, W] and divided by C. Through the benchmark's
    wrapper, so the CPU benchmark rows compare the same function. Skipped where the package is missing
    (it does not build against a CPU-only torch without patching its sources)."""
    from flownet_ros.bench.correlation import RIVALS

    try:
        fn = RIVALS["spatial-correlation-sampler"](20, 2)
    except ImportError as exc:
        pytest.skip(f"spatial-correlation-sampler not installed: {exc}")
    f1, f2 = rand_pair((2, 16, 11, 23), torch.float64)
    torch.testing.assert_close(fn(f1, f2), correlation_reference(f1, f2, 20, 2, 1, 1), rtol=1e-10, atol=1e-12)
