#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/frame.cuh"

namespace ds::cuda {
namespace {

constexpr int kThreads = 256;

// core/frame.cpp's arithmetic: the same float operations (an add, a multiply, a clamp, a round
// half away from zero) and the same integer coefficients (CoefficientsOf, passed by value).
__device__ __forceinline__ int Byte(float v) {
  return static_cast<int>(lroundf(fminf(fmaxf((v + 1.0f) * 127.5f, 0.0f), 255.0f)));
}

__device__ __forceinline__ unsigned char Luma(const YuvCoefficients& c, long long r, long long g, long long b) {
  return static_cast<unsigned char>((c.y[0] * r + c.y[1] * g + c.y[2] * b + (16 << 16) + (1 << 15)) >> 16);
}

__device__ __forceinline__ unsigned char Chroma(const int32_t k[3], long long r, long long g, long long b,
                                                long long n) {
  const long long scale = n << 16;
  return static_cast<unsigned char>((k[0] * r + k[1] * g + k[2] * b + 128 * scale + scale / 2) / scale);
}

// One thread per pixel; `channels` 3 (RGB) or 4 (RGBA, alpha 255).
__global__ void __launch_bounds__(kThreads)
    PackedKernel(const float* planar, int64_t plane, int channels, unsigned char* out) {
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < plane; i += int64_t{gridDim.x} * kThreads) {
    unsigned char* p = out + i * channels;
    for (int c = 0; c < 3; ++c) p[c] = static_cast<unsigned char>(Byte(planar[c * plane + i]));
    if (channels == 4) p[3] = 255;
  }
}

// One thread per 2×2 block (cut short at an odd edge): its luma samples and its chroma pair.
__global__ void __launch_bounds__(kThreads)
    I420Kernel(const float* planar, int width, int height, YuvCoefficients c, unsigned char* y_plane,
               unsigned char* u_plane, unsigned char* v_plane) {
  const int cw = (width + 1) / 2, ch = (height + 1) / 2;
  const int64_t plane = int64_t{width} * height, blocks = int64_t{cw} * ch;
  for (int64_t k = blockIdx.x * int64_t{kThreads} + threadIdx.x; k < blocks; k += int64_t{gridDim.x} * kThreads) {
    const int cx = static_cast<int>(k % cw), cy = static_cast<int>(k / cw);
    long long r = 0, g = 0, b = 0, n = 0;
    for (int y = 2 * cy; y < min(2 * cy + 2, height); ++y) {
      for (int x = 2 * cx; x < min(2 * cx + 2, width); ++x, ++n) {
        const int64_t i = int64_t{y} * width + x;
        const int pr = Byte(planar[i]), pg = Byte(planar[plane + i]), pb = Byte(planar[2 * plane + i]);
        y_plane[i] = Luma(c, pr, pg, pb);
        r += pr;
        g += pg;
        b += pb;
      }
    }
    u_plane[k] = Chroma(c.u, r, g, b, n);
    v_plane[k] = Chroma(c.v, r, g, b, n);
  }
}

unsigned Blocks(int64_t items) {
  const int64_t blocks = (items + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535 * 8 ? blocks : 65535 * 8);
}

}  // namespace

Status PlanarToPixels(const Context& ctx, const Tensor& planar, FrameFormat format, const Tensor& frame) {
  const int height = planar.ndim == 3 ? static_cast<int>(planar.shape[1]) : 0;
  const int width = planar.ndim == 3 ? static_cast<int>(planar.shape[2]) : 0;
  const FrameLayout l = LayoutOf(format.pixels, width, height);
  if (planar.ndim != 3 || planar.shape[0] != 3 || planar.dtype != DType::kF32 || !planar.contiguous() ||
      frame.dtype != DType::kU8 || !frame.contiguous() || frame.nbytes() != l.bytes) {
    return Error(Code::kInvalidArgument,
                 "CUDA planar_to_pixels: planar {} {} (contiguous F32 [3, H, W]) into {} frame {} {} ({} bytes)",
                 DTypeName(planar.dtype), planar.shape_string(), PixelFormatName(format.pixels), DTypeName(frame.dtype),
                 frame.shape_string(), l.bytes);
  }
  if (l.bytes == 0) return Status::Ok();
  auto* out = static_cast<unsigned char*>(frame.data);
  const int64_t plane = int64_t{width} * height;
  if (format.pixels == PixelFormat::kI420) {
    I420Kernel<<<Blocks(int64_t{l.stride[1]} * l.rows[1]), kThreads, 0, ctx.stream>>>(
        planar.f32(), width, height, CoefficientsOf(format.matrix), out, out + l.offset[1], out + l.offset[2]);
  } else {
    PackedKernel<<<Blocks(plane), kThreads, 0, ctx.stream>>>(planar.f32(), plane,
                                                             format.pixels == PixelFormat::kRgba ? 4 : 3, out);
  }
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

}  // namespace ds::cuda
