// Video frames from decoded planar RGB on the device (Backend::planar_to_pixels): RGB, RGBA, I420
// and NV12 bytes as core/frame.h computes them on the host, bit for bit, so only the frame's bytes
// (a quarter of the floats; I420 an eighth) cross to the host.
#pragma once

#include "core/frame.h"
#include "core/status.h"
#include "core/tensor.h"
#include "kernels/cuda/context.h"

namespace ds::cuda {

// planar: contiguous F32 [3, H, W]; frame: contiguous U8 of LayoutOf(format.pixels, W, H).bytes.
Status PlanarToPixels(const Context& ctx, const Tensor& planar, FrameFormat format, const Tensor& frame);

}  // namespace ds::cuda
