"""CUDA correlation kernels vs the reference (skipped without CUDA; on a CUDA machine the CUDA build must
work, otherwise these tests FAIL). Run by scripts/gpu_check.sh."""

import pytest
import torch
from helpers import rand_pair

from flownet_ros.ops import correlation, correlation_backend, correlation_reference, correlation_status
from flownet_ros.ops.correlation import compiled_available
from flownet_ros.ops.shapes import output_shape

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# (shape [B, C, H, W], max_displacement, stride2, kernel_size, stride1)
CONFIGS = [
    ((1, 3, 5, 7), 3, 1, 1, 1),
    ((2, 8, 13, 17), 6, 2, 1, 1),
    ((2, 64, 24, 40), 20, 2, 1, 1),     # FlowNetC setting, tile boundary (40 = 32 + 8)
    ((2, 19, 9, 11), 4, 2, 3, 1),
    ((1, 5, 10, 9), 2, 1, 3, 2),
    ((3, 4, 7, 6), 5, 3, 1, 3),
    ((1, 37, 6, 8), 0, 1, 1, 1),
    ((1, 33, 4, 5), 2, 1, 5, 1),
    ((1, 70, 5, 70), 40, 1, 1, 1),      # D = 81: several displacement groups, long staged segments
]
IDS = [f"{'x'.join(map(str, s))}-d{d}-s{s2}-k{k}-s1{s1}" for s, d, s2, k, s1 in CONFIGS]


@pytest.fixture(scope="module")
def cuda_op():
    if not compiled_available("cuda"):
        pytest.fail(f"CUDA correlation kernels unavailable on a CUDA machine: {correlation_status()}")
    return torch.ops.flownet_ros.correlation


def rand_pair_cuda(shape, dtype, seed=0, requires_grad=False):
    return rand_pair(shape, dtype, seed, requires_grad, device="cuda")


def fwd_bwd(fn, f1, f2, cfg, grad):
    _, md, s2, k, s1 = cfg
    a = f1.detach().requires_grad_(True)
    b = f2.detach().requires_grad_(True)
    out = fn(a, b, md, s2, k, s1)
    ga, gb = torch.autograd.grad(out, (a, b), grad.to(out.dtype))
    return out, ga, gb


def test_backend_is_cuda(cuda_op):
    assert correlation_backend() == "cuda", correlation_status()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_matches_reference(cuda_op, cfg, dtype):
    f1, f2 = rand_pair_cuda(cfg[0], dtype)
    grad = torch.randn(output_shape(*cfg), device="cuda", dtype=torch.float64)
    got = fwd_bwd(correlation, f1, f2, cfg, grad)
    want = fwd_bwd(correlation_reference, f1.double(), f2.double(), cfg, grad)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    for g, w in zip(got, want):
        assert g.dtype == dtype
        torch.testing.assert_close(g.double(), w, **tol)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("cfg", [CONFIGS[1], CONFIGS[2], CONFIGS[3]], ids=[IDS[1], IDS[2], IDS[3]])
def test_half_precision_accumulates_in_float32(cuda_op, cfg, dtype):
    f1, f2 = rand_pair_cuda(cfg[0], dtype)
    grad = torch.randn(output_shape(*cfg), device="cuda", dtype=torch.float64)
    got = fwd_bwd(correlation, f1, f2, cfg, grad.to(dtype))
    # Same rounded inputs and gradient, exact arithmetic: only output rounding (and fp32 sums) differ.
    want = fwd_bwd(correlation_reference, f1.double(), f2.double(), cfg, grad.to(dtype).double())
    tol = dict(rtol=1e-2, atol=2e-3) if dtype == torch.float16 else dict(rtol=2e-2, atol=1e-2)
    for g, w in zip(got, want):
        assert g.dtype == dtype and torch.isfinite(g).all()
        torch.testing.assert_close(g.double(), w, **tol)


def test_half_precision_large_channel_count(cuda_op):
    # C = 1024 of values ~ 4: per-channel fp16 sums would lose ~3 digits; fp32 accumulation does not.
    cfg = ((1, 1024, 6, 9), 2, 1, 1, 1)
    f1, f2 = rand_pair_cuda(cfg[0], torch.float16)
    f1, f2 = f1 + 4, f2 + 4
    out = correlation(f1, f2, 2, 1)
    ref = correlation_reference(f1.double(), f2.double(), 2, 1)
    torch.testing.assert_close(out.double(), ref, rtol=2e-3, atol=1e-3)


def test_non_contiguous_inputs_and_grad(cuda_op):
    base1, base2 = rand_pair_cuda((2, 12, 9, 14), torch.float32)
    f1 = base1[:, ::2].detach().requires_grad_(True)
    f2 = base2.contiguous(memory_format=torch.channels_last)[:, 1::2].detach().requires_grad_(True)
    out = correlation(f1, f2, 4, 2)
    ref = correlation_reference(f1, f2, 4, 2)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    grad = torch.randn(out.shape[::-1], device="cuda").permute(3, 2, 1, 0)  # non-contiguous
    got = torch.autograd.grad(out, (f1, f2), grad)
    want = torch.autograd.grad(ref, (f1, f2), grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


def test_batch_split_over_grid_limit(cuda_op):
    # B * D > 65535 (forward grid z) and B > 65535 (backward grid z): several launches.
    cfg = ((70000, 3, 1, 2), 1, 1, 1, 1)
    f1, f2 = rand_pair_cuda(cfg[0], torch.float32)
    grad = torch.randn(output_shape(*cfg), device="cuda", dtype=torch.float64)
    got = fwd_bwd(correlation, f1, f2, cfg, grad)
    want = fwd_bwd(correlation_reference, f1, f2, cfg, grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_runs_on_current_stream(cuda_op):
    f1, f2 = rand_pair_cuda((2, 32, 16, 24), torch.float32)
    ref = correlation_reference(f1 * 2, f2, 4, 2)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        if hasattr(torch.cuda, "_sleep"):
            torch.cuda._sleep(50_000_000)  # keep the side stream busy: wrong-stream kernels would race
        x = f1 * 2
        out = correlation(x, f2, 4, 2)
    side.synchronize()
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cfg", [((1, 3, 4, 5), 2, 1, 1, 1), ((2, 2, 5, 4), 2, 2, 3, 2)])
def test_gradcheck_float64(cuda_op, cfg):
    shape, md, s2, k, s1 = cfg
    f1, f2 = rand_pair_cuda(shape, torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: cuda_op(a, b, md, s2, k, s1), (f1, f2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_opcheck(cuda_op, dtype):
    f1, f2 = rand_pair_cuda((2, 5, 6, 7), dtype, requires_grad=True)
    torch.library.opcheck(torch.ops.flownet_ros.correlation.default, (f1, f2, 3, 1, 1, 1))
    grad = torch.randn(output_shape((2, 5, 6, 7), 3, 1, 1, 1), device="cuda", dtype=dtype)
    torch.library.opcheck(torch.ops.flownet_ros.correlation_backward.default,
                          (grad, f1.detach(), f2.detach(), 3, 1, 1, 1))


def test_torch_compile_smoke(cuda_op):
    from test_correlation import check_compiled_matches_eager

    check_compiled_matches_eager(*rand_pair_cuda((2, 8, 9, 10), torch.float32, requires_grad=True))


def test_flownetc_cuda_matches_cpu(cuda_op):
    from flownet_ros.models import FlowNetC

    torch.manual_seed(0)
    model = FlowNetC(width=0.25).eval()
    img1, img2 = torch.randn(1, 3, 64, 96), torch.randn(1, 3, 64, 96)
    # cuDNN convolutions default to TF32 on Ampere and later; compare full fp32 with full fp32.
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        cpu = model(img1, img2)
        gpu = model.cuda()(img1.cuda(), img2.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", ["spatial-correlation-sampler", "localcorr"])
def test_benchmark_rivals_compute_the_same_function(cuda_op, name):
    """The GPU target compares timings with these packages; that only means something if they compute
    our function (same channel order, normalisation, borders). Skipped where the package is missing
    (gpu_check.sh installs them from .gpu_deps)."""
    from flownet_ros.bench.correlation import RIVALS

    try:
        fn = RIVALS[name](20, 2)
    except ImportError as exc:
        pytest.skip(f"{name} not installed: {exc}")
    f1, f2 = rand_pair_cuda((2, 32, 12, 20), torch.float32, requires_grad=True)
    grad = torch.randn(output_shape((2, 32, 12, 20), 20, 2, 1, 1), device="cuda")
    got = fwd_bwd(lambda a, b, *cfg: fn(a, b), f1, f2, ((2, 32, 12, 20), 20, 2, 1, 1), grad)
    want = fwd_bwd(correlation, f1, f2, ((2, 32, 12, 20), 20, 2, 1, 1), grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
