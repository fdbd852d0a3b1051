#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/patchify.cuh"

namespace ds::cuda {
namespace {

constexpr int kThreads = 256;

// One thread per token value: consecutive threads write (patchify) or read (unpatchify)
// consecutive token values, the contiguous side; the latent side is a permutation of it.
__global__ void __launch_bounds__(kThreads) GatherKernel(const float* latent, PatchGeometry g, float* tokens) {
  const int64_t n = g.Elements();
  for (int64_t e = blockIdx.x * int64_t{kThreads} + threadIdx.x; e < n; e += int64_t{gridDim.x} * kThreads) {
    tokens[e] = latent[PatchLatentOffset(g, e)];
  }
}

__global__ void __launch_bounds__(kThreads) ScatterKernel(const float* tokens, PatchGeometry g, float* latent) {
  const int64_t n = g.Elements();
  for (int64_t e = blockIdx.x * int64_t{kThreads} + threadIdx.x; e < n; e += int64_t{gridDim.x} * kThreads) {
    latent[PatchLatentOffset(g, e)] = tokens[e];
  }
}

Status Check(const Tensor& latent, const PatchGeometry& g, const Tensor& tokens, const char* op) {
  const bool fits = g.pt > 0 && g.ph > 0 && g.pw > 0 && g.frames % g.pt == 0 && g.height % g.ph == 0 &&
                    g.width % g.pw == 0 && latent.numel() == g.Elements() && tokens.numel() == g.Elements();
  if (!fits || latent.dtype != DType::kF32 || tokens.dtype != DType::kF32 || !latent.contiguous() ||
      !tokens.contiguous()) {
    return Error(Code::kInvalidArgument,
                 "CUDA {}: latent {} {} and tokens {} {} do not match the {}x{}x{} patch (contiguous F32 needed)", op,
                 DTypeName(latent.dtype), latent.shape_string(), DTypeName(tokens.dtype), tokens.shape_string(), g.pt,
                 g.ph, g.pw);
  }
  return Status::Ok();
}

unsigned Blocks(const PatchGeometry& g) {
  const int64_t blocks = (g.Elements() + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535 * 8 ? blocks : 65535 * 8);
}

}  // namespace

Status Patchify(const Context& ctx, const Tensor& latent, const PatchGeometry& g, const Tensor& tokens) {
  DS_TRY(Check(latent, g, tokens, "patchify"));
  if (g.Elements() == 0) return Status::Ok();
  GatherKernel<<<Blocks(g), kThreads, 0, ctx.stream>>>(latent.f32(), g, tokens.f32());
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

Status Unpatchify(const Context& ctx, const Tensor& tokens, const PatchGeometry& g, const Tensor& latent) {
  DS_TRY(Check(latent, g, tokens, "unpatchify"));
  if (g.Elements() == 0) return Status::Ok();
  ScatterKernel<<<Blocks(g), kThreads, 0, ctx.stream>>>(tokens.f32(), g, latent.f32());
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

}  // namespace ds::cuda
