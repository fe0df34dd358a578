// FlowNet correlation: op schema, CPU kernels (forward + backward) and the CPU dispatcher registration.
//
// The kernels work on NHWC copies so that every inner loop runs over C contiguous channels; rows of the
// output (or, in the backward passes, of the gradient being written) are distributed over threads with
// at::parallel_for (OpenMP: compile AND link with -fopenmp, or parallel_for silently runs on one thread).
// The backward passes gather into each destination row, so they need no atomics and are deterministic.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "correlation_checks.h"
#include "correlation_geometry.h"

namespace flownet_corr {
namespace {

// Hot loops are compiled for several instruction sets and chosen at load time (GCC/Clang on x86-64
// Linux), so the cached build never uses instructions the CPU lacks.
// x86-64-v3 = AVX2 + FMA (GCC >= 12); older compilers get a plain AVX2 clone.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define CORR_MULTIVERSION __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#elif defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define CORR_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CORR_MULTIVERSION
#endif
#if defined(__GNUC__) || defined(__clang__)
#define CORR_INLINE __attribute__((always_inline)) inline
#else
#define CORR_INLINE inline
#endif

// Independent partial sums (one per lane) let the compiler vectorise the channel loop without
// reassociating floating-point additions.
template <typename T>
struct Lanes {
  static constexpr int N = 64 / sizeof(T);  // one 512-bit register worth
};

// out[j] = <a, b_j> over n channels, four dot products sharing the loads of a.
template <typename T>
CORR_INLINE void dot4(const T* __restrict a, const T* __restrict b0, const T* __restrict b1,
                      const T* __restrict b2, const T* __restrict b3, int64_t n, T* out) {
  constexpr int L = Lanes<T>::N;
  T s0[L], s1[L], s2[L], s3[L];
  for (int l = 0; l < L; ++l) s0[l] = s1[l] = s2[l] = s3[l] = T(0);
  int64_t c = 0;
  for (; c + L <= n; c += L) {
    for (int l = 0; l < L; ++l) {
      const T av = a[c + l];
      s0[l] += av * b0[c + l];
      s1[l] += av * b1[c + l];
      s2[l] += av * b2[c + l];
      s3[l] += av * b3[c + l];
    }
  }
  T t0 = T(0), t1 = T(0), t2 = T(0), t3 = T(0);
  for (; c < n; ++c) {
    t0 += a[c] * b0[c];
    t1 += a[c] * b1[c];
    t2 += a[c] * b2[c];
    t3 += a[c] * b3[c];
  }
  for (int l = 0; l < L; ++l) {
    t0 += s0[l];
    t1 += s1[l];
    t2 += s2[l];
    t3 += s3[l];
  }
  out[0] = t0;
  out[1] = t1;
  out[2] = t2;
  out[3] = t3;
}

template <typename T>
CORR_INLINE T dot1(const T* __restrict a, const T* __restrict b, int64_t n) {
  constexpr int L = Lanes<T>::N;
  T s[L];
  for (int l = 0; l < L; ++l) s[l] = T(0);
  int64_t c = 0;
  for (; c + L <= n; c += L)
    for (int l = 0; l < L; ++l) s[l] += a[c + l] * b[c + l];
  T t = T(0);
  for (; c < n; ++c) t += a[c] * b[c];
  for (int l = 0; l < L; ++l) t += s[l];
  return t;
}

// Weighted sum of rows: dst[c] = scale * sum_k w[k] * rows[k][c] for c < n. Rows are applied eight at a
// time, each streamed contiguously (prefetch friendly), so the accumulator is read and written once per
// eight multiply-adds.
template <typename T>
struct RowSum {
  std::vector<T> w;
  std::vector<const T*> rows;
  std::vector<T> acc;
  CORR_INLINE void clear() {
    w.clear();
    rows.clear();
  }
  CORR_INLINE void push(T weight, const T* row) {
    w.push_back(weight);
    rows.push_back(row);
  }
  CORR_INLINE void store(T* __restrict dst, int64_t n, T scale) {
    acc.assign(n, T(0));
    T* __restrict a = acc.data();
    const int64_t m = static_cast<int64_t>(w.size());
    int64_t k = 0;
    for (; k + 8 <= m; k += 8) {
      const T w0 = w[k], w1 = w[k + 1], w2 = w[k + 2], w3 = w[k + 3];
      const T w4 = w[k + 4], w5 = w[k + 5], w6 = w[k + 6], w7 = w[k + 7];
      const T* __restrict r0 = rows[k];
      const T* __restrict r1 = rows[k + 1];
      const T* __restrict r2 = rows[k + 2];
      const T* __restrict r3 = rows[k + 3];
      const T* __restrict r4 = rows[k + 4];
      const T* __restrict r5 = rows[k + 5];
      const T* __restrict r6 = rows[k + 6];
      const T* __restrict r7 = rows[k + 7];
      for (int64_t c = 0; c < n; ++c)
        a[c] += w0 * r0[c] + w1 * r1[c] + w2 * r2[c] + w3 * r3[c] + w4 * r4[c] + w5 * r5[c] + w6 * r6[c] +
                w7 * r7[c];
    }
    for (; k < m; ++k) {
      const T wk = w[k];
      const T* __restrict r = rows[k];
      for (int64_t c = 0; c < n; ++c) a[c] += wk * r[c];
    }
    for (int64_t c = 0; c < n; ++c) dst[c] = a[c] * scale;
  }
};

// Valid displacement indices [lo, hi) for which x + disp_of(i) lies in [0, n).
CORR_INLINE void valid_range(const Geometry& g, int64_t x, int64_t n, int64_t* lo, int64_t* hi) {
  // x + (i - r) * s2 >= 0  <=>  i >= r - floor(x / s2);  x + (i - r) * s2 <= n - 1  <=>  i <= r + (n-1-x)/s2
  *lo = std::max<int64_t>(0, g.r - x / g.stride2);
  *hi = std::min<int64_t>(g.D, g.r + (n - 1 - x) / g.stride2 + 1);
}

// ---- forward: rows [begin, end) of (b, yo) -------------------------------------------------------
template <typename T>
CORR_INLINE void forward_rows_impl(const Geometry& g, const T* f1, const T* f2, T* out, int64_t begin,
                                   int64_t end) {
  const int64_t C = g.C, H = g.H, W = g.W, D = g.D, DD = D * D;
  const T norm = T(1) / T(g.kernel_size * g.kernel_size * C);
  std::vector<T> acc(g.Wo * D);
  for (int64_t row = begin; row < end; ++row) {
    const int64_t b = row / g.Ho, yo = row % g.Ho;
    for (int64_t iy = 0; iy < D; ++iy) {
      std::fill(acc.begin(), acc.end(), T(0));
      const int64_t dy = disp_of(g, iy);
      for (int64_t oy = -g.kr; oy <= g.kr; ++oy) {
        const int64_t y1 = yo * g.stride1 + oy, y2 = y1 + dy;
        if (!inside(y1, H) || !inside(y2, H)) continue;
        const T* row1 = f1 + (b * H + y1) * W * C;
        const T* row2 = f2 + (b * H + y2) * W * C;
        for (int64_t xo = 0; xo < g.Wo; ++xo) {
          T* a_out = acc.data() + xo * D;
          for (int64_t ox = -g.kr; ox <= g.kr; ++ox) {
            const int64_t x1 = xo * g.stride1 + ox;
            if (!inside(x1, W)) continue;
            const T* a = row1 + x1 * C;
            int64_t lo, hi;
            valid_range(g, x1, W, &lo, &hi);
            const T* base = row2 + (x1 + disp_of(g, lo)) * C;  // displacement lo
            const int64_t step = g.stride2 * C;
            int64_t i = lo;
            T s[4];
            for (; i + 4 <= hi; i += 4) {
              dot4(a, base, base + step, base + 2 * step, base + 3 * step, C, s);
              for (int j = 0; j < 4; ++j) a_out[i + j] += s[j];
              base += 4 * step;
            }
            for (; i < hi; ++i) {
              a_out[i] += dot1(a, base, C);
              base += step;
            }
          }
        }
      }
      for (int64_t ix = 0; ix < D; ++ix) {
        T* o = out + ((b * DD + iy * D + ix) * g.Ho + yo) * g.Wo;
        for (int64_t xo = 0; xo < g.Wo; ++xo) o[xo] = acc[xo * D + ix] * norm;
      }
    }
  }
}

// ---- backward, gradient of f1: rows [begin, end) of (b, py) --------------------------------------
// grad1(p) = sum_o [yo = (p - o) / s1 valid] sum_d g(yo, d) f2(p + d) / N
template <typename T>
CORR_INLINE void grad1_rows_impl(const Geometry& g, const T* gout, const T* f2, T* g1, int64_t begin,
                                 int64_t end) {
  const int64_t C = g.C, H = g.H, W = g.W, D = g.D, DD = D * D;
  const T norm = T(1) / T(g.kernel_size * g.kernel_size * C);
  RowSum<T> q;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t b = row / H, py = row % H;
    for (int64_t px = 0; px < W; ++px) {
      q.clear();
      int64_t lo, hi;
      valid_range(g, px, W, &lo, &hi);
      for (int64_t oy = -g.kr; oy <= g.kr; ++oy) {
        const int64_t yo = out_index_for(py, oy, g.stride1, g.Ho);
        if (yo < 0) continue;
        for (int64_t ox = -g.kr; ox <= g.kr; ++ox) {
          const int64_t xo = out_index_for(px, ox, g.stride1, g.Wo);
          if (xo < 0) continue;
          const T* gp = gout + ((b * g.Ho + yo) * g.Wo + xo) * DD;  // [DD] at this output pixel
          for (int64_t iy = 0; iy < D; ++iy) {
            const int64_t y2 = py + disp_of(g, iy);
            if (!inside(y2, H)) continue;
            const T* row2 = f2 + (b * H + y2) * W * C;
            for (int64_t ix = lo; ix < hi; ++ix)
              q.push(gp[iy * D + ix], row2 + (px + disp_of(g, ix)) * C);
          }
        }
      }
      q.store(g1 + ((b * H + py) * W + px) * C, C, norm);
    }
  }
}

// ---- backward, gradient of f2: rows [begin, end) of (b, qy) --------------------------------------
// grad2(q) = sum_o sum_d [yo = (q - d - o) / s1 valid] g(yo, d) f1(q - d) / N
template <typename T>
CORR_INLINE void grad2_rows_impl(const Geometry& g, const T* gout, const T* f1, T* g2, int64_t begin,
                                 int64_t end) {
  const int64_t C = g.C, H = g.H, W = g.W, D = g.D, DD = D * D;
  const T norm = T(1) / T(g.kernel_size * g.kernel_size * C);
  RowSum<T> q;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t b = row / H, qy = row % H;
    for (int64_t qx = 0; qx < W; ++qx) {
      q.clear();
      for (int64_t iy = 0; iy < D; ++iy) {
        const int64_t y1 = qy - disp_of(g, iy);
        if (!inside(y1, H)) continue;
        const T* row1 = f1 + (b * H + y1) * W * C;
        for (int64_t oy = -g.kr; oy <= g.kr; ++oy) {
          const int64_t yo = out_index_for(y1, oy, g.stride1, g.Ho);
          if (yo < 0) continue;
          for (int64_t ix = 0; ix < D; ++ix) {
            const int64_t x1 = qx - disp_of(g, ix);
            if (!inside(x1, W)) continue;
            for (int64_t ox = -g.kr; ox <= g.kr; ++ox) {
              const int64_t xo = out_index_for(x1, ox, g.stride1, g.Wo);
              if (xo < 0) continue;
              q.push(gout[((b * g.Ho + yo) * g.Wo + xo) * DD + iy * D + ix], row1 + x1 * C);
            }
          }
        }
      }
      q.store(g2 + ((b * H + qy) * W + qx) * C, C, norm);
    }
  }
}

// Multiversioned entry points (one clone per instruction set; the templates above inline into each).
CORR_MULTIVERSION void forward_rows_f32(const Geometry& g, const float* f1, const float* f2, float* out,
                                        int64_t b, int64_t e) {
  forward_rows_impl<float>(g, f1, f2, out, b, e);
}
CORR_MULTIVERSION void forward_rows_f64(const Geometry& g, const double* f1, const double* f2, double* out,
                                        int64_t b, int64_t e) {
  forward_rows_impl<double>(g, f1, f2, out, b, e);
}
CORR_MULTIVERSION void grad1_rows_f32(const Geometry& g, const float* go, const float* f2, float* g1,
                                      int64_t b, int64_t e) {
  grad1_rows_impl<float>(g, go, f2, g1, b, e);
}
CORR_MULTIVERSION void grad1_rows_f64(const Geometry& g, const double* go, const double* f2, double* g1,
                                      int64_t b, int64_t e) {
  grad1_rows_impl<double>(g, go, f2, g1, b, e);
}
CORR_MULTIVERSION void grad2_rows_f32(const Geometry& g, const float* go, const float* f1, float* g2,
                                      int64_t b, int64_t e) {
  grad2_rows_impl<float>(g, go, f1, g2, b, e);
}
CORR_MULTIVERSION void grad2_rows_f64(const Geometry& g, const double* go, const double* f1, double* g2,
                                      int64_t b, int64_t e) {
  grad2_rows_impl<double>(g, go, f1, g2, b, e);
}

void forward_rows(const Geometry& g, const float* a, const float* b, float* o, int64_t s, int64_t e) {
  forward_rows_f32(g, a, b, o, s, e);
}
void forward_rows(const Geometry& g, const double* a, const double* b, double* o, int64_t s, int64_t e) {
  forward_rows_f64(g, a, b, o, s, e);
}
void grad1_rows(const Geometry& g, const float* a, const float* b, float* o, int64_t s, int64_t e) {
  grad1_rows_f32(g, a, b, o, s, e);
}
void grad1_rows(const Geometry& g, const double* a, const double* b, double* o, int64_t s, int64_t e) {
  grad1_rows_f64(g, a, b, o, s, e);
}
void grad2_rows(const Geometry& g, const float* a, const float* b, float* o, int64_t s, int64_t e) {
  grad2_rows_f32(g, a, b, o, s, e);
}
void grad2_rows(const Geometry& g, const double* a, const double* b, double* o, int64_t s, int64_t e) {
  grad2_rows_f64(g, a, b, o, s, e);
}

// ---- torch glue ------------------------------------------------------------------------------------
// CPU computes in float32 or float64; other floating types go through float32.
at::ScalarType compute_type(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

at::Tensor to_nhwc(const at::Tensor& x, at::ScalarType t) {
  return x.to(t).permute({0, 2, 3, 1}).contiguous();
}

at::Tensor correlation_cpu(const at::Tensor& f1, const at::Tensor& f2, int64_t max_disp, int64_t stride2,
                           int64_t kernel_size, int64_t stride1) {
  const Geometry g = check_inputs(f1, f2, max_disp, stride2, kernel_size, stride1);
  const at::ScalarType ct = compute_type(f1.scalar_type());
  at::Tensor a = to_nhwc(f1, ct), b = to_nhwc(f2, ct);
  at::Tensor out = at::empty({g.B, g.D * g.D, g.Ho, g.Wo}, f1.options().dtype(ct));
  AT_DISPATCH_FLOATING_TYPES(ct, "correlation_cpu", [&] {
    const scalar_t* pa = a.data_ptr<scalar_t>();
    const scalar_t* pb = b.data_ptr<scalar_t>();
    scalar_t* po = out.data_ptr<scalar_t>();
    at::parallel_for(0, g.B * g.Ho, 1, [&](int64_t s, int64_t e) { forward_rows(g, pa, pb, po, s, e); });
  });
  return out.to(f1.scalar_type());
}

std::tuple<at::Tensor, at::Tensor> correlation_backward_cpu(const at::Tensor& grad, const at::Tensor& f1,
                                                            const at::Tensor& f2, int64_t max_disp,
                                                            int64_t stride2, int64_t kernel_size,
                                                            int64_t stride1) {
  const Geometry g = check_inputs(f1, f2, max_disp, stride2, kernel_size, stride1);
  check_grad_output(grad, g);
  const at::ScalarType ct = compute_type(f1.scalar_type());
  at::Tensor a = to_nhwc(f1, ct), b = to_nhwc(f2, ct);
  at::Tensor go = to_nhwc(grad, ct);  // [B, Ho, Wo, D*D]: the D*D values of a pixel are contiguous
  at::Tensor g1 = at::empty({g.B, g.H, g.W, g.C}, f1.options().dtype(ct));
  at::Tensor g2 = at::empty({g.B, g.H, g.W, g.C}, f1.options().dtype(ct));
  AT_DISPATCH_FLOATING_TYPES(ct, "correlation_backward_cpu", [&] {
    const scalar_t* pa = a.data_ptr<scalar_t>();
    const scalar_t* pb = b.data_ptr<scalar_t>();
    const scalar_t* pg = go.data_ptr<scalar_t>();
    scalar_t* p1 = g1.data_ptr<scalar_t>();
    scalar_t* p2 = g2.data_ptr<scalar_t>();
    // One parallel region over both gradients: rows 0..BH-1 write grad f1, rows BH..2BH-1 grad f2.
    const int64_t BH = g.B * g.H;
    at::parallel_for(0, 2 * BH, 1, [&](int64_t s, int64_t e) {
      if (s < BH) grad1_rows(g, pg, pb, p1, s, std::min(e, BH));
      if (e > BH) grad2_rows(g, pg, pa, p2, std::max(s, BH) - BH, e - BH);
    });
  });
  const auto to_nchw = [&](const at::Tensor& t) {
    return t.permute({0, 3, 1, 2}).to(f1.scalar_type()).contiguous();
  };
  return {to_nchw(g1), to_nchw(g2)};
}

}  // namespace
}  // namespace flownet_corr

TORCH_LIBRARY(flownet_ros, m) {
  // Fake (meta) kernels and autograd are registered from Python; this tells PyTorch where.
  m.set_python_module("flownet_ros.ops._registration");
  m.def("correlation(Tensor f1, Tensor f2, int max_displacement, int stride2, int kernel_size, int stride1)"
        " -> Tensor");
  m.def("correlation_backward(Tensor grad_output, Tensor f1, Tensor f2, int max_displacement, int stride2,"
        " int kernel_size, int stride1) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(flownet_ros, CPU, m) {
  m.impl("correlation", &flownet_corr::correlation_cpu);
  m.impl("correlation_backward", &flownet_corr::correlation_backward_cpu);
}
