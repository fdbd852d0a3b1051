#include "kernels/cuda/norm.cuh"

#include <cuda_bf16.h>

#include <type_traits>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/rope.cuh"
#include "kernels/cuda/row_layout.h"
#include "kernels/cuda/warp.cuh"

namespace ds::cuda {
namespace {

// One warp per row: a warp streams a row of 64..5120 floats in coalesced 128-byte pieces, and the
// short per-head q/k rows (64..128) still keep every lane busy. The row is read three times
// (mean, variance, output); the re-reads hit L1. Two passes keep the variance accurate when
// |mean| ≫ std.
constexpr int kRowsPerBlock = 8;
constexpr int kThreads = kRowsPerBlock * kWarpSize;

// Elements of f32 or bf16 rows as floats and back (bf16 rounded to nearest even): the norms
// compute in f32 whichever they read and write.
__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class Elem>
__device__ __forceinline__ Elem FromFloat(float v) {
  if constexpr (std::is_same_v<Elem, float>) {
    return v;
  } else {
    return __float2bfloat16_rn(v);
  }
}

template <class Out>
__global__ void __launch_bounds__(kThreads) LayerNormKernel(RowLayout x, RowLayout y, LayerNormVectors v, float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= x.count) return;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t d = x.width;
  const float* xr = x.Row(row);
  Out* yr = reinterpret_cast<Out*>(y.Row(row));

  float sum = 0.0f;
  for (int64_t i = lane; i < d; i += kWarpSize) sum += xr[i];
  const float mean = WarpSum(sum) / static_cast<float>(d);
  float sq = 0.0f;
  for (int64_t i = lane; i < d; i += kWarpSize) sq += (xr[i] - mean) * (xr[i] - mean);
  const float rstd = rsqrtf(WarpSum(sq) / static_cast<float>(d) + eps);

  for (int64_t i = lane; i < d; i += kWarpSize) {
    float out = (xr[i] - mean) * rstd;
    if (v.weight) out *= v.weight[i];
    if (v.bias) out += v.bias[i];
    if (v.scale) out *= 1.0f + v.scale[i];
    if (v.shift) out += v.shift[i];
    yr[i] = FromFloat<Out>(out);
  }
}

// LayerNormKernel on float4 vectors (width a multiple of 4, x rows and the vectors 16-byte
// aligned, y rows aligned to 4 of its elements): a quarter of the load/store instructions, the
// form the Wan blocks' rows (1536, 5120 floats) take.

// Four consecutive elements of a row as floats: one 16-byte f32 or 8-byte bf16 access.
__device__ __forceinline__ float4 Load4(const float* row, int64_t i) { return reinterpret_cast<const float4*>(row)[i]; }
// A bf16 pair's bits as its two floats (bf16 → f32 is a 16-bit shift).
__device__ __forceinline__ float2 Bf16PairToFloat2(uint32_t bits) {
  return make_float2(__uint_as_float(bits << 16), __uint_as_float(bits & 0xffff0000u));
}
__device__ __forceinline__ float4 Load4(const __nv_bfloat16* row, int64_t i) {
  const uint2 u = reinterpret_cast<const uint2*>(row)[i];
  const float2 lo = Bf16PairToFloat2(u.x), hi = Bf16PairToFloat2(u.y);
  return make_float4(lo.x, lo.y, hi.x, hi.y);
}

__device__ __forceinline__ void Store4(float* y, int64_t i, const float (&v)[4]) {
  reinterpret_cast<float4*>(y)[i] = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ __forceinline__ void Store4(__nv_bfloat16* y, int64_t i, const float (&v)[4]) {
  __nv_bfloat162* pairs = reinterpret_cast<__nv_bfloat162*>(y) + 2 * i;  // 8-byte aligned: i counts 4-element groups
  pairs[0] = __floats2bfloat162_rn(v[0], v[1]);
  pairs[1] = __floats2bfloat162_rn(v[2], v[3]);
}

// The float4 LayerNorm kernels' per-vector pieces, shared so both compute the same bits: a
// vector's sum and squared deviation in one fixed order, and its output (normalised, then the
// affine and modulation vectors that are present) stored at vector i of y's row.
__device__ __forceinline__ float VectorSum(float4 a) { return (a.x + a.y) + (a.z + a.w); }
__device__ __forceinline__ float VectorSquaredDeviation(float4 a, float mean) {
  return (a.x - mean) * (a.x - mean) + (a.y - mean) * (a.y - mean) + (a.z - mean) * (a.z - mean) +
         (a.w - mean) * (a.w - mean);
}
template <class Out>
__device__ __forceinline__ void StoreNormalized(Out* yr, int64_t i, float4 a, float mean, float rstd,
                                                const LayerNormVectors& v) {
  float out[4] = {(a.x - mean) * rstd, (a.y - mean) * rstd, (a.z - mean) * rstd, (a.w - mean) * rstd};
  auto apply = [&](const float* vec, auto op) {
    if (!vec) return;
    const float4 b = Load4(vec, i);
    out[0] = op(out[0], b.x);
    out[1] = op(out[1], b.y);
    out[2] = op(out[2], b.z);
    out[3] = op(out[3], b.w);
  };
  apply(v.weight, [](float o, float w) { return o * w; });
  apply(v.bias, [](float o, float b) { return o + b; });
  apply(v.scale, [](float o, float c) { return o * (1.0f + c); });
  apply(v.shift, [](float o, float h) { return o + h; });
  Store4(yr, i, out);
}

template <class Out>
__global__ void __launch_bounds__(kThreads) LayerNormKernel4(RowLayout x, RowLayout y, LayerNormVectors v, float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= x.count) return;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t vectors = x.width / 4;
  const float* xr = x.Row(row);
  Out* yr = reinterpret_cast<Out*>(y.Row(row));

  float sum = 0.0f;
  for (int64_t i = lane; i < vectors; i += kWarpSize) sum += VectorSum(Load4(xr, i));
  const float mean = WarpSum(sum) / static_cast<float>(x.width);
  float sq = 0.0f;
  for (int64_t i = lane; i < vectors; i += kWarpSize) sq += VectorSquaredDeviation(Load4(xr, i), mean);
  const float rstd = rsqrtf(WarpSum(sq) / static_cast<float>(x.width) + eps);
  for (int64_t i = lane; i < vectors; i += kWarpSize) StoreNormalized(yr, i, Load4(xr, i), mean, rstd, v);
}

// Lane `lane`'s vectors of a row of `vectors` 4-element vectors (lane, lane + 32, …), every load
// issued before any is used; zeros past the row's end.
template <int kVec, class Elem>
__device__ __forceinline__ void LoadRowVectors(const Elem* row, int vectors, int lane, float4 (&a)[kVec]) {
#pragma unroll
  for (int j = 0; j < kVec; ++j) {
    const int i = lane + j * kWarpSize;
    a[j] = i < vectors ? Load4(row, i) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
}

// LayerNormKernel4 for rows of at most 32·kVec float4 vectors (the 1.3B's 1536 floats: kVec 12):
// each lane loads its vectors once, all loads in flight together, and keeps them in registers
// for the mean, the variance and the output, where the streaming kernel re-reads the row twice
// (from L1 when it still holds it) and has one load in flight per loop turn. The same sums in the
// same order: the same bits.
template <int kVec, class Out>
__global__ void __launch_bounds__(kThreads)
    LayerNormRegsKernel(RowLayout x, RowLayout y, LayerNormVectors v, float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= x.count) return;
  const int lane = threadIdx.x % kWarpSize;
  const int vectors = static_cast<int>(x.width / 4);
  const float* xr = x.Row(row);
  Out* yr = reinterpret_cast<Out*>(y.Row(row));

  float4 a[kVec];
  LoadRowVectors(xr, vectors, lane, a);
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < kVec; ++j) {
    if (lane + j * kWarpSize < vectors) sum += VectorSum(a[j]);
  }
  const float mean = WarpSum(sum) / static_cast<float>(x.width);
  float sq = 0.0f;
#pragma unroll
  for (int j = 0; j < kVec; ++j) {
    if (lane + j * kWarpSize < vectors) sq += VectorSquaredDeviation(a[j], mean);
  }
  const float rstd = rsqrtf(WarpSum(sq) / static_cast<float>(x.width) + eps);
#pragma unroll
  for (int j = 0; j < kVec; ++j) {
    const int i = lane + j * kWarpSize;
    if (i >= vectors) break;
    StoreNormalized(yr, i, a[j], mean, rstd, v);
  }
}

// Register-resident row kernels exist for rows of up to this many float4 vectors per lane.
constexpr int kMaxRegVectors = 12;

// In place over rows of f32 or bf16 (computed in f32, rounded once).

template <class Elem>
__global__ void __launch_bounds__(kThreads) RmsNormKernel(RowLayout x, const float* weight, float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= x.count) return;
  const int lane = threadIdx.x % kWarpSize;
  Elem* xr = reinterpret_cast<Elem*>(x.Row(row));
  float sq = 0.0f;
  for (int64_t i = lane; i < x.width; i += kWarpSize) sq += ToFloat(xr[i]) * ToFloat(xr[i]);
  const float inv = rsqrtf(WarpSum(sq) / static_cast<float>(x.width) + eps);
  for (int64_t i = lane; i < x.width; i += kWarpSize) xr[i] = FromFloat<Elem>(ToFloat(xr[i]) * inv * weight[i]);
}

// RmsNormKernel on 4-element vectors kept in registers (rows of at most 32·kVec vectors, aligned:
// the Wan block's cross-attention q and k, 1536 bf16 or f32): one load and one store per element
// instead of 2-byte scalar accesses read twice. The sum of squares goes per vector, then over the
// lane's vectors in order: other bits than RmsNormKernel's element order, the same value to f32
// rounding.
template <int kVec, class Elem>
__global__ void __launch_bounds__(kThreads) RmsNormRegsKernel(RowLayout x, const float* weight, float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= x.count) return;
  const int lane = threadIdx.x % kWarpSize;
  const int vectors = static_cast<int>(x.width / 4);
  Elem* xr = reinterpret_cast<Elem*>(x.Row(row));
  float4 a[kVec];
  LoadRowVectors(xr, vectors, lane, a);
  float sq = 0.0f;
#pragma unroll
  for (int j = 0; j < kVec; ++j) sq += (a[j].x * a[j].x + a[j].y * a[j].y) + (a[j].z * a[j].z + a[j].w * a[j].w);
  const float inv = rsqrtf(WarpSum(sq) / static_cast<float>(x.width) + eps);
  const float4* w = reinterpret_cast<const float4*>(weight);
#pragma unroll
  for (int j = 0; j < kVec; ++j) {
    const int i = lane + j * kWarpSize;
    if (i >= vectors) break;
    const float4 wi = w[i];
    const float out[4] = {a[j].x * inv * wi.x, a[j].y * inv * wi.y, a[j].z * inv * wi.z, a[j].w * inv * wi.w};
    Store4(xr, i, out);
  }
}

// RmsNormKernel on 4-element vectors for aligned rows wider than the register kernels hold (the
// 14B's 5120): one vector access a lane and turn instead of four scalar ones, the row read twice
// (the second time from L1, as LayerNormKernel4 does), with RmsNormRegsKernel's per-vector sums.
template <class Elem>
__global__ void __launch_bounds__(kThreads) RmsNormKernel4(RowLayout x, const float* weight, float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= x.count) return;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t vectors = x.width / 4;
  Elem* xr = reinterpret_cast<Elem*>(x.Row(row));
  float sq = 0.0f;
  for (int64_t i = lane; i < vectors; i += kWarpSize) {
    const float4 a = Load4(xr, i);
    sq += (a.x * a.x + a.y * a.y) + (a.z * a.z + a.w * a.w);
  }
  const float inv = rsqrtf(WarpSum(sq) / static_cast<float>(x.width) + eps);
  const float4* w = reinterpret_cast<const float4*>(weight);
  for (int64_t i = lane; i < vectors; i += kWarpSize) {
    const float4 a = Load4(xr, i), wi = w[i];
    const float out[4] = {a.x * inv * wi.x, a.y * inv * wi.y, a.z * inv * wi.z, a.w * inv * wi.w};
    Store4(xr, i, out);
  }
}

// The register-resident kernel with the fewest vectors per lane that holds a row of `vectors`
// (a multiple of 4 up to kMaxRegVectors), launched by `launch`; false when the row is wider.
template <class Launch>
bool WithRegVectors(int64_t vectors, Launch&& launch) {
  const int64_t per_lane = CeilDiv64(vectors, kWarpSize);
  if (per_lane <= 4) return launch(std::integral_constant<int, 4>{}), true;
  if (per_lane <= 8) return launch(std::integral_constant<int, 8>{}), true;
  if (per_lane <= kMaxRegVectors) return launch(std::integral_constant<int, kMaxRegVectors>{}), true;
  return false;
}

// One warp per token row of q or k: the sum of squares over 4-element vectors, then a second pass
// (an L1 hit: the block's 8 rows are 48 KB at the 1.3B's width in f32) that scales by weight and
// rotates both pairs of each vector (a pair never straddles a vector, nor a vector two heads, as
// dh is a multiple of 4). x is read once and written once from memory, where RmsNorm then Rope
// each do both. Rows of f32 or bf16 (computed in f32, rounded once).
template <class Elem>
__global__ void __launch_bounds__(kThreads)
    RmsNormRopeKernel(RowLayout x, const float* weight, float eps, RowLayout cos, RowLayout sin, int head_dim) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= x.count) return;
  const int lane = threadIdx.x % kWarpSize;
  Elem* xr = reinterpret_cast<Elem*>(x.Row(row));
  const float4* w = reinterpret_cast<const float4*>(weight);
  const float* c = cos.Row(row);
  const float* s = sin.Row(row);
  const int64_t vectors = x.width / 4;
  float sq = 0.0f;
  for (int64_t i = lane; i < vectors; i += kWarpSize) {
    const float4 v = Load4(xr, i);
    sq += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
  }
  const float inv = rsqrtf(WarpSum(sq) / static_cast<float>(x.width) + eps);
  for (int64_t i = lane; i < vectors; i += kWarpSize) {
    const float4 v = Load4(xr, i), wi = w[i];
    const float x0 = v.x * inv * wi.x, x1 = v.y * inv * wi.y, x2 = v.z * inv * wi.z, x3 = v.w * inv * wi.w;
    const int64_t j = (4 * i) % head_dim / 2;  // pair of x0, x1; x2, x3 are pair j + 1 (j is even)
    const float2 cj = *reinterpret_cast<const float2*>(c + j), sj = *reinterpret_cast<const float2*>(s + j);
    const float out[4] = {x0 * cj.x - x1 * sj.x, x0 * sj.x + x1 * cj.x, x2 * cj.y - x3 * sj.y, x2 * sj.y + x3 * cj.y};
    Store4(xr, i, out);
  }
}

dim3 RowBlocks(int64_t rows) { return dim3(static_cast<unsigned>(CeilDiv64(rows, kRowsPerBlock))); }

}  // namespace

Status LayerNorm(const Context& ctx, const Tensor& x, const LayerNormVectors& vectors, float eps, const Tensor& y) {
  const RowLayout xl = RowsOf(x), yl = RowsOf(y);
  if (x.dtype != DType::kF32 || yl.count != xl.count || yl.width != xl.width) {
    return Error(Code::kInvalidArgument,
                 "CUDA layer_norm: x {} ({}) and y {} must be F32 rows and rows of the same shape", x.shape_string(),
                 DTypeName(x.dtype), y.shape_string());
  }
  if (xl.count == 0) return Status::Ok();
  if (y.dtype != DType::kF32 && y.dtype != DType::kBF16) {
    return Error(Code::kInvalidArgument, "CUDA layer_norm: y is {}, not F32 or BF16", DTypeName(y.dtype));
  }
  const bool bf16 = y.dtype == DType::kBF16;
  const bool vectorised = xl.width % 4 == 0 && RowsAligned(xl, 16) && RowsAligned(yl, bf16 ? 8 : 16) &&
                          Aligned(vectors.weight, 16) && Aligned(vectors.bias, 16) && Aligned(vectors.scale, 16) &&
                          Aligned(vectors.shift, 16);
  const dim3 grid = RowBlocks(xl.count);
  const bool in_registers =
      vectorised && WithRegVectors(xl.width / 4, [&](auto vec) {
        if (bf16) {
          LayerNormRegsKernel<decltype(vec)::value, __nv_bfloat16>
              <<<grid, kThreads, 0, ctx.stream>>>(xl, yl, vectors, eps);
        } else {
          LayerNormRegsKernel<decltype(vec)::value, float><<<grid, kThreads, 0, ctx.stream>>>(xl, yl, vectors, eps);
        }
      });
  if (in_registers) {
    // launched
  } else if (vectorised && bf16) {
    LayerNormKernel4<__nv_bfloat16><<<grid, kThreads, 0, ctx.stream>>>(xl, yl, vectors, eps);
  } else if (vectorised) {
    LayerNormKernel4<float><<<grid, kThreads, 0, ctx.stream>>>(xl, yl, vectors, eps);
  } else if (bf16) {
    LayerNormKernel<__nv_bfloat16><<<grid, kThreads, 0, ctx.stream>>>(xl, yl, vectors, eps);
  } else {
    LayerNormKernel<float><<<grid, kThreads, 0, ctx.stream>>>(xl, yl, vectors, eps);
  }
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

Status RmsNorm(const Context& ctx, const Tensor& x, const float* weight, float eps) {
  const RowLayout xl = RowsOf(x);
  if (xl.count == 0) return Status::Ok();
  const bool bf16 = x.dtype == DType::kBF16;
  const dim3 grid = RowBlocks(xl.count);
  const bool vectorised =
      (bf16 || x.dtype == DType::kF32) && xl.width % 4 == 0 && RowsAligned(xl, bf16 ? 8 : 16) && Aligned(weight, 16);
  const bool in_registers =
      vectorised && WithRegVectors(xl.width / 4, [&](auto vec) {
        if (bf16) {
          RmsNormRegsKernel<decltype(vec)::value, __nv_bfloat16><<<grid, kThreads, 0, ctx.stream>>>(xl, weight, eps);
        } else {
          RmsNormRegsKernel<decltype(vec)::value, float><<<grid, kThreads, 0, ctx.stream>>>(xl, weight, eps);
        }
      });
  if (in_registers) {
    // launched
  } else if (vectorised && bf16) {
    RmsNormKernel4<__nv_bfloat16><<<grid, kThreads, 0, ctx.stream>>>(xl, weight, eps);
  } else if (vectorised) {
    RmsNormKernel4<float><<<grid, kThreads, 0, ctx.stream>>>(xl, weight, eps);
  } else if (bf16) {
    RmsNormKernel<__nv_bfloat16><<<grid, kThreads, 0, ctx.stream>>>(xl, weight, eps);
  } else if (x.dtype == DType::kF32) {
    RmsNormKernel<float><<<grid, kThreads, 0, ctx.stream>>>(xl, weight, eps);
  } else {
    return Error(Code::kInvalidArgument, "CUDA rms_norm: x is {}, not F32 or BF16", DTypeName(x.dtype));
  }
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

Status RmsNormRope(const Context& ctx, const Tensor& x, const float* weight, float eps, const Tensor& cos,
                   const Tensor& sin, int64_t heads) {
  const RowLayout xl = RowsOf(x), cl = RowsOf(cos), sl = RowsOf(sin);
  if (xl.count == 0) return Status::Ok();
  if (x.ndim != 2 || heads <= 0 || xl.width % heads != 0 || cl.count != xl.count || sl.count != xl.count ||
      cl.width * 2 * heads != xl.width || sl.width != cl.width) {
    return Error(Code::kInvalidArgument, "CUDA rms_norm_rope: x {} in {} heads, cos {}, sin {}", x.shape_string(),
                 heads, cos.shape_string(), sin.shape_string());
  }
  const int64_t head_dim = xl.width / heads;
  const bool bf16 = x.dtype == DType::kBF16;
  if (xl.width % 4 == 0 && head_dim % 4 == 0 && RowsAligned(xl, bf16 ? 8 : 16) && Aligned(weight, 16) &&
      RowsAligned(cl, 8) && RowsAligned(sl, 8)) {
    const dim3 grid = RowBlocks(xl.count);
    if (bf16) {
      RmsNormRopeKernel<__nv_bfloat16>
          <<<grid, kThreads, 0, ctx.stream>>>(xl, weight, eps, cl, sl, static_cast<int>(head_dim));
    } else {
      RmsNormRopeKernel<float><<<grid, kThreads, 0, ctx.stream>>>(xl, weight, eps, cl, sl, static_cast<int>(head_dim));
    }
    DS_CUDA_TRY_LAUNCH();
    return Status::Ok();
  }
  if (bf16) {  // the separate kernels are f32 only
    return Error(Code::kInvalidArgument,
                 "CUDA rms_norm_rope: BF16 rows need a width and head dim that are multiples of 4 and 8-byte aligned "
                 "rows (x {}, {} heads)",
                 x.shape_string(), heads);
  }
  DS_TRY(RmsNorm(ctx, x, weight, eps));
  return Rope(ctx, SplitHeads(x, heads), cos, sin);
}

}  // namespace ds::cuda
