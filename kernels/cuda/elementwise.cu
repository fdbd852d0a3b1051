#include "kernels/cuda/elementwise.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/row_layout.h"
#include "kernels/cuda/warp.cuh"

namespace ds::cuda {
namespace {

// grid.x = row, grid.y = a span of kSpan columns: no division per element, and rows of any
// stride. Memory-bound; each thread handles kSpan / kThreads columns, kThreads apart (coalesced).
constexpr int kThreads = 256;
constexpr int kSpan = 4 * kThreads;

dim3 Grid(const RowLayout& x) {
  return dim3(static_cast<unsigned>(x.count), static_cast<unsigned>(CeilDiv64(x.width, kSpan)));
}

__global__ void __launch_bounds__(kThreads) GateResidualKernel(RowLayout x, RowLayout f, const float* gate) {
  float* xr = x.Row(blockIdx.x);
  const float* fr = f.Row(blockIdx.x);
  const int64_t end = min(x.width, static_cast<int64_t>(blockIdx.y + 1) * kSpan);
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * kSpan + threadIdx.x; i < end; i += kThreads) {
    xr[i] = gate ? fmaf(gate[i], fr[i], xr[i]) : xr[i] + fr[i];
  }
}

// The same on float4 vectors (width a multiple of 4; x, f rows and gate 16-byte aligned): a quarter
// of the instructions and one block per 4096 columns, where the scalar grid launches a block per
// 1024 (the residual stream of a Wan block: 32 760 rows of 1536 or 5120 floats, twice a block).
constexpr int kSpan4 = 4 * kThreads;  // float4 vectors per block and row

dim3 Grid4(const RowLayout& x) {
  return dim3(static_cast<unsigned>(x.count), static_cast<unsigned>(CeilDiv64(x.width / 4, kSpan4)));
}

__global__ void __launch_bounds__(kThreads) GateResidualKernel4(RowLayout x, RowLayout f, const float* gate) {
  float4* xr = reinterpret_cast<float4*>(x.Row(blockIdx.x));
  const float4* fr = reinterpret_cast<const float4*>(f.Row(blockIdx.x));
  const float4* g = reinterpret_cast<const float4*>(gate);
  const int64_t end = min(x.width / 4, static_cast<int64_t>(blockIdx.y + 1) * kSpan4);
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * kSpan4 + threadIdx.x; i < end; i += kThreads) {
    float4 a = xr[i];
    const float4 b = fr[i];
    if (g) {
      const float4 c = g[i];
      a = make_float4(fmaf(c.x, b.x, a.x), fmaf(c.y, b.y, a.y), fmaf(c.z, b.z, a.z), fmaf(c.w, b.w, a.w));
    } else {
      a = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
    }
    xr[i] = a;
  }
}

struct Times {
  __device__ float operator()(float x, float f) const { return x * f; }
};
struct Minus {
  __device__ float operator()(float x, float f) const { return x - f; }
};

// x = op(x, f) element by element.
template <class Op>
__global__ void __launch_bounds__(kThreads) BinaryKernel(RowLayout x, RowLayout f, Op op) {
  float* xr = x.Row(blockIdx.x);
  const float* fr = f.Row(blockIdx.x);
  const int64_t end = min(x.width, static_cast<int64_t>(blockIdx.y + 1) * kSpan);
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * kSpan + threadIdx.x; i < end; i += kThreads) {
    xr[i] = op(xr[i], fr[i]);
  }
}

template <class Op>
Status Binary(const Context& ctx, const Tensor& x, const Tensor& f, Op op, const char* name) {
  const RowLayout xl = RowsOf(x), fl = RowsOf(f);
  if (xl.count == 0 || xl.width == 0) return Status::Ok();
  if (fl.count != xl.count || fl.width != xl.width) {
    return Error(Code::kInvalidArgument, "CUDA {}: x {} by f {}", name, x.shape_string(), f.shape_string());
  }
  BinaryKernel<<<Grid(xl), kThreads, 0, ctx.stream>>>(xl, fl, op);
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

struct GeluTanh {
  __device__ float operator()(float v) const {
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    return 0.5f * v * (1.0f + tanhf(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
  }
};

struct Silu {
  __device__ float operator()(float v) const { return v / (1.0f + expf(-v)); }
};

template <class Fn>
__global__ void __launch_bounds__(kThreads) ActivationKernel(RowLayout x, Fn fn) {
  float* xr = x.Row(blockIdx.x);
  const int64_t end = min(x.width, static_cast<int64_t>(blockIdx.y + 1) * kSpan);
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * kSpan + threadIdx.x; i < end; i += kThreads) xr[i] = fn(xr[i]);
}

// Element decoders, bit for bit what core/tensor.cpp computes on the host.
struct FromF32 {
  __device__ float operator()(float v) const { return v; }
};
struct FromBf16 {
  __device__ float operator()(uint16_t v) const { return __uint_as_float(static_cast<uint32_t>(v) << 16); }
};
struct FromF16 {
  __device__ float operator()(uint16_t v) const { return __half2float(__ushort_as_half(v)); }
};
struct FromU8 {  // bytes as integers, as the host's WidenToF32
  __device__ float operator()(uint8_t v) const { return static_cast<float>(v); }
};
struct FromE5M2 {  // the upper byte of a half
  __device__ float operator()(uint8_t v) const { return __half2float(__ushort_as_half(static_cast<uint16_t>(v << 8))); }
};
struct FromE4M3 {  // bias 7, S.1111.111 = NaN, no infinities
  __device__ float operator()(uint8_t v) const {
    const int exp = (v >> 3) & 0xf, mant = v & 7;
    float f;
    if (exp == 15 && mant == 7) {
      f = __int_as_float(0x7fc00000);
    } else if (exp == 0) {
      f = ldexpf(static_cast<float>(mant), -9);
    } else {
      f = ldexpf(static_cast<float>(8 + mant), exp - 10);
    }
    return (v & 0x80) ? -f : f;
  }
};

// One thread per element, a grid-stride loop: stored weights → float32 or bf16, memory-bound.
struct ToF32 {
  __device__ float operator()(float v) const { return v; }
};
struct ToBf16 {
  __device__ __nv_bfloat16 operator()(float v) const { return __float2bfloat16_rn(v); }
};
template <typename T, typename Decode, typename Out, typename Encode>
__global__ void __launch_bounds__(kThreads)
    WidenKernel(const T* src, Out* dst, int64_t n, float scale, Decode decode, Encode encode) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride) {
    dst[i] = encode(decode(src[i]) * scale);
  }
}

// Rows of any layout, one float per thread (see Grid).
__global__ void __launch_bounds__(kThreads) NarrowToBf16Kernel(RowLayout x, __nv_bfloat16* dst) {
  const float* xr = x.Row(blockIdx.x);
  __nv_bfloat16* out = dst + static_cast<int64_t>(blockIdx.x) * x.width;
  const int64_t end = min(x.width, static_cast<int64_t>(blockIdx.y + 1) * kSpan);
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * kSpan + threadIdx.x; i < end; i += kThreads) {
    out[i] = __float2bfloat16_rn(xr[i]);
  }
}

// The common case, evenly strided rows whose width is a multiple of 8 and 16-byte aligned: each
// thread rounds 8 floats (two 16-byte loads, one 16-byte store), a grid-stride loop over all of
// them. ~3× the rate of the one-float-per-thread kernel.
__global__ void __launch_bounds__(kThreads)
    NarrowToBf16x8Kernel(const char* base, int64_t row_stride, int64_t chunks_per_row, int64_t chunks, uint4* out) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; c < chunks; c += step) {
    const int64_t row = c / chunks_per_row, chunk = c - row * chunks_per_row;
    const float4* src = reinterpret_cast<const float4*>(base + row * row_stride) + 2 * chunk;
    const float4 a = src[0], b = src[1];
    const __nv_bfloat162 p[4] = {__floats2bfloat162_rn(a.x, a.y), __floats2bfloat162_rn(a.z, a.w),
                                 __floats2bfloat162_rn(b.x, b.y), __floats2bfloat162_rn(b.z, b.w)};
    uint4 packed;
    static_assert(sizeof(p) == sizeof(packed));
    memcpy(&packed, p, sizeof(packed));
    out[c] = packed;
  }
}

}  // namespace

Status NarrowToBf16(const Context& ctx, const Tensor& x, void* dst) {
  const RowLayout xl = RowsOf(x);
  if (xl.count == 0 || xl.width == 0) return Status::Ok();
  const int64_t row_stride = xl.count == 1 ? xl.width * 4 : xl.uniform;
  const bool x8 = row_stride >= 0 && row_stride % 16 == 0 && xl.width % 8 == 0 && x.strides[x.ndim - 1] == 4 &&
                  reinterpret_cast<uintptr_t>(x.data) % 16 == 0 && reinterpret_cast<uintptr_t>(dst) % 16 == 0;
  if (x8) {
    const int64_t chunks = xl.count * (xl.width / 8);
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(CeilDiv64(chunks, kThreads), 65535 * 16));
    NarrowToBf16x8Kernel<<<blocks, kThreads, 0, ctx.stream>>>(static_cast<const char*>(x.data), row_stride,
                                                              xl.width / 8, chunks, static_cast<uint4*>(dst));
  } else {
    NarrowToBf16Kernel<<<Grid(xl), kThreads, 0, ctx.stream>>>(xl, static_cast<__nv_bfloat16*>(dst));
  }
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

namespace {

template <typename Out, typename Encode>
void LaunchWiden(const Context& ctx, const Tensor& src, Out* dst, float scale, Encode encode) {
  const int64_t n = src.numel();
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(CeilDiv64(n, kThreads), 65535 * 8));
  const auto* u16 = static_cast<const uint16_t*>(src.data);
  const auto* u8 = static_cast<const uint8_t*>(src.data);
  switch (src.dtype) {
    case DType::kBF16:
      WidenKernel<<<blocks, kThreads, 0, ctx.stream>>>(u16, dst, n, scale, FromBf16{}, encode);
      break;
    case DType::kF16:
      WidenKernel<<<blocks, kThreads, 0, ctx.stream>>>(u16, dst, n, scale, FromF16{}, encode);
      break;
    case DType::kF8E4M3:
      WidenKernel<<<blocks, kThreads, 0, ctx.stream>>>(u8, dst, n, scale, FromE4M3{}, encode);
      break;
    case DType::kF8E5M2:
      WidenKernel<<<blocks, kThreads, 0, ctx.stream>>>(u8, dst, n, scale, FromE5M2{}, encode);
      break;
    case DType::kU8:
      WidenKernel<<<blocks, kThreads, 0, ctx.stream>>>(u8, dst, n, scale, FromU8{}, encode);
      break;
    case DType::kF32:
      WidenKernel<<<blocks, kThreads, 0, ctx.stream>>>(static_cast<const float*>(src.data), dst, n, scale, FromF32{},
                                                       encode);
      break;
  }
}

}  // namespace

Status Widen(const Context& ctx, const Tensor& src, const Tensor& dst, float scale) {
  const int64_t n = src.numel();
  if (n == 0) return Status::Ok();
  const size_t size = DTypeSize(src.dtype);
  if (reinterpret_cast<uintptr_t>(src.data) % size != 0) {
    return Error(Code::kInvalidArgument, "CUDA widen: a {} source must be aligned to its element",
                 DTypeName(src.dtype));
  }
  switch (dst.dtype) {
    case DType::kF32:
      LaunchWiden(ctx, src, dst.f32(), scale, ToF32{});
      break;
    case DType::kBF16:
      LaunchWiden(ctx, src, static_cast<__nv_bfloat16*>(dst.data), scale, ToBf16{});
      break;
    default:
      return Error(Code::kInvalidArgument, "CUDA widen: dst is {}; F32 or BF16", DTypeName(dst.dtype));
  }
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

Status GateResidual(const Context& ctx, const Tensor& x, const float* gate, const Tensor& f) {
  const RowLayout xl = RowsOf(x), fl = RowsOf(f);
  if (xl.count == 0 || xl.width == 0) return Status::Ok();
  if (xl.width % 4 == 0 && RowsAligned(xl, 16) && RowsAligned(fl, 16) && Aligned(gate, 16)) {
    GateResidualKernel4<<<Grid4(xl), kThreads, 0, ctx.stream>>>(xl, fl, gate);
    DS_CUDA_TRY_LAUNCH();
    return Status::Ok();
  }
  GateResidualKernel<<<Grid(xl), kThreads, 0, ctx.stream>>>(xl, fl, gate);
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

Status Multiply(const Context& ctx, const Tensor& x, const Tensor& f) { return Binary(ctx, x, f, Times{}, "mul"); }

Status Subtract(const Context& ctx, const Tensor& x, const Tensor& f) { return Binary(ctx, x, f, Minus{}, "sub"); }

Status Activate(const Context& ctx, const Tensor& x, Activation act) {
  const RowLayout xl = RowsOf(x);
  if (xl.count == 0 || xl.width == 0) return Status::Ok();
  switch (act) {
    case Activation::kGeluTanh:
      ActivationKernel<<<Grid(xl), kThreads, 0, ctx.stream>>>(xl, GeluTanh{});
      break;
    case Activation::kSilu:
      ActivationKernel<<<Grid(xl), kThreads, 0, ctx.stream>>>(xl, Silu{});
      break;
  }
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

}  // namespace ds::cuda
