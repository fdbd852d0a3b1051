#include "kernels/cuda/attention/attention.h"

#include <algorithm>

#include "kernels/cuda/attention/naive_attention.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/row_layout.h"

namespace ds::cuda {
namespace {

int64_t ElementStride(const Tensor& t, int dim) { return t.strides[dim] / static_cast<int64_t>(DTypeSize(t.dtype)); }

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

// A BF16 q/k/v the flash kernel reads in place: 16-byte aligned rows, contiguous heads.
bool Bf16InputFitsFlash(const Tensor& t) {
  return t.dtype == DType::kBF16 && t.strides[2] == 2 && Aligned(t.data, 16) && ElementStride(t, 0) % 8 == 0 &&
         ElementStride(t, 1) % 8 == 0;
}

// o rows of whole f32 or bf16 pairs.
bool OutputFitsFlash(const Tensor& o) {
  const size_t elem = DTypeSize(o.dtype);
  return o.strides[2] == static_cast<int64_t>(elem) && Aligned(o.data, 2 * elem) && ElementStride(o, 0) % 2 == 0 &&
         ElementStride(o, 1) % 2 == 0;
}

}  // namespace

bool AttentionRunsFlash(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o) {
  // BF16 inputs are used in place; one the flash kernel cannot read that way (unaligned) sends the
  // call to the naive kernel, which reads any strides of either dtype.
  auto readable = [](const Tensor& t) { return t.dtype == DType::kF32 || Bf16InputFitsFlash(t); };
  return flash::SupportsHeadDim(static_cast<int>(q.shape[2])) && OutputFitsFlash(o) && readable(q) && readable(k) &&
         readable(v);
}

Status Attention(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, float scale, const Tensor& o,
                 AttentionKernel kernel, const flash::Choice& flash) {
  const int64_t nq = q.shape[0], heads = q.shape[1], dh = q.shape[2], nk = k.shape[0];
  if (nq == 0 || heads == 0) return Status::Ok();
  if (nk == 0) return Error(Code::kInvalidArgument, "CUDA attention: no keys (k {})", k.shape_string());
  for (const Tensor* t : {&q, &k, &v, &o}) {
    if (t->dtype != DType::kF32 && t->dtype != DType::kBF16) {
      return Error(Code::kInvalidArgument, "CUDA attention: {} tensor {} (F32 or BF16)", DTypeName(t->dtype),
                   t->shape_string());
    }
  }
  if (kernel == AttentionKernel::kNaiveF32 || !AttentionRunsFlash(q, k, v, o)) {
    return NaiveAttention(ctx, q, k, v, scale, o);
  }

  // Convert the f32 inputs of as many heads at a time as the free arena holds (all of them,
  // normally). The wgmma configurations also take one head's Vᵀ in scratch.
  const int config = flash.index(static_cast<int>(dh));
  const size_t vt_per_head = flash::ScratchBytes(static_cast<int>(dh), config, 1, static_cast<int>(nk));
  const bool convert_q = q.dtype == DType::kF32, convert_k = k.dtype == DType::kF32, convert_v = v.dtype == DType::kF32;
  const int64_t converted_rows = (convert_q ? nq : 0) + (convert_k ? nk : 0) + (convert_v ? nk : 0);
  Scratch scratch(ctx);
  const size_t per_head = static_cast<size_t>(converted_rows) * static_cast<size_t>(dh) * 2 + vt_per_head;
  const size_t free_bytes = ctx.arena->capacity() - ctx.arena->used();
  const size_t slack = 4 * Arena::kAlign;
  const int64_t group =
      per_head == 0
          ? heads
          : std::min<int64_t>(heads, free_bytes > slack ? static_cast<int64_t>((free_bytes - slack) / per_head) : 0);
  if (group == 0) {
    return Error(Code::kOutOfMemory,
                 "CUDA attention: {} bytes of bf16 q/k/v for one head do not fit the arena ({} free)", per_head,
                 free_bytes);
  }
  auto allocate = [&](bool needed, int64_t rows, const char* what) -> Result<void*> {
    if (!needed) return static_cast<void*>(nullptr);
    return scratch.Allocate(static_cast<size_t>(rows * group * dh) * 2, what);
  };
  DS_ASSIGN_OR_RETURN(void* qb, allocate(convert_q, nq, "attention bf16 q"));
  DS_ASSIGN_OR_RETURN(void* kb, allocate(convert_k, nk, "attention bf16 k"));
  DS_ASSIGN_OR_RETURN(void* vb, allocate(convert_v, nk, "attention bf16 v"));
  void* vt = nullptr;
  if (vt_per_head > 0) {
    DS_ASSIGN_OR_RETURN(vt, scratch.Allocate(vt_per_head * static_cast<size_t>(group), "attention bf16 v transposed"));
  }

  // One input of heads [h0, h0 + count): converted into `buffer` ([N, count, dh]), or in place.
  struct Input {
    const void* data;
    int64_t row, head;
  };
  auto input = [&](const Tensor& t, void* buffer, int64_t h0, int64_t count) -> Result<Input> {
    if (buffer == nullptr) {
      return Input{static_cast<const char*>(t.data) + h0 * t.strides[1], ElementStride(t, 0), ElementStride(t, 1)};
    }
    DS_TRY(HeadsToBf16(ctx, t, h0, count, buffer));
    return Input{buffer, count * dh, dh};
  };
  for (int64_t h0 = 0; h0 < heads; h0 += group) {
    const int64_t count = std::min(group, heads - h0);
    DS_ASSIGN_OR_RETURN(const Input iq, input(q, qb, h0, count));
    DS_ASSIGN_OR_RETURN(const Input ik, input(k, kb, h0, count));
    DS_ASSIGN_OR_RETURN(const Input iv, input(v, vb, h0, count));
    flash::Params p;
    p.q = iq.data;
    p.k = ik.data;
    p.v = iv.data;
    p.q_row = iq.row;
    p.q_head = iq.head;
    p.k_row = ik.row;
    p.k_head = ik.head;
    p.v_row = iv.row;
    p.v_head = iv.head;
    p.o = static_cast<char*>(o.data) + h0 * o.strides[1];
    p.o_bf16 = o.dtype == DType::kBF16;
    p.o_row = ElementStride(o, 0);
    p.o_head = ElementStride(o, 1);
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
