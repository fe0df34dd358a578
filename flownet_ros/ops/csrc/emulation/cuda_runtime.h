#pragma once
// CPU emulation of the CUDA runtime pieces the correlation kernels use, so their logic (indexing, shared
// memory staging, barriers, batch splitting) is tested on machines without a GPU: every CUDA thread of a
// block is a std::thread, __syncthreads() a std::barrier. Used only by test/test_correlation.py.
#include <barrier>
#include <cstddef>
#include <functional>
#include <thread>
#include <vector>
#include <cstring>
struct dim3 { unsigned x = 1, y = 1, z = 1; dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {} };
typedef void* cudaStream_t;
typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorInvalidValue = 1 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize };
enum cudaDeviceAttr { cudaDevAttrMaxSharedMemoryPerBlockOptin };
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char* cudaGetErrorString(cudaError_t) { return "emu error"; }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr, int) { *v = 227 * 1024; return cudaSuccess; }
template <typename K> cudaError_t cudaFuncSetAttribute(K, cudaFuncAttribute, int) { return cudaSuccess; }
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __align__(n) alignas(n)
namespace emu {
inline thread_local dim3 threadIdx_, blockIdx_;
inline thread_local unsigned char* smem = nullptr;
inline thread_local std::barrier<>* bar = nullptr;
inline dim3 gridDim_, blockDim_;
inline size_t max_smem_used = 0;
// Runs every block of the grid, one after the other, on blockDim threads that meet at __syncthreads().
inline void launch(dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t, const std::function<void()>& fn) {
  gridDim_ = grid;
  blockDim_ = block;
  if (smem_bytes > max_smem_used) max_smem_used = smem_bytes;
  const unsigned nt = block.x * block.y * block.z;
  std::vector<unsigned char> shared(smem_bytes + 16);
  std::barrier<> b(nt);
  std::vector<std::thread> ts;
  for (unsigned t = 0; t < nt; ++t)
    ts.emplace_back([&, t] {
      threadIdx_ = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
      smem = shared.data();
      bar = &b;
      for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
          for (unsigned bx = 0; bx < grid.x; ++bx) {
            if (t == 0) std::memset(shared.data(), 0x7f, shared.size());  // poison: unwritten reads show
            b.arrive_and_wait();
            blockIdx_ = dim3(bx, by, bz);
            fn();
            b.arrive_and_wait();
          }
    });
  for (auto& th : ts) th.join();
}
}  // namespace emu
#define threadIdx emu::threadIdx_
#define blockIdx emu::blockIdx_
#define __syncthreads() emu::bar->arrive_and_wait()
