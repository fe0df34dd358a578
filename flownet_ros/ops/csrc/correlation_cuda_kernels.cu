// CUDA kernels of the FlowNet correlation (forward and backward), float32 / float16 / bfloat16 with
// float32 accumulation (float64 accumulates in float64). Only CUDA headers: `nvcc -c` checks this file
// on machines without torch or a GPU. Index arithmetic comes from correlation_geometry.h (shared with
// the CPU kernels, so the CPU tests cover it).
//
// Forward: one block per (output row yo, tile of TX outputs in x, batch b, vertical displacement iy).
// Channel chunks of f1 (TX pixels) and of the f2 row segment the tile can reach are staged in shared
// memory; thread (tx, ty) accumulates the horizontal displacements ix = ty + j * TY for output x0 + tx.
// Backward: gathers into each destination pixel (no atomics, deterministic). One block per (row, tile of
// TXB pixels, batch, chunk of 32 channels); per vertical displacement the other input's row segment is
// staged once and, per patch offset, the D gradient values of every pixel of the tile.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "correlation_cuda.h"

namespace flownet_corr {
namespace {

constexpr int TX = 32;          // forward: outputs per block along x (one warp)
constexpr int NACC = 3;         // forward: displacements per thread
constexpr int TXB = 32;         // backward: destination pixels per block
constexpr int CCB = 32;         // backward: channels per block (threadIdx.x)
constexpr int TYB = 8;          // backward: threadIdx.y; each thread owns TXB / TYB pixels
constexpr int PXB = TXB / TYB;
constexpr size_t SMEM_DEFAULT = 48 * 1024;  // dynamic shared memory available without opting in
constexpr int64_t GRID_LIMIT = 65535;     // gridDim.y / gridDim.z limit

template <typename T> struct Io;
template <> struct Io<float> {
  using Acc = float;
  __device__ static float in(float v) { return v; }
  __device__ static float out(float v) { return v; }
};
template <> struct Io<double> {
  using Acc = double;
  __device__ static double in(double v) { return v; }
  __device__ static double out(double v) { return v; }
};
template <> struct Io<__half> {
  using Acc = float;
  __device__ static float in(__half v) { return __half2float(v); }
  __device__ static __half out(float v) { return __float2half_rn(v); }
};
template <> struct Io<__nv_bfloat16> {
  using Acc = float;
  __device__ static float in(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ static __nv_bfloat16 out(float v) { return __float2bfloat16_rn(v); }
};

// ---- forward -----------------------------------------------------------------------------------------
// Shared memory: s1 [cc][TX + 1] (f1 tile), s2 [cc][ls] (f2 segment of `span` pixels, ls = span | 1);
// odd row strides keep the channel-major stores free of bank conflicts.
struct FwdLayout {
  int cc, span, ls, ty;
};

CORR_HD int fwd_span(const Geometry& g) { return static_cast<int>((TX - 1) * g.stride1 + 2 * g.r * g.stride2 + 1); }

template <typename T>
__global__ void corr_forward_kernel(Geometry g, FwdLayout lay, const T* __restrict__ f1,
                                    const T* __restrict__ f2, T* __restrict__ out) {
  using Acc = typename Io<T>::Acc;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Acc* s1 = reinterpret_cast<Acc*>(smem_raw);
  Acc* s2 = s1 + lay.cc * (TX + 1);
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * TX + tx, nthreads = TX * lay.ty;
  const int64_t x0 = static_cast<int64_t>(blockIdx.x) * TX;
  const int64_t yo = blockIdx.y;
  const int64_t b = blockIdx.z / g.D, iy = blockIdx.z % g.D;
  const int64_t dy = disp_of(g, iy);
  const int64_t C = g.C, H = g.H, W = g.W, D = g.D;
  const int group = lay.ty * NACC;  // displacements per pass over the channels

  for (int64_t ix0 = 0; ix0 < D; ix0 += group) {
    Acc acc[NACC];
    int off[NACC];     // offset of displacement j in the staged f2 segment
    bool valid[NACC];  // displacement j exists (the last group may be partial)
#pragma unroll
    for (int j = 0; j < NACC; ++j) {
      const int64_t ix = ix0 + ty + j * lay.ty;
      acc[j] = Acc(0);
      valid[j] = ix < D;
      off[j] = valid[j] ? static_cast<int>(ix * g.stride2) : 0;
    }
    for (int64_t oy = -g.kr; oy <= g.kr; ++oy) {
      const int64_t y1 = yo * g.stride1 + oy, y2 = y1 + dy;
      if (!inside(y1, H) || !inside(y2, H)) continue;  // uniform over the block
      const T* row1 = f1 + (b * H + y1) * W * C;
      const T* row2 = f2 + (b * H + y2) * W * C;
      for (int64_t ox = -g.kr; ox <= g.kr; ++ox) {
        const int64_t xs1 = x0 * g.stride1 + ox;  // f1 x of tx = 0
        const int64_t xs2 = xs1 - g.r * g.stride2;  // first f2 x of the segment
        for (int64_t c0 = 0; c0 < C; c0 += lay.cc) {
          const int ccur = static_cast<int>(C - c0 < lay.cc ? C - c0 : lay.cc);
          for (int e = tid; e < lay.cc * TX; e += nthreads) {
            const int p = e / lay.cc, c = e % lay.cc;
            const int64_t x = xs1 + p * g.stride1;
            Acc v = Acc(0);
            if (c < ccur && x0 + p < g.Wo && inside(x, W)) v = Io<T>::in(row1[x * C + c0 + c]);
            s1[c * (TX + 1) + p] = v;
          }
          for (int e = tid; e < lay.cc * lay.span; e += nthreads) {
            const int p = e / lay.cc, c = e % lay.cc;
            const int64_t x = xs2 + p;
            Acc v = Acc(0);
            if (c < ccur && inside(x, W)) v = Io<T>::in(row2[x * C + c0 + c]);
            s2[c * lay.ls + p] = v;
          }
          __syncthreads();
          for (int c = 0; c < ccur; ++c) {
            const Acc a = s1[c * (TX + 1) + tx];
            const Acc* s2c = s2 + c * lay.ls + tx * static_cast<int>(g.stride1);
#pragma unroll
            for (int j = 0; j < NACC; ++j)
              if (valid[j]) acc[j] += a * s2c[off[j]];
          }
          __syncthreads();
        }
      }
    }
    const int64_t xo = x0 + tx;
    if (xo < g.Wo) {
      const Acc norm = Acc(1) / Acc(g.kernel_size * g.kernel_size * C);
#pragma unroll
      for (int j = 0; j < NACC; ++j) {
        const int64_t ix = ix0 + ty + j * lay.ty;
        if (ix < D) out[((b * D * D + iy * D + ix) * g.Ho + yo) * g.Wo + xo] = Io<T>::out(acc[j] * norm);
      }
    }
  }
}

// ---- backward ----------------------------------------------------------------------------------------
// GRAD2 = false: grad_f1(p) = sum_o [yo = (p - o)/s1] sum_d g(yo, d) f2(p + d)
// GRAD2 = true:  grad_f2(q) = sum_d sum_o [yo = (q - d - o)/s1] g(yo, d) f1(q - d)
// Shared memory: fs [span][CCB] (the other input's row segment), gs [D][TXB] (gradient values).
CORR_HD int bwd_span(const Geometry& g) { return static_cast<int>(TXB + 2 * g.r * g.stride2); }

template <typename T, bool GRAD2>
__global__ void corr_backward_kernel(Geometry g, const T* __restrict__ gout, const T* __restrict__ other,
                                     T* __restrict__ dst) {
  using Acc = typename Io<T>::Acc;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int span = bwd_span(g);
  Acc* fs = reinterpret_cast<Acc*>(smem_raw);
  Acc* gs = fs + span * CCB;
  const int tc = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * CCB + tc, nthreads = CCB * TYB;
  const int64_t x0 = static_cast<int64_t>(blockIdx.x) * TXB;
  const int64_t py = blockIdx.y;
  const int64_t nchunks = (g.C + CCB - 1) / CCB;
  const int64_t b = blockIdx.z / nchunks, c0 = (blockIdx.z % nchunks) * CCB;
  const int64_t C = g.C, H = g.H, W = g.W, D = g.D, DD = D * D;
  const int64_t xseg = x0 - g.r * g.stride2;  // first x of the staged segment

  Acc acc[PXB];
#pragma unroll
  for (int k = 0; k < PXB; ++k) acc[k] = Acc(0);

  for (int64_t iy = 0; iy < D; ++iy) {
    const int64_t yrow = GRAD2 ? py - disp_of(g, iy) : py + disp_of(g, iy);
    if (!inside(yrow, H)) continue;  // uniform over the block
    __syncthreads();  // previous users of fs are done
    const T* row = other + (b * H + yrow) * W * C;
    for (int e = tid; e < span * CCB; e += nthreads) {
      const int p = e / CCB, c = e % CCB;
      const int64_t x = xseg + p;
      Acc v = Acc(0);
      if (c0 + c < C && inside(x, W)) v = Io<T>::in(row[x * C + c0 + c]);
      fs[p * CCB + c] = v;
    }
    for (int64_t oy = -g.kr; oy <= g.kr; ++oy) {
      const int64_t yo = out_index_for(GRAD2 ? yrow : py, oy, g.stride1, g.Ho);
      if (yo < 0) continue;  // uniform over the block
      const T* grow = gout + (b * DD + iy * D) * g.Ho * g.Wo + yo * g.Wo;  // channel iy*D, row yo
      for (int64_t ox = -g.kr; ox <= g.kr; ++ox) {
        __syncthreads();  // previous users of gs are done (and fs is complete)
        for (int e = tid; e < D * TXB; e += nthreads) {
          const int ix = e / TXB, p = e % TXB;
          const int64_t x = x0 + p;
          int64_t xo = -1;
          if (x < W) {
            if (GRAD2) {
              const int64_t x1 = x - disp_of(g, ix);
              if (inside(x1, W)) xo = out_index_for(x1, ox, g.stride1, g.Wo);
            } else {
              xo = out_index_for(x, ox, g.stride1, g.Wo);
            }
          }
          gs[ix * TXB + p] = xo >= 0 ? Io<T>::in(grow[ix * g.Ho * g.Wo + xo]) : Acc(0);
        }
        __syncthreads();
        for (int ix = 0; ix < D; ++ix) {
          const int off = static_cast<int>((GRAD2 ? 2 * g.r - ix : ix) * g.stride2);
#pragma unroll
          for (int k = 0; k < PXB; ++k) {
            const int p = ty + k * TYB;
            acc[k] += gs[ix * TXB + p] * fs[(p + off) * CCB + tc];
          }
        }
      }
    }
  }
  const Acc norm = Acc(1) / Acc(g.kernel_size * g.kernel_size * C);
  if (c0 + tc < C) {
#pragma unroll
    for (int k = 0; k < PXB; ++k) {
      const int64_t x = x0 + ty + k * TYB;
      if (x < W) dst[((b * H + py) * W + x) * C + c0 + tc] = Io<T>::out(acc[k] * norm);
    }
  }
}

// ---- launchers -----------------------------------------------------------------------------------------
constexpr int ERR_TOO_LARGE = -1;

// Largest dynamic shared memory a block of the current device may opt into.
size_t smem_optin_limit() {
  int dev = 0, optin = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) {
    cudaGetLastError();  // clear it: a stale error would surface at the next, unrelated launch check
    return SMEM_DEFAULT;
  }
  return std::max(SMEM_DEFAULT, static_cast<size_t>(optin));
}

// Allows `kernel` to use `smem` bytes (beyond 48 KiB needs an explicit opt-in). 0 or an error code.
template <typename K>
int allow_smem(K kernel, size_t smem) {
  if (smem <= SMEM_DEFAULT) return 0;
  if (smem > smem_optin_limit()) return ERR_TOO_LARGE;
  const cudaError_t err =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (err != cudaSuccess) cudaGetLastError();  // reported through the return value, not left pending
  return static_cast<int>(err);
}

template <typename T>
int forward_impl(const Geometry& g, const T* f1, const T* f2, T* out, cudaStream_t stream) {
  using Acc = typename Io<T>::Acc;
  if (g.Ho > GRID_LIMIT) return ERR_TOO_LARGE;
  FwdLayout lay;
  lay.span = fwd_span(g);
  lay.ls = lay.span | 1;
  lay.ty = static_cast<int>(std::min<int64_t>((g.D + NACC - 1) / NACC, 16));
  lay.cc = 32;  // channels per staged chunk: fewer when the f2 segment is long
  while (lay.cc > 1 && static_cast<size_t>(lay.cc) * (TX + 1 + lay.ls) * sizeof(Acc) > SMEM_DEFAULT) lay.cc /= 2;
  const size_t smem = static_cast<size_t>(lay.cc) * (TX + 1 + lay.ls) * sizeof(Acc);
  if (const int err = allow_smem(corr_forward_kernel<T>, smem)) return err;
  const dim3 block(TX, lay.ty);
  const int64_t per_launch = std::max<int64_t>(1, GRID_LIMIT / g.D);  // batch items per launch (gridDim.z)
  const int64_t in_stride = g.H * g.W * g.C, out_stride = g.D * g.D * g.Ho * g.Wo;
  for (int64_t b0 = 0; b0 < g.B; b0 += per_launch) {
    Geometry gc = g;
    gc.B = std::min(per_launch, g.B - b0);
    const dim3 grid(static_cast<unsigned>((g.Wo + TX - 1) / TX), static_cast<unsigned>(g.Ho),
                    static_cast<unsigned>(gc.B * g.D));
    corr_forward_kernel<T><<<grid, block, smem, stream>>>(gc, lay, f1 + b0 * in_stride, f2 + b0 * in_stride,
                                                         out + b0 * out_stride);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return static_cast<int>(err);
  }
  return 0;
}

template <typename T>
int backward_impl(const Geometry& g, const T* gout, const T* f1, const T* f2, T* g1, T* g2,
                  cudaStream_t stream) {
  using Acc = typename Io<T>::Acc;
  if (g.H > GRID_LIMIT) return ERR_TOO_LARGE;
  const size_t smem = (static_cast<size_t>(bwd_span(g)) * CCB + static_cast<size_t>(g.D) * TXB) * sizeof(Acc);
  if (const int err = allow_smem(corr_backward_kernel<T, false>, smem)) return err;
  if (const int err = allow_smem(corr_backward_kernel<T, true>, smem)) return err;
  const int64_t nchunks = (g.C + CCB - 1) / CCB;
  const int64_t per_launch = std::max<int64_t>(1, GRID_LIMIT / nchunks);
  if (nchunks > GRID_LIMIT) return ERR_TOO_LARGE;
  const dim3 block(CCB, TYB);
  const int64_t in_stride = g.H * g.W * g.C, out_stride = g.D * g.D * g.Ho * g.Wo;
  for (int64_t b0 = 0; b0 < g.B; b0 += per_launch) {
    Geometry gc = g;
    gc.B = std::min(per_launch, g.B - b0);
    const dim3 grid(static_cast<unsigned>((g.W + TXB - 1) / TXB), static_cast<unsigned>(g.H),
                    static_cast<unsigned>(gc.B * nchunks));
    const T* go = gout + b0 * out_stride;
    corr_backward_kernel<T, false><<<grid, block, smem, stream>>>(gc, go, f2 + b0 * in_stride, g1 + b0 * in_stride);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return static_cast<int>(err);
    corr_backward_kernel<T, true><<<grid, block, smem, stream>>>(gc, go, f1 + b0 * in_stride, g2 + b0 * in_stride);
    err = cudaGetLastError();
    if (err != cudaSuccess) return static_cast<int>(err);
  }
  return 0;
}

}  // namespace

int launch_correlation_forward(const Geometry& g, DType dtype, const void* f1, const void* f2, void* out,
                               void* stream) {
  if (g.B == 0) return 0;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::F32:
      return forward_impl(g, static_cast<const float*>(f1), static_cast<const float*>(f2),
                          static_cast<float*>(out), s);
    case DType::F64:
      return forward_impl(g, static_cast<const double*>(f1), static_cast<const double*>(f2),
                          static_cast<double*>(out), s);
    case DType::F16:
      return forward_impl(g, static_cast<const __half*>(f1), static_cast<const __half*>(f2),
                          static_cast<__half*>(out), s);
    case DType::BF16:
      return forward_impl(g, static_cast<const __nv_bfloat16*>(f1), static_cast<const __nv_bfloat16*>(f2),
                          static_cast<__nv_bfloat16*>(out), s);
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

int launch_correlation_backward(const Geometry& g, DType dtype, const void* grad_out, const void* f1,
                                const void* f2, void* grad_f1, void* grad_f2, void* stream) {
  if (g.B == 0) return 0;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::F32:
      return backward_impl(g, static_cast<const float*>(grad_out), static_cast<const float*>(f1),
                           static_cast<const float*>(f2), static_cast<float*>(grad_f1),
                           static_cast<float*>(grad_f2), s);
    case DType::F64:
      return backward_impl(g, static_cast<const double*>(grad_out), static_cast<const double*>(f1),
                           static_cast<const double*>(f2), static_cast<double*>(grad_f1),
                           static_cast<double*>(grad_f2), s);
    case DType::F16:
      return backward_impl(g, static_cast<const __half*>(grad_out), static_cast<const __half*>(f1),
                           static_cast<const __half*>(f2), static_cast<__half*>(grad_f1),
                           static_cast<__half*>(grad_f2), s);
    case DType::BF16:
      return backward_impl(g, static_cast<const __nv_bfloat16*>(grad_out), static_cast<const __nv_bfloat16*>(f1),
                           static_cast<const __nv_bfloat16*>(f2), static_cast<__nv_bfloat16*>(grad_f1),
                           static_cast<__nv_bfloat16*>(grad_f2), s);
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

const char* correlation_cuda_error(int code) {
  if (code == ERR_TOO_LARGE)
    return "problem too large for the CUDA correlation kernels (rows > 65535 or max_displacement / stride2 "
           "too large for the shared memory of this GPU)";
  return cudaGetErrorString(static_cast<cudaError_t>(code));
}

}  // namespace flownet_corr
