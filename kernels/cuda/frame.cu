#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/frame.cuh"
#include "kernels/cuda/frame_math.h"

namespace ds::cuda {
namespace {

constexpr int kThreads = 256;

// One thread per pixel; `channels` 3 (RGB) or 4 (RGBA, alpha 255).
__global__ void __launch_bounds__(kThreads)
    PackedKernel(const float* planar, int64_t plane, int channels, unsigned char* out) {
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < plane; i += int64_t{gridDim.x} * kThreads) {
    PackPixel(planar, plane, channels, i, out);
  }
}

// One thread per 2×2 block (cut short at an odd edge): its luma samples and its chroma pair (I420:
// step 1 into two planes; NV12: step 2, v = u + 1; FrameLayout's u, v and chroma_step).
__global__ void __launch_bounds__(kThreads)
    Yuv420Kernel(const float* planar, int width, int height, YuvCoefficients k, unsigned char* y_plane,
                 unsigned char* u, unsigned char* v, int step) {
  const int cw = (width + 1) / 2, ch = (height + 1) / 2;
  const int64_t blocks = int64_t{cw} * ch;
  for (int64_t b = blockIdx.x * int64_t{kThreads} + threadIdx.x; b < blocks; b += int64_t{gridDim.x} * kThreads) {
    Yuv420Block(planar, width, height, static_cast<int>(b % cw), static_cast<int>(b / cw), k, y_plane, u, v, step);
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
  if (IsYuv420(format.pixels)) {
    Yuv420Kernel<<<Blocks(int64_t{(width + 1) / 2} * ((height + 1) / 2)), kThreads, 0, ctx.stream>>>(
        planar.f32(), width, height, CoefficientsOf(format.matrix), out, out + l.u, out + l.v, l.chroma_step);
  } else {
    PackedKernel<<<Blocks(plane), kThreads, 0, ctx.stream>>>(planar.f32(), plane,
                                                             format.pixels == PixelFormat::kRgba ? 4 : 3, out);
  }
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

}  // namespace ds::cuda
