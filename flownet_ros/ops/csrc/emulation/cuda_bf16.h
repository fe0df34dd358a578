#pragma once
// Emulation stand-in (see cuda_runtime.h): storage only, conversions are exact.
struct __nv_bfloat16 { float v; };
inline float __bfloat162float(__nv_bfloat16 h) { return h.v; }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16{f}; }
