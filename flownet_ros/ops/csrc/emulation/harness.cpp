// Checks the CUDA correlation kernels, run under the CPU emulation of cuda_runtime.h, against a direct
// (scatter) transcription of the correlation and its gradients in double precision. Built and run by
// test/test_correlation.py from a copy of correlation_cuda_kernels.cu with the launch syntax rewritten
// (kernels_emu.cpp). Prints one line per case and "ALL OK" on success (exit status 0).
#include "kernels_emu.cpp"
#include <cmath>
#include <cstdio>
#include <random>
using namespace flownet_corr;
template <typename T> T cv(double v) { return T(v); }
template <> __half cv<__half>(double v) { return __half{float(v)}; }
static double dbl(float v) { return v; } static double dbl(double v) { return v; } static double dbl(__half v) { return v.v; }
// naive reference (double), NHWC inputs, NCHW output
static void ref_fwd(const Geometry& g, const std::vector<double>& f1, const std::vector<double>& f2, std::vector<double>& out) {
  out.assign(g.B * g.D * g.D * g.Ho * g.Wo, 0);
  for (int64_t b = 0; b < g.B; ++b) for (int64_t yo = 0; yo < g.Ho; ++yo) for (int64_t xo = 0; xo < g.Wo; ++xo)
  for (int64_t iy = 0; iy < g.D; ++iy) for (int64_t ix = 0; ix < g.D; ++ix) {
    double s = 0;
    for (int64_t oy = -g.kr; oy <= g.kr; ++oy) for (int64_t ox = -g.kr; ox <= g.kr; ++ox) {
      int64_t y1 = yo * g.stride1 + oy, x1 = xo * g.stride1 + ox, y2 = y1 + (iy - g.r) * g.stride2, x2 = x1 + (ix - g.r) * g.stride2;
      if (y1 < 0 || y1 >= g.H || x1 < 0 || x1 >= g.W || y2 < 0 || y2 >= g.H || x2 < 0 || x2 >= g.W) continue;
      for (int64_t c = 0; c < g.C; ++c) s += f1[((b * g.H + y1) * g.W + x1) * g.C + c] * f2[((b * g.H + y2) * g.W + x2) * g.C + c];
    }
    out[((b * g.D * g.D + iy * g.D + ix) * g.Ho + yo) * g.Wo + xo] = s / (g.kernel_size * g.kernel_size * g.C);
  }
}
// naive backward by scattering
static void ref_bwd(const Geometry& g, const std::vector<double>& go, const std::vector<double>& f1, const std::vector<double>& f2, std::vector<double>& g1, std::vector<double>& g2) {
  g1.assign(f1.size(), 0); g2.assign(f2.size(), 0);
  const double n = g.kernel_size * g.kernel_size * g.C;
  for (int64_t b = 0; b < g.B; ++b) for (int64_t yo = 0; yo < g.Ho; ++yo) for (int64_t xo = 0; xo < g.Wo; ++xo)
  for (int64_t iy = 0; iy < g.D; ++iy) for (int64_t ix = 0; ix < g.D; ++ix) {
    double gv = go[((b * g.D * g.D + iy * g.D + ix) * g.Ho + yo) * g.Wo + xo] / n;
    for (int64_t oy = -g.kr; oy <= g.kr; ++oy) for (int64_t ox = -g.kr; ox <= g.kr; ++ox) {
      int64_t y1 = yo * g.stride1 + oy, x1 = xo * g.stride1 + ox, y2 = y1 + (iy - g.r) * g.stride2, x2 = x1 + (ix - g.r) * g.stride2;
      if (y1 < 0 || y1 >= g.H || x1 < 0 || x1 >= g.W || y2 < 0 || y2 >= g.H || x2 < 0 || x2 >= g.W) continue;
      for (int64_t c = 0; c < g.C; ++c) {
        g1[((b * g.H + y1) * g.W + x1) * g.C + c] += gv * f2[((b * g.H + y2) * g.W + x2) * g.C + c];
        g2[((b * g.H + y2) * g.W + x2) * g.C + c] += gv * f1[((b * g.H + y1) * g.W + x1) * g.C + c];
      }
    }
  }
}
template <typename T> static double maxdiff(const std::vector<T>& a, const std::vector<double>& b) {
  double m = 0; for (size_t i = 0; i < b.size(); ++i) m = std::max(m, std::fabs(dbl(a[i]) - b[i]) / (1 + std::fabs(b[i]))); return m; }
template <typename T> static bool run(int64_t B, int64_t C, int64_t H, int64_t W, int64_t md, int64_t s2, int64_t k, int64_t s1, DType dt) {
  Geometry g; if (make_geometry(B, C, H, W, md, s2, k, s1, &g)) { printf("bad geometry\n"); return false; }
  std::mt19937 rng(1); std::normal_distribution<double> nd;
  std::vector<double> f1(B * H * W * C), f2(f1.size()), go(B * g.D * g.D * g.Ho * g.Wo);
  for (auto& v : f1) v = nd(rng); for (auto& v : f2) v = nd(rng); for (auto& v : go) v = nd(rng);
  std::vector<T> t1, t2, tg, out(go.size()), g1(f1.size()), g2(f1.size()); for (double v : f1) t1.push_back(cv<T>(v)); for (double v : f2) t2.push_back(cv<T>(v)); for (double v : go) tg.push_back(cv<T>(v));
  std::vector<double> rout, rg1, rg2; ref_fwd(g, f1, f2, rout); ref_bwd(g, go, f1, f2, rg1, rg2);
  int e1 = launch_correlation_forward(g, dt, t1.data(), t2.data(), out.data(), nullptr);
  int e2 = launch_correlation_backward(g, dt, tg.data(), t1.data(), t2.data(), g1.data(), g2.data(), nullptr);
  double d0 = maxdiff(out, rout), d1 = maxdiff(g1, rg1), d2 = maxdiff(g2, rg2);
  bool ok = e1 == 0 && e2 == 0 && d0 < 1e-5 && d1 < 1e-5 && d2 < 1e-5;
  printf("%s B%ld C%ld H%ld W%ld md%ld s2 %ld k%ld s1 %ld: err %d %d fwd %.2e g1 %.2e g2 %.2e smem %zu\n", ok ? "OK  " : "FAIL", B, C, H, W, md, s2, k, s1, e1, e2, d0, d1, d2, emu::max_smem_used);
  return ok;
}
int main() {
  bool ok = true;
  ok &= run<float>(1, 3, 5, 7, 3, 1, 1, 1, DType::F32);
  ok &= run<double>(2, 8, 13, 17, 6, 2, 1, 1, DType::F64);
  ok &= run<float>(1, 40, 6, 40, 20, 2, 1, 1, DType::F32);   // FlowNetC setting, 2 x tiles, C > 32 chunking
  ok &= run<float>(2, 19, 9, 11, 4, 2, 3, 1, DType::F32);
  ok &= run<float>(1, 5, 10, 9, 2, 1, 3, 2, DType::F32);
  ok &= run<double>(3, 4, 7, 6, 5, 3, 1, 3, DType::F64);
  ok &= run<float>(1, 37, 6, 8, 0, 1, 1, 1, DType::F32);
  ok &= run<float>(1, 33, 4, 5, 2, 1, 5, 1, DType::F32);
  ok &= run<float>(1, 3, 3, 70, 40, 1, 1, 1, DType::F32);   // D = 81: displacement groups
  ok &= run<double>(1, 3, 2, 40, 40, 1, 1, 1, DType::F64);  // double, > 48 KiB shared memory
  ok &= run<__half>(1, 9, 5, 6, 2, 1, 1, 1, DType::F16);
  printf(ok ? "ALL OK\n" : "SOME FAILED\n");
  return ok ? 0 : 1;
}
