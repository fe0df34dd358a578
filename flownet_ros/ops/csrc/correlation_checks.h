// Argument checks shared by the CPU op and the CUDA binding (torch side only; the kernels never see ATen).
#pragma once

#include <ATen/ATen.h>

#include "correlation_geometry.h"

namespace flownet_corr {

inline Geometry check_inputs(const at::Tensor& f1, const at::Tensor& f2, int64_t max_disp, int64_t stride2,
                             int64_t kernel_size, int64_t stride1) {
  TORCH_CHECK(f1.dim() == 4 && f2.dim() == 4, "correlation: f1 and f2 must be [B, C, H, W], got ",
              f1.sizes(), " and ", f2.sizes());
  TORCH_CHECK(f1.sizes() == f2.sizes(), "correlation: f1 and f2 must have the same shape, got ", f1.sizes(),
              " and ", f2.sizes());
  TORCH_CHECK(f1.scalar_type() == f2.scalar_type(), "correlation: f1 and f2 must have the same dtype, got ",
              f1.scalar_type(), " and ", f2.scalar_type());
  TORCH_CHECK(f1.device() == f2.device(), "correlation: f1 and f2 must be on the same device, got ",
              f1.device(), " and ", f2.device());
  TORCH_CHECK(at::isFloatingType(f1.scalar_type()), "correlation: floating-point inputs required, got ",
              f1.scalar_type());
  Geometry g;
  const int code = make_geometry(f1.size(0), f1.size(1), f1.size(2), f1.size(3), max_disp, stride2,
                                 kernel_size, stride1, &g);
  TORCH_CHECK(code == 0, "correlation: ", geometry_error(code));
  return g;
}

inline void check_grad_output(const at::Tensor& grad, const Geometry& g) {
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == g.B && grad.size(1) == g.D * g.D && grad.size(2) == g.Ho &&
                  grad.size(3) == g.Wo,
              "correlation_backward: grad_output must be [", g.B, ", ", g.D * g.D, ", ", g.Ho, ", ", g.Wo,
              "], got ", grad.sizes());
}

}  // namespace flownet_corr
