// 3D patchify and unpatchify between a latent [C, T, H, W] and tokens [N, C·pt·ph·pw]
// (Backend::patchify, Backend::unpatchify): a gather and a scatter through PatchLatentOffset.
// Contiguous F32 device tensors.
#pragma once

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/patch_index.h"

namespace ds::cuda {

Status Patchify(const Context& ctx, const Tensor& latent, const PatchGeometry& g, const Tensor& tokens);
Status Unpatchify(const Context& ctx, const Tensor& tokens, const PatchGeometry& g, const Tensor& latent);

}  // namespace ds::cuda
