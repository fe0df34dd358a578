// Thin torch binding of the CUDA correlation kernels: checks, NHWC staging, current stream, dispatcher
// registration. The kernels themselves (correlation_cuda_kernels.cu) never include torch.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "correlation_checks.h"
#include "correlation_cuda.h"

namespace flownet_corr {
namespace {

DType dtype_of(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return DType::F32;
    case at::kDouble: return DType::F64;
    case at::kHalf: return DType::F16;
    case at::kBFloat16: return DType::BF16;
    default: TORCH_CHECK(false, "correlation (CUDA): unsupported dtype ", t);
  }
  return DType::F32;
}

at::Tensor nhwc(const at::Tensor& x) { return x.permute({0, 2, 3, 1}).contiguous(); }

void check_launch(int code, const char* what) {
  TORCH_CHECK(code == 0, "correlation (CUDA) ", what, " failed: ", correlation_cuda_error(code));
}

at::Tensor correlation_cuda(const at::Tensor& f1, const at::Tensor& f2, int64_t max_disp, int64_t stride2,
                            int64_t kernel_size, int64_t stride1) {
  const Geometry g = check_inputs(f1, f2, max_disp, stride2, kernel_size, stride1);
  TORCH_CHECK(f1.is_cuda(), "correlation (CUDA): inputs must be CUDA tensors");
  const c10::cuda::CUDAGuard guard(f1.device());
  const at::Tensor a = nhwc(f1), b = nhwc(f2);
  at::Tensor out = at::empty({g.B, g.D * g.D, g.Ho, g.Wo}, f1.options());
  check_launch(launch_correlation_forward(g, dtype_of(f1.scalar_type()), a.data_ptr(), b.data_ptr(),
                                          out.data_ptr(), c10::cuda::getCurrentCUDAStream().stream()),
               "forward");
  return out;
}

std::tuple<at::Tensor, at::Tensor> correlation_backward_cuda(const at::Tensor& grad, const at::Tensor& f1,
                                                             const at::Tensor& f2, int64_t max_disp,
                                                             int64_t stride2, int64_t kernel_size,
                                                             int64_t stride1) {
  const Geometry g = check_inputs(f1, f2, max_disp, stride2, kernel_size, stride1);
  check_grad_output(grad, g);
  TORCH_CHECK(f1.is_cuda() && grad.device() == f1.device(),
              "correlation_backward (CUDA): all tensors must be on the same CUDA device");
  const c10::cuda::CUDAGuard guard(f1.device());
  const at::Tensor a = nhwc(f1), b = nhwc(f2);
  const at::Tensor go = grad.to(f1.scalar_type()).contiguous();  // NCHW
  at::Tensor g1 = at::empty({g.B, g.H, g.W, g.C}, f1.options());
  at::Tensor g2 = at::empty({g.B, g.H, g.W, g.C}, f1.options());
  check_launch(launch_correlation_backward(g, dtype_of(f1.scalar_type()), go.data_ptr(), a.data_ptr(),
                                           b.data_ptr(), g1.data_ptr(), g2.data_ptr(),
                                           c10::cuda::getCurrentCUDAStream().stream()),
               "backward");
  return {g1.permute({0, 3, 1, 2}).contiguous(), g2.permute({0, 3, 1, 2}).contiguous()};
}

}  // namespace
}  // namespace flownet_corr

TORCH_LIBRARY_IMPL(flownet_ros, CUDA, m) {
  m.impl("correlation", &flownet_corr::correlation_cuda);
  m.impl("correlation_backward", &flownet_corr::correlation_backward_cuda);
}
