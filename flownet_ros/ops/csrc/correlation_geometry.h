// Index arithmetic of the FlowNet correlation layer, shared by the CPU (C++) and CUDA kernels.
//
// Conventions (reference section 3, Caffe/flownet2 layer with pad = max_displacement + kernel radius):
//   f1, f2: [B, C, H, W] (kernels read them as NHWC copies).
//   Output pixel (yo, xo) is centred at (yo * stride1, xo * stride1) of the input; Ho = ceil(H / stride1).
//   Displacement index (iy, ix) in [0, D)^2, D = 2 * (max_displacement / stride2) + 1, is the offset
//   ((iy - r) * stride2, (ix - r) * stride2), r = max_displacement / stride2; channel = iy * D + ix (y-major).
//   Patch offsets o in [-kr, kr]^2, kr = (kernel_size - 1) / 2 (kernel_size odd).
//   out(yo, xo, d) = sum_o sum_c f1(p + o, c) * f2(p + o + d, c) / (kernel_size^2 * C), p = (yo, xo) * stride1,
//   where positions outside the image contribute 0.
// Plain C++ (no torch, no CUDA headers): with nvcc every helper is also a __device__ function.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define CORR_HD __host__ __device__ __forceinline__
#else
#define CORR_HD inline
#endif

namespace flownet_corr {

struct Geometry {
  int64_t B, C, H, W;      // input size
  int64_t Ho, Wo;          // output spatial size
  int64_t max_disp, stride2, kernel_size, stride1;
  int64_t r;               // displacement radius in steps of stride2
  int64_t D;               // displacements per axis (2r + 1); output channels D * D
  int64_t kr;              // patch radius
};

CORR_HD int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Fills g; returns 0 when the arguments are valid, otherwise a code for corr_geometry_error().
CORR_HD int make_geometry(int64_t B, int64_t C, int64_t H, int64_t W, int64_t max_disp, int64_t stride2,
                          int64_t kernel_size, int64_t stride1, Geometry* g) {
  if (max_disp < 0) return 1;
  if (stride2 < 1) return 2;
  if (kernel_size < 1 || kernel_size % 2 == 0) return 3;
  if (stride1 < 1) return 4;
  if (B < 0 || C < 1 || H < 1 || W < 1) return 5;
  g->B = B; g->C = C; g->H = H; g->W = W;
  g->max_disp = max_disp; g->stride2 = stride2; g->kernel_size = kernel_size; g->stride1 = stride1;
  g->r = max_disp / stride2;
  g->D = 2 * g->r + 1;
  g->kr = (kernel_size - 1) / 2;
  g->Ho = ceil_div(H, stride1);
  g->Wo = ceil_div(W, stride1);
  return 0;
}

inline const char* geometry_error(int code) {
  switch (code) {
    case 1: return "max_displacement must be >= 0";
    case 2: return "stride2 must be >= 1";
    case 3: return "kernel_size must be odd and >= 1";
    case 4: return "stride1 must be >= 1";
    case 5: return "inputs must be [B, C, H, W] with C, H, W >= 1";
    default: return "ok";
  }
}

// Displacement (pixels) of displacement index i in [0, D).
CORR_HD int64_t disp_of(const Geometry& g, int64_t i) { return (i - g.r) * g.stride2; }

CORR_HD bool inside(int64_t v, int64_t n) { return v >= 0 && v < n; }

// Output coordinate whose patch offset o lands on input coordinate p: (p - o) / stride1 when that is an
// integer output index in [0, n_out), else -1. Used by the gather (race-free) backward passes.
CORR_HD int64_t out_index_for(int64_t p, int64_t o, int64_t stride1, int64_t n_out) {
  const int64_t t = p - o;
  if (t < 0 || t % stride1 != 0) return -1;
  const int64_t q = t / stride1;
  return q < n_out ? q : -1;
}

// 1 / (kernel_size^2 * C): the normalisation of every output value.
CORR_HD float norm_factor(const Geometry& g) {
  return 1.0f / static_cast<float>(g.kernel_size * g.kernel_size * g.C);
}

}  // namespace flownet_corr
