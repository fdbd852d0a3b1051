#include "kernels/cuda/conv.cuh"

#include <algorithm>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/row_layout.h"
#include "kernels/cuda/warp.cuh"

namespace ds::cuda {
namespace {

constexpr int kThreads = 256;
// The im2col matrix is 9·C floats per pixel: 4 GB for a 480p VAE layer with a 3-frame history (288
// channels), 9.6 GB at 720p. It is built and multiplied in bands of pixels of at most this many
// floats (256 MB), so the arena holds one band.
constexpr int64_t kMaxIm2colFloats = int64_t{1} << 26;

// col[p − p0, c·9 + tap] = x[c, i + di, j + dj] (0 outside), p = i·W + j, tap = (di + 1)·3 + dj + 1:
// the column order of w[O, C, 3, 3] flattened. One block per pixel so the writes are coalesced; the
// scattered reads of x stay in L1/L2 (x is 9× smaller than col).
__global__ void __launch_bounds__(kThreads)
    Im2colKernel(RowLayout x, int64_t height, int64_t width, int64_t channels, int64_t p0, float* col) {
  const int64_t p = p0 + blockIdx.x, i = p / width, j = p % width, k_total = 9 * channels;
  for (int64_t k = threadIdx.x; k < k_total; k += kThreads) {
    const int64_t c = k / 9, tap = k % 9, si = i + tap / 3 - 1, sj = j + tap % 3 - 1;
    const bool inside = si >= 0 && si < height && sj >= 0 && sj < width;
    col[static_cast<int64_t>(blockIdx.x) * k_total + k] = inside ? x.Row(c * height + si)[sj] : 0.0f;
  }
}

// d[o, p] = bias[o]: the GEMM then accumulates (beta = 1) on top.
__global__ void __launch_bounds__(kThreads) FillBiasKernel(float* d, int64_t pixels, const float* bias) {
  const float b = bias[blockIdx.x];
  float* row = d + static_cast<int64_t>(blockIdx.x) * pixels;
  for (int64_t p = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x; p < pixels;
       p += static_cast<int64_t>(gridDim.y) * kThreads) {
    row[p] = b;
  }
}

__global__ void __launch_bounds__(kThreads) CopyRowsKernel(RowLayout x, RowLayout y) {
  const float* xr = x.Row(blockIdx.x);
  float* yr = y.Row(blockIdx.x);
  for (int64_t i = threadIdx.x; i < x.width; i += kThreads) yr[i] = xr[i];
}

}  // namespace

Status CopyRows(const Context& ctx, const Tensor& x, const Tensor& y) {
  const RowLayout xl = RowsOf(x);
  if (xl.count == 0) return Status::Ok();
  CopyRowsKernel<<<static_cast<unsigned>(xl.count), kThreads, 0, ctx.stream>>>(xl, RowsOf(y));
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

Status Conv3x3(const Context& ctx, const Tensor& x, const Tensor& w, const float* bias, const Tensor& y) {
  const int64_t channels = x.shape[0], height = x.shape[1], width = x.shape[2], out = w.shape[0];
  const int64_t pixels = height * width, k = 9 * channels;
  if (pixels == 0 || out == 0) return Status::Ok();
  // Bands of whole 64-pixel groups keep every band's first row of D 256-byte aligned for cuBLASLt.
  const int64_t band = std::min(pixels, std::max<int64_t>(64, kMaxIm2colFloats / k / 64 * 64));
  Scratch scratch(ctx);
  DS_ASSIGN_OR_RETURN(void* col, scratch.Allocate(static_cast<size_t>(band * k) * sizeof(float), "conv3x3 im2col"));
  float* d = y.f32();
  if (!y.contiguous()) {
    DS_ASSIGN_OR_RETURN(void* tmp, scratch.Allocate(static_cast<size_t>(out * pixels) * sizeof(float), "conv3x3 out"));
    d = static_cast<float*>(tmp);
  }
  const unsigned spans = static_cast<unsigned>(CeilDiv64(pixels, kThreads) < 64 ? CeilDiv64(pixels, kThreads) : 64);
  FillBiasKernel<<<dim3(static_cast<unsigned>(out), spans), kThreads, 0, ctx.stream>>>(d, pixels, bias);
  DS_CUDA_TRY_LAUNCH();

  // Row-major y[O, P] is column-major D[P, O] (ld P) = colᵀ·w: col is stored [P, K] row-major =
  // column-major K×P, transposed; w [O, K] row-major = column-major K×O. A band of pixels is the
  // rows [p0, p0 + n) of D.
  const RowLayout xl = RowsOf(x);
  for (int64_t p0 = 0; p0 < pixels; p0 += band) {
    const int64_t n = std::min(band, pixels - p0);
    Im2colKernel<<<static_cast<unsigned>(n), kThreads, 0, ctx.stream>>>(xl, height, width, channels, p0,
                                                                        static_cast<float*>(col));
    DS_CUDA_TRY_LAUNCH();
    GemmArgs g;
    g.trans_a = true;
    g.m = n;
    g.n = out;
    g.k = k;
    g.a = static_cast<const float*>(col);
    g.lda = k;
    g.b = w.f32();
    g.ldb = k;
    g.d = d + p0;
    g.ldd = pixels;
    g.beta = 1.0f;
    DS_TRY(Gemm(ctx, g));
  }
  if (d != y.f32()) {
    DS_TRY(CopyRows(ctx, Tensor::View(d, DType::kF32, {out, height, width}, Device::kCuda), y));
  }
  return Status::Ok();
}

}  // namespace ds::cuda
