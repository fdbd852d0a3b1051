#include "kernels/cuda/elementwise.cuh"

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

// One thread per element, a grid-stride loop: 16-bit weights → float32, memory-bound.
template <bool kBf16>
__global__ void __launch_bounds__(kThreads) WidenKernel(const uint16_t* src, float* dst, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride) {
    const uint16_t v = src[i];
    dst[i] = kBf16 ? __uint_as_float(static_cast<uint32_t>(v) << 16) : __half2float(__ushort_as_half(v));
  }
}

}  // namespace

Status WidenToF32(const Context& ctx, const Tensor& src, const Tensor& dst) {
  const int64_t n = src.numel();
  if (n == 0) return Status::Ok();
  if (src.dtype != DType::kBF16 && src.dtype != DType::kF16) {
    return Error(Code::kInvalidArgument, "CUDA widen_to_f32: source is {}, not F16 or BF16", DTypeName(src.dtype));
  }
  if (reinterpret_cast<uintptr_t>(src.data) % 2 != 0) {
    return Error(Code::kInvalidArgument, "CUDA widen_to_f32: source is not 2-byte aligned");
  }
  const auto* in = static_cast<const uint16_t*>(src.data);
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(CeilDiv64(n, kThreads), 65535 * 8));
  if (src.dtype == DType::kBF16) {
    WidenKernel<true><<<blocks, kThreads, 0, ctx.stream>>>(in, dst.f32(), n);
  } else {
    WidenKernel<false><<<blocks, kThreads, 0, ctx.stream>>>(in, dst.f32(), n);
  }
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

Status GateResidual(const Context& ctx, const Tensor& x, const float* gate, const Tensor& f) {
  const RowLayout xl = RowsOf(x);
  if (xl.count == 0 || xl.width == 0) return Status::Ok();
  GateResidualKernel<<<Grid(xl), kThreads, 0, ctx.stream>>>(xl, RowsOf(f), gate);
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

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
