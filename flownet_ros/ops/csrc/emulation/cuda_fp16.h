#pragma once
// Emulation stand-in (see cuda_runtime.h): storage only, conversions are exact.
struct __half { float v; };
inline float __half2float(__half h) { return h.v; }
inline __half __float2half_rn(float f) { return __half{f}; }
