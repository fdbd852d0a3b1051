#include "kernels/cuda/attention/attention.h"

#include <algorithm>

#include "kernels/cuda/attention/naive_attention.cuh"
#include "kernels/cuda/elementwise.cuh"

namespace ds::cuda {
namespace {

int64_t FloatStride(const Tensor& t, int dim) { return t.strides[dim] / static_cast<int64_t>(sizeof(float)); }

// Heads [h0, h0 + count) of an f32 x[N, H, dh] view (any token and head strides) as a contiguous
// bf16 [N, count, dh] buffer: the input format of the flash kernel. When the heads are contiguous
// within a token (q/k/v as [N, H·dh] rows, strided or not), each token's heads are one row.
Status HeadsToBf16(const Context& ctx, const Tensor& x, int64_t h0, int64_t count, void* out) {
  Tensor heads = x;
  heads.shape[1] = count;
  heads.data = static_cast<char*>(x.data) + h0 * x.strides[1];
  if (x.strides[2] == 4 && x.strides[1] == x.shape[2] * 4) {
    heads.ndim = 2;
    heads.shape[1] = count * x.shape[2];
    heads.strides[1] = 4;
  }
  return NarrowToBf16(ctx, heads, out);
}

bool OutputFitsFlash(const Tensor& o) {
  return reinterpret_cast<uintptr_t>(o.data) % 8 == 0 && o.strides[0] % 8 == 0 && o.strides[1] % 8 == 0;
}

}  // namespace

Status Attention(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, float scale, const Tensor& o,
                 AttentionKernel kernel, const flash::Choice& flash) {
  const int64_t nq = q.shape[0], heads = q.shape[1], dh = q.shape[2], nk = k.shape[0];
  if (nq == 0 || heads == 0) return Status::Ok();
  if (nk == 0) return Error(Code::kInvalidArgument, "CUDA attention: no keys (k {})", k.shape_string());
  if (kernel == AttentionKernel::kNaiveF32 || !flash::SupportsHeadDim(static_cast<int>(dh)) || !OutputFitsFlash(o)) {
    return NaiveAttention(ctx, q, k, v, scale, o);
  }

  // Convert as many heads at a time as the free arena holds (all of them, normally). The wgmma
  // configurations also take one head's Vᵀ in scratch.
  const int config = flash.index(static_cast<int>(dh));
  const size_t vt_per_head = flash::ScratchBytes(static_cast<int>(dh), config, 1, static_cast<int>(nk));
  Scratch scratch(ctx);
  const size_t per_head = static_cast<size_t>(nq + 2 * nk) * static_cast<size_t>(dh) * 2 + vt_per_head;
  const size_t free_bytes = ctx.arena->capacity() - ctx.arena->used();
  const size_t slack = 4 * Arena::kAlign;
  const int64_t group =
      std::min<int64_t>(heads, free_bytes > slack ? static_cast<int64_t>((free_bytes - slack) / per_head) : 0);
  if (group == 0) {
    return Error(Code::kOutOfMemory,
                 "CUDA attention: {} bytes of bf16 q/k/v for one head do not fit the arena ({} free)", per_head,
                 free_bytes);
  }
  DS_ASSIGN_OR_RETURN(void* qb, scratch.Allocate(static_cast<size_t>(nq * group * dh) * 2, "attention bf16 q"));
  DS_ASSIGN_OR_RETURN(void* kb, scratch.Allocate(static_cast<size_t>(nk * group * dh) * 2, "attention bf16 k"));
  DS_ASSIGN_OR_RETURN(void* vb, scratch.Allocate(static_cast<size_t>(nk * group * dh) * 2, "attention bf16 v"));
  void* vt = nullptr;
  if (vt_per_head > 0) {
    DS_ASSIGN_OR_RETURN(vt, scratch.Allocate(vt_per_head * static_cast<size_t>(group), "attention bf16 v transposed"));
  }

  for (int64_t h0 = 0; h0 < heads; h0 += group) {
    const int64_t count = std::min(group, heads - h0);
    DS_TRY(HeadsToBf16(ctx, q, h0, count, qb));
    DS_TRY(HeadsToBf16(ctx, k, h0, count, kb));
    DS_TRY(HeadsToBf16(ctx, v, h0, count, vb));
    flash::Params p;
    p.q = qb;
    p.k = kb;
    p.v = vb;
    p.o = o.f32() + h0 * FloatStride(o, 1);
    p.q_row = p.k_row = p.v_row = count * dh;
    p.q_head = p.k_head = p.v_head = dh;
    p.o_row = FloatStride(o, 0);
    p.o_head = FloatStride(o, 1);
    p.nq = static_cast<int>(nq);
    p.nk = static_cast<int>(nk);
    p.heads = static_cast<int>(count);
    p.scale_log2 = scale * flash::kLog2e;
    p.v_t = vt;
    DS_TRY(flash::Forward(p, static_cast<int>(dh), ctx.stream, config));
  }
  return Status::Ok();
}

}  // namespace ds::cuda
