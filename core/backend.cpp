// The Backend's memory defaults, for backends whose memory is host memory.
#include "core/backend.h"

#include "core/patchify.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace ds {

namespace {

Status CheckSameBytes(const Tensor& a, const Tensor& b, const char* what) {
  if (!a.contiguous() || !b.contiguous() || a.nbytes() != b.nbytes()) {
    return Error(Code::kInvalidArgument, "{}: needs contiguous tensors of equal size ({} {} and {} {})", what,
                 DTypeName(a.dtype), a.shape_string(), DTypeName(b.dtype), b.shape_string());
  }
  return Status::Ok();
}

}  // namespace

uint64_t Backend::NextId() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

Result<BackendBuffer> Backend::NewBuffer(DType dtype, std::initializer_list<int64_t> shape) {
  Tensor t = Tensor::View(nullptr, dtype, shape);  // host memory, whatever device() says
  const size_t bytes = (t.nbytes() + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
  if (p == nullptr) {
    return Error(Code::kOutOfMemory, "{} backend: cannot allocate {} bytes for a {} tensor", name(), bytes,
                 t.shape_string());
  }
  t.data = p;
  return BackendBuffer{std::shared_ptr<void>(p, std::free), t};
}

void Backend::patchify(const Tensor& latent, std::array<int, 3> patch, Tensor& tokens) {
  Patchify(latent.f32(), static_cast<int>(latent.shape[0]), static_cast<int>(latent.shape[1]),
           static_cast<int>(latent.shape[2]), static_cast<int>(latent.shape[3]), patch, tokens.f32());
}

void Backend::unpatchify(const Tensor& tokens, std::array<int, 3> patch, bool channels_last, Tensor& latent) {
  Unpatchify(tokens.f32(), static_cast<int>(latent.shape[0]), static_cast<int>(latent.shape[1]),
             static_cast<int>(latent.shape[2]), static_cast<int>(latent.shape[3]), patch, latent.f32(), channels_last);
}

void Backend::planar_to_pixels(const Tensor& planar, FrameFormat format, Tensor& frame) {
  PlanarToPixels(planar.f32(), static_cast<int>(planar.shape[2]), static_cast<int>(planar.shape[1]), format,
                 static_cast<uint8_t*>(frame.data));
}

void Backend::linear_residual(const Tensor& a, const Tensor& w, const Tensor* bias, const Tensor* gate, Tensor& x,
                              Tensor& scratch) {
  linear(a, w, bias, scratch);
  if (gate) {
    gate_residual(x, *gate, scratch);
  } else {
    add(x, scratch);
  }
}

Status Backend::RunRecorded(std::unique_ptr<OpRecording>& /*recording*/, const std::function<Status()>& ops) {
  return ops();
}

Status Backend::CopyToBackend(const Tensor& host, const Tensor& dst) {
  DS_TRY(CheckSameBytes(host, dst, "copy to backend"));
  std::memcpy(dst.data, host.data, host.nbytes());
  return Status::Ok();
}

Status Backend::CopyToHost(const Tensor& src, const Tensor& host) {
  DS_TRY(CheckSameBytes(src, host, "copy to host"));
  std::memcpy(host.data, src.data, src.nbytes());
  return Status::Ok();
}

namespace {

// The memory limit of this process's cgroup (v2 memory.max, v1 memory.limit_in_bytes), 0 if none:
// in a container, the host's RAM is not what the process may use.
size_t CgroupMemoryLimit() {
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::FILE* f = std::fopen(path, "r");
    if (f == nullptr) continue;
    char text[64] = {};
    const bool read = std::fgets(text, sizeof text, f) != nullptr;
    std::fclose(f);
    if (!read) continue;
    char* end = nullptr;
    const unsigned long long limit = std::strtoull(text, &end, 10);
    if (end != text && limit > 0) return static_cast<size_t>(limit);  // "max" parses as no number: no limit
  }
  return 0;
}

}  // namespace

size_t Backend::WorkingSetBudget() const {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  size_t memory = pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : 0;
  const size_t cgroup = CgroupMemoryLimit();
  if (cgroup > 0 && (memory == 0 || cgroup < memory)) memory = cgroup;
  return memory / 2;
}

Status Backend::Zero(const Tensor& dst) {
  if (!dst.contiguous())
    return Error(Code::kInvalidArgument, "zero: needs a contiguous tensor ({})", dst.shape_string());
  std::memset(dst.data, 0, dst.nbytes());
  return Status::Ok();
}

void Backend::rms_norm_rope(Tensor& x, const Tensor& weight, float eps, const Tensor& cos, const Tensor& sin,
                            int64_t heads) {
  // All or nothing: a shape the rotation cannot take leaves x as it was (no error channel here;
  // the CUDA backend reports it).
  if (heads <= 0 || x.ndim != 2 || x.shape[1] % heads != 0) return;
  rms_norm(x, weight, eps);
  Tensor per_head = SplitHeads(x, heads);
  rope(per_head, cos, sin);
}

void Backend::mul(Tensor& x, const Tensor& f) {
  if (x.ndim != 2 || f.ndim != 2 || x.shape[0] != f.shape[0] || x.shape[1] != f.shape[1]) return;
  for (int64_t r = 0; r < x.shape[0]; ++r) {
    float* xr = reinterpret_cast<float*>(static_cast<char*>(x.data) + r * x.strides[0]);
    const float* fr = reinterpret_cast<const float*>(static_cast<const char*>(f.data) + r * f.strides[0]);
    for (int64_t j = 0; j < x.shape[1]; ++j) xr[j] *= fr[j];
  }
}

void Backend::sub(Tensor& x, const Tensor& f) {
  if (x.ndim != 2 || f.ndim != 2 || x.shape[0] != f.shape[0] || x.shape[1] != f.shape[1]) return;
  for (int64_t r = 0; r < x.shape[0]; ++r) {
    float* xr = reinterpret_cast<float*>(static_cast<char*>(x.data) + r * x.strides[0]);
    const float* fr = reinterpret_cast<const float*>(static_cast<const char*>(f.data) + r * f.strides[0]);
    for (int64_t j = 0; j < x.shape[1]; ++j) xr[j] -= fr[j];
  }
}

void Backend::abs_diff_sums(const Tensor& a, const Tensor& b, Tensor& sums) {
  if (!sums.contiguous() || sums.numel() != 2 || sums.dtype != DType::kF32) return;
  if (!a.contiguous() || !b.contiguous() || a.numel() != b.numel() || a.dtype != DType::kF32 ||
      b.dtype != DType::kF32) {
    // No error channel here: NaN sums, which no threshold passes, rather than the last call's.
    sums.f32()[0] = sums.f32()[1] = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  double diff = 0, ref = 0;
  const float* pa = a.f32();
  const float* pb = b.f32();
  for (int64_t i = 0; i < a.numel(); ++i) {
    diff += std::fabs(static_cast<double>(pa[i]) - pb[i]);
    ref += std::fabs(static_cast<double>(pb[i]));
  }
  sums.f32()[0] = static_cast<float>(diff);
  sums.f32()[1] = static_cast<float>(ref);
}

void Backend::softmax_relative_bias(Tensor& scores, const Tensor& bias) {
  if (scores.ndim != 3 || !scores.contiguous() || !bias.contiguous()) return;
  const int64_t heads = scores.shape[0], lq = scores.shape[1], lk = scores.shape[2], span = lq + lk - 1;
  if (bias.numel() != heads * span) return;
  for (int64_t h = 0; h < heads; ++h) {
    const float* b = bias.f32() + h * span;
    for (int64_t i = 0; i < lq; ++i) {
      float* row = scores.f32() + (h * lq + i) * lk;
      const float* bi = b + lq - 1 - i;  // bi[j] = bias[h, j − i + lq − 1]
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < lk; ++j) mx = std::max(mx, row[j] += bi[j]);
      float sum = 0.0f;
      for (int64_t j = 0; j < lk; ++j) sum += (row[j] = std::exp(row[j] - mx));
      const float inv = 1.0f / sum;
      for (int64_t j = 0; j < lk; ++j) row[j] *= inv;
    }
  }
}

void Backend::copy(const Tensor& src, Tensor& dst) {
  if (CheckSameBytes(src, dst, "copy").ok()) std::memcpy(dst.data, src.data, src.nbytes());
}

void Backend::widen(const Tensor& src, Tensor& dst, float scale) {
  if (!src.contiguous() || !dst.contiguous() || src.numel() != dst.numel()) return;
  WidenRange(src, dst, scale, 0, static_cast<size_t>(src.numel()));
}

void WidenRange(const Tensor& src, const Tensor& dst, float scale, size_t begin, size_t end) {
  if (dst.dtype == DType::kF32) {
    WidenToF32(src.data, src.dtype, dst.f32(), begin, end, scale);
    return;
  }
  if (dst.dtype != DType::kBF16) return;
  // Through float32 in pieces that stay in L1.
  float wide[256];
  auto* out = static_cast<uint16_t*>(dst.data);
  for (size_t i = begin; i < end; i += 256) {
    const size_t n = std::min<size_t>(256, end - i);
    WidenToF32(static_cast<const char*>(src.data) + i * DTypeSize(src.dtype), src.dtype, wide, 0, n, scale);
    for (size_t j = 0; j < n; ++j) out[i + j] = FloatToBFloat16(wide[j]);
  }
}

}  // namespace ds
