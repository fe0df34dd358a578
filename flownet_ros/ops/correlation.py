"""FlowNet correlation layer: public entry point, backend selection, and the pure-PyTorch reference.

Semantics (the Caffe correlation layer of FlowNet, as flownet2-pytorch and spatial-correlation-sampler
compute it): for f1, f2 of shape [B, C, H, W],
``out[b, iy*D + ix, yo, xo] = sum_o sum_c f1[b, c, p+o] * f2[b, c, p+o+d] / (k*k*C)`` with
``p = (yo, xo) * stride1``, ``d = ((iy - r) * stride2, (ix - r) * stride2)``, ``r = max_displacement //
stride2``, ``D = 2r + 1``, patch offsets ``o`` in ``[-(k-1)/2, (k-1)/2]^2`` (k = kernel_size, odd) and zero
contribution from positions outside the image. Output [B, D*D, ceil(H/stride1), ceil(W/stride1)].
FlowNetC (d=20, stride2=2, k=1, stride1=1) gives 441 channels at the input resolution.

Backends, chosen once per process (see :func:`correlation_backend`):
``cuda`` (compiled CUDA + CPU kernels), ``cpu-compiled`` (compiled CPU kernels; CUDA tensors use the
reference), ``reference`` (this file's PyTorch implementation). ``FLOWNET_ROS_CORRELATION_BACKEND``
(``auto`` | ``cuda`` | ``cpu-compiled`` | ``reference``) forces one; a forced backend that cannot be
built raises instead of falling back.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

LOG = logging.getLogger("flownet_ros.ops")
ENV_BACKEND = "FLOWNET_ROS_CORRELATION_BACKEND"
CORRELATION_BACKENDS = ("cuda", "cpu-compiled", "reference")


def check_correlation_args(f1: torch.Tensor, f2: torch.Tensor, max_displacement: int, stride2: int,
                           kernel_size: int, stride1: int) -> None:
    """Raise ValueError for shapes or settings the correlation is not defined for."""
    if f1.dim() != 4 or f1.shape != f2.shape:
        raise ValueError(f"correlation: f1 and f2 must both be [B, C, H, W] of the same shape, "
                         f"got {tuple(f1.shape)} and {tuple(f2.shape)}")
    if f1.dtype != f2.dtype or f1.device != f2.device:
        raise ValueError(f"correlation: f1 and f2 must share dtype and device, got {f1.dtype}/{f1.device} "
                         f"and {f2.dtype}/{f2.device}")
    if not f1.is_floating_point():
        raise ValueError(f"correlation: floating-point inputs required, got {f1.dtype}")
    if max_displacement < 0 or stride2 < 1 or stride1 < 1 or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError("correlation: need max_displacement >= 0, stride2 >= 1, stride1 >= 1 and an odd "
                         f"kernel_size >= 1, got max_displacement={max_displacement}, stride2={stride2}, "
                         f"kernel_size={kernel_size}, stride1={stride1}")


def correlation_reference(f1: torch.Tensor, f2: torch.Tensor, max_displacement: int = 20,
                          stride2: int = 2, kernel_size: int = 1, stride1: int = 1) -> torch.Tensor:
    """Pure-PyTorch correlation (shift and multiply, autograd for the backward).

    f1, f2: [B, C, H, W]. Returns [B, D*D, H', W'] (module docstring). Used for testing and as the
    last fallback; slow (one full multiply-and-sum per displacement).
    """
    check_correlation_args(f1, f2, max_displacement, stride2, kernel_size, stride1)
    b, c, h, w = f1.shape
    r = max_displacement // stride2
    k = (kernel_size - 1) // 2
    # Zero padding by k around f1 and by (r * stride2 + k) around f2: padded index p <-> image index p - k.
    reach = r * stride2 + k
    f1p = F.pad(f1, (k, k, k, k))
    f2p = F.pad(f2, (reach, reach, reach, reach))
    outs = []
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            oy, ox = reach - k + dy * stride2, reach - k + dx * stride2
            s = (f1p * f2p[:, :, oy:oy + h + 2 * k, ox:ox + w + 2 * k]).sum(1, keepdim=True)
            if k > 0:  # patch sum: k x k box filter over the zero-padded products
                s = F.avg_pool2d(s, kernel_size, stride=1) * (kernel_size * kernel_size)
            outs.append(s[:, :, ::stride1, ::stride1])
    return torch.cat(outs, 1) / (kernel_size * kernel_size * c)


# ---- backend state ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _State:
    cpu: bool                      # compiled CPU kernels registered
    cuda: bool                     # compiled CUDA kernels registered
    requested: str                 # value of the env var ('auto' when unset)
    reason: Optional[str] = None   # why something is missing (None when everything wanted was built)

    @property
    def backend(self) -> str:
        return "cuda" if self.cuda else "cpu-compiled" if self.cpu else "reference"


_STATE: Optional[_State] = None
_LOCK = threading.Lock()


def _short_error(exc: BaseException, limit: int = 3) -> str:
    """A short reason for one warning: the exception's first line (without the compiler command) plus the
    last few compiler ``error:`` lines."""
    text = str(exc).strip() or type(exc).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    head = lines[0].split(": [1/")[0] if lines else text
    head = head if len(head) <= 160 else head[:157] + "..."
    errors = []
    for ln in lines[1:]:
        if "error:" in ln.lower() and ln not in errors:
            errors.append(ln if len(ln) <= 200 else ln[:197] + "...")
    if not errors and len(lines) > 1:
        errors = [lines[-1][:200]]
    return "; ".join([head] + errors[-limit:])


def _register_python_parts() -> None:
    """Fake (meta) implementations and autograd for the C++-registered ops."""
    from flownet_ros.ops import _registration  # noqa: F401  (registers on import, once)


def _select() -> _State:
    from flownet_ros.ops import build

    requested = os.environ.get(ENV_BACKEND, "auto").strip().lower() or "auto"
    if requested not in ("auto",) + CORRELATION_BACKENDS:
        raise ValueError(f"{ENV_BACKEND}={requested!r}: expected one of auto, {', '.join(CORRELATION_BACKENDS)}")
    if requested == "reference":
        return _State(False, False, requested, f"{ENV_BACKEND}=reference")
    verbose = os.environ.get("FLOWNET_ROS_BUILD_VERBOSE", "") not in ("", "0")
    want_cuda = requested in ("auto", "cuda") and build.cuda_buildable()
    if requested == "cuda" and not want_cuda:
        raise RuntimeError(f"{ENV_BACKEND}=cuda but CUDA cannot be used (torch.cuda.is_available()="
                           f"{torch.cuda.is_available()}, torch.version.cuda={torch.version.cuda}, "
                           "or no CUDA toolkit/nvcc found)")
    cuda_error = None
    if want_cuda:
        try:
            build.load_extension(with_cuda=True, verbose=verbose)
            _register_python_parts()
            return _State(True, True, requested)
        except Exception as exc:  # compiler/loader failure: report it, try CPU only
            if requested == "cuda":
                raise RuntimeError(f"{ENV_BACKEND}=cuda but the CUDA extension failed to build: "
                                   f"{_short_error(exc)}") from exc
            cuda_error = _short_error(exc)
    try:
        build.load_extension(with_cuda=False, verbose=verbose)
        _register_python_parts()
    except Exception as exc:
        if requested == "cpu-compiled":
            raise RuntimeError(f"{ENV_BACKEND}=cpu-compiled but the CPU extension failed to build: "
                               f"{_short_error(exc)}") from exc
        why = f"CPU build failed: {_short_error(exc)}"
        if cuda_error:
            why = f"CUDA build failed: {cuda_error}; {why}"
        return _State(False, False, requested, why)
    if cuda_error:
        return _State(True, False, requested, f"CUDA build failed: {cuda_error}")
    return _State(True, False, requested, None if requested == "cpu-compiled" or not torch.cuda.is_available()
                  else "CUDA toolkit (nvcc) not found")


@torch.compiler.disable
def _load_state() -> _State:
    global _STATE
    with _LOCK:
        if _STATE is None:
            state = _select()
            if state.backend == "reference" and state.requested != "reference":
                warnings.warn(f"flownet_ros: the compiled correlation extension is unavailable ({state.reason}); "
                              "using the slow pure-PyTorch reference. Run `python -m flownet_ros.ops.build "
                              "--verbose` for the full compiler output.", RuntimeWarning, stacklevel=3)
            elif state.reason and state.requested == "auto" and torch.cuda.is_available():
                warnings.warn(f"flownet_ros: CUDA correlation kernels unavailable ({state.reason}); CUDA tensors "
                              "use the pure-PyTorch reference, CPU tensors the compiled kernel.",
                              RuntimeWarning, stacklevel=3)
            LOG.info("correlation backend: %s%s", state.backend, f" ({state.reason})" if state.reason else "")
            _STATE = state
    return _STATE


def _state() -> _State:
    return _STATE if _STATE is not None else _load_state()


def correlation_backend() -> str:
    """Backend in use: 'cuda' | 'cpu-compiled' | 'reference' (builds or loads the extension on first call)."""
    return _state().backend


def correlation_status() -> str:
    """One line describing the backend and, if something is missing, why."""
    st = _state()
    devices = ", ".join(d for d, ok in (("cpu", st.cpu), ("cuda", st.cuda)) if ok) or "none"
    line = f"backend={st.backend} compiled_devices={devices} requested={st.requested}"
    return line + (f" note={st.reason}" if st.reason else "")


def compiled_available(device_type: str) -> bool:
    """Whether compiled kernels serve tensors on this device type ('cpu' or 'cuda')."""
    st = _state()
    return st.cpu if device_type == "cpu" else st.cuda if device_type == "cuda" else False


def correlation(f1: torch.Tensor, f2: torch.Tensor, max_displacement: int = 20, stride2: int = 2,
                kernel_size: int = 1, stride1: int = 1) -> torch.Tensor:
    """FlowNet correlation of f1, f2 [B, C, H, W] -> [B, D*D, H', W'] (module docstring), differentiable.

    Runs the compiled kernel for the tensors' device when available, else the reference.
    """
    check_correlation_args(f1, f2, max_displacement, stride2, kernel_size, stride1)
    st = _state()
    dev = f1.device.type
    if (dev == "cpu" and st.cpu) or (dev == "cuda" and st.cuda):
        return torch.ops.flownet_ros.correlation(f1, f2, int(max_displacement), int(stride2), int(kernel_size),
                                                 int(stride1))
    return correlation_reference(f1, f2, max_displacement, stride2, kernel_size, stride1)
