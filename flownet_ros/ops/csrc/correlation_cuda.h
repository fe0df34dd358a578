// Launchers of the CUDA correlation kernels. Plain C++: no torch and no CUDA headers, so the binding
// (which includes torch) and the kernels (which include only CUDA) compile independently.
//
// Layouts (all contiguous): f1, f2 NHWC [B, H, W, C]; out and grad_out NCHW [B, D*D, Ho, Wo];
// grad_f1, grad_f2 NHWC [B, H, W, C]. Accumulation is float32 (float64 for double inputs).
// Every launcher runs on `stream` (a cudaStream_t) and returns 0 or a cudaError_t code.
#pragma once

#include <cstdint>

#include "correlation_geometry.h"

namespace flownet_corr {

enum class DType : int { F32 = 0, F16 = 1, BF16 = 2, F64 = 3 };

int launch_correlation_forward(const Geometry& g, DType dtype, const void* f1, const void* f2, void* out,
                               void* stream);

int launch_correlation_backward(const Geometry& g, DType dtype, const void* grad_out, const void* f1,
                                const void* f2, void* grad_f1, void* grad_f2, void* stream);

// Human-readable message of a code returned by the launchers.
const char* correlation_cuda_error(int code);

}  // namespace flownet_corr
