#include "core/wan/umt5.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <tuple>

#include <sys/mman.h>
#include <unistd.h>

#include "core/config.h"
#include "core/layers.h"
#include "core/safetensors.h"
#include "core/wan/wan_weights.h"
#include "core/weights.h"

namespace ds {
namespace {

// A [rows, cols] float view whose rows are `stride` floats apart (a head's slice of [L, heads·d_kv]),
// in the memory of `device`.
Tensor StridedRows(float* data, int64_t rows, int64_t cols, int64_t stride, Device device) {
  Tensor t = Tensor::View(data, DType::kF32, {rows, cols}, device);
  t.strides[0] = stride * static_cast<int64_t>(sizeof(float));
  return t;
}

// Looks a tensor up and checks its shape and that it converts to float, naming the file and tensor.
Result<const SafetensorsEntry*> Entry(const Weights& w, const std::string& name, const std::vector<int64_t>& shape) {
  const SafetensorsEntry* e = w.checkpoint().find(name);
  if (e == nullptr) {
    return Error(Code::kModel, "{}: missing tensor '{}' (expected shape [{}])", w.checkpoint().path(), name,
                 fmt::join(shape, ", "));
  }
  if (e->shape != shape) {
    return Error(Code::kModel, "{}: tensor '{}' has shape {} but the model expects [{}]", e->file, name,
                 e->shape_string(), fmt::join(shape, ", "));
  }
  if (e->dtype != StDType::kF32 && e->dtype != StDType::kF16 && e->dtype != StDType::kBF16) {
    return Error(Code::kUnsupported, "{}: tensor '{}' has dtype {}; only F32, F16 and BF16 are supported", e->file,
                 name, StDTypeName(e->dtype));
  }
  return e;
}

Status Convert(const SafetensorsEntry& e, std::vector<float>& out) {
  out.resize(static_cast<size_t>(e.numel()));
  return ConvertToF32(e, out.data());
}

}  // namespace

Umt5Encoder::Umt5Encoder(Umt5Encoder&&) noexcept = default;
Umt5Encoder& Umt5Encoder::operator=(Umt5Encoder&&) noexcept = default;
Umt5Encoder::~Umt5Encoder() = default;

int Umt5Encoder::Bucket(int relative_position, int num_buckets, int max_distance) {
  const int half = num_buckets / 2, max_exact = half / 2;
  const int bucket = relative_position > 0 ? half : 0;
  const int n = std::abs(relative_position);
  if (n < max_exact) return bucket + n;
  // float32 as in transformers: log(n / max_exact) / log(max_distance / max_exact) · (half − max_exact).
  const float ratio = std::log(static_cast<float>(n) / static_cast<float>(max_exact)) /
                      static_cast<float>(std::log(static_cast<double>(max_distance) / max_exact)) *
                      static_cast<float>(half - max_exact);
  return bucket + std::min(max_exact + static_cast<int>(ratio), half - 1);
}

Result<Umt5Encoder> Umt5Encoder::Load(const std::string& folder) {
  namespace fs = std::filesystem;
  Umt5Encoder e;
  DS_ASSIGN_OR_RETURN(Config config, Config::Load((fs::path(folder) / "config.json").string()));
  DS_ASSIGN_OR_RETURN(e.cfg_, ParseUmt5Config(config));
  DS_ASSIGN_OR_RETURN(e.weights_, OpenWanWeights(folder, "text encoder"));
  const Umt5Config& c = e.cfg_;
  const Weights& w = *e.weights_;
  const int64_t d = c.d_model, inner = c.inner(), ff = c.d_ff;
  const std::string embed = w.Has("shared.weight") ? "shared.weight" : "encoder.embed_tokens.weight";
  DS_ASSIGN_OR_RETURN(e.embed_, Entry(w, embed, {c.vocab, d}));
  e.layers_.resize(c.layers);
  WanTensorReader r(*e.weights_, WanCheckpointNaming{}, nullptr);
  for (int i = 0; i < c.layers; ++i) {
    const std::string p = "encoder.block." + std::to_string(i) + ".layer.";
    Layer& l = e.layers_[i];
    DS_ASSIGN_OR_RETURN(const SafetensorsEntry* ln0, Entry(w, p + "0.layer_norm.weight", {d}));
    DS_TRY(Convert(*ln0, l.ln0));
    DS_ASSIGN_OR_RETURN(const SafetensorsEntry* ln1, Entry(w, p + "1.layer_norm.weight", {d}));
    DS_TRY(Convert(*ln1, l.ln1));
    const std::array<std::pair<std::string, std::array<int64_t, 2>>, kMatrices> matrices = {{
        {p + "0.SelfAttention.q", {inner, d}},
        {p + "0.SelfAttention.k", {inner, d}},
        {p + "0.SelfAttention.v", {inner, d}},
        {p + "0.SelfAttention.o", {d, inner}},
        {p + "1.DenseReluDense.wi_0", {ff, d}},
        {p + "1.DenseReluDense.wi_1", {ff, d}},
        {p + "1.DenseReluDense.wo", {d, ff}},
    }};
    for (int j = 0; j < kMatrices; ++j) {
      const auto& [name, shape] = matrices[j];
      // Float32 matrices stay mapped too (widened = copied per layer): XXL in F32 is 23 GB.
      l.w[j] = r.stored_linear(name, shape[0], shape[1], &l.scale[j], /*bias=*/false, Weights::StoredF32::kMapped).w;
    }
    DS_TRY(r.status());
    DS_ASSIGN_OR_RETURN(const SafetensorsEntry* bias,
                        Entry(w, p + "0.SelfAttention.relative_attention_bias.weight", {c.buckets, c.heads}));
    DS_TRY(Convert(*bias, l.bias_table));
  }
  DS_ASSIGN_OR_RETURN(const SafetensorsEntry* final_norm, Entry(w, "encoder.final_layer_norm.weight", {d}));
  DS_TRY(Convert(*final_norm, e.final_norm_));
  return e;
}

void Umt5Encoder::ReleaseMemory() {
  if (!weights_) return;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const Checkpoint& ckpt = weights_->checkpoint();
  for (const std::string& name : ckpt.names()) {
    const SafetensorsEntry* e = ckpt.find(name);
    if (e == nullptr || e->nbytes == 0) continue;
    // Whole pages around the tensor: the mapping is read-only and file-backed, so dropping a page
    // it shares with a neighbour only means reading that page again when it is next touched.
    const uintptr_t begin = reinterpret_cast<uintptr_t>(e->data) & ~(page - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(e->data) + e->nbytes + page - 1) & ~(page - 1);
    // Advice only: a failure leaves the pages resident, which costs memory but not correctness.
    (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
  }
}

Status Umt5Encoder::WidenLayer(Backend& be, const Layer& l) {
  for (int j = 0; j < kMatrices; ++j) {
    const Tensor& w = l.w[j];
    const bool as_stored = l.scale[j] == 1.0f && be.LinearAcceptsWeights(w.dtype);
    Tensor src = w;
    if (be.device() != Device::kCpu) {  // a GPU widens in its own memory: the stored bytes go over
      BackendBuffer& staged = staged_[j];
      if (staged.tensor.data == nullptr || staged.tensor.dtype != w.dtype || staged.tensor.numel() != w.numel()) {
        staged = {};
        DS_ASSIGN_OR_RETURN(staged, be.NewBuffer(w.dtype, {w.shape[0], w.shape[1]}));
      }
      DS_TRY(be.CopyToBackend(w, staged.tensor));
      src = staged.tensor;
    }
    // On the CPU, float32 straight from the mapping (when the file placed it on a float boundary,
    // which safetensors does not promise); on a GPU, BF16 as uploaded.
    if (as_stored && reinterpret_cast<uintptr_t>(src.data) % DTypeSize(src.dtype) == 0) {
      matrix_[j] = src;
      continue;
    }
    BackendBuffer& wide = wide_[j];
    const DType wide_dtype = be.WidenedWeightDType();
    if (wide.tensor.data == nullptr || wide.tensor.numel() != w.numel() || wide.tensor.dtype != wide_dtype) {
      wide = {};
      DS_ASSIGN_OR_RETURN(wide, be.NewBuffer(wide_dtype, {w.shape[0], w.shape[1]}));
    }
    be.widen(src, wide.tensor, l.scale[j]);
    matrix_[j] = wide.tensor;
  }
  return Status::Ok();
}

Status Umt5Encoder::Encode(Backend& be, std::span<const int> ids, std::vector<float>& out) {
  const Umt5Config& c = cfg_;
  const int64_t L = static_cast<int64_t>(ids.size()), d = c.d_model, inner = c.inner(), dk = c.d_kv;
  if (L == 0) return Error(Code::kInvalidArgument, "UMT5: no tokens to encode");
  out.resize(static_cast<size_t>(L * d));
  // Embedding rows of just these tokens (no sqrt(d) scaling in T5).
  const size_t row_bytes = embed_->nbytes / static_cast<size_t>(c.vocab);
  for (int64_t i = 0; i < L; ++i) {
    if (ids[i] < 0 || ids[i] >= c.vocab) {
      return Error(Code::kInvalidArgument, "UMT5: token id {} outside the vocabulary of {}", ids[i], c.vocab);
    }
    SafetensorsEntry row = *embed_;
    row.shape = {d};
    row.data = embed_->data + static_cast<size_t>(ids[i]) * row_bytes;
    row.nbytes = row_bytes;
    DS_TRY(ConvertToF32(row, out.data() + i * d));
  }
  // The bucket of each relative offset j − i ∈ [−(L − 1), L − 1], at index j − i + L − 1: a layer's
  // bias table [buckets, H] expands to one bias per head and offset (softmax_relative_bias).
  const int64_t span = 2 * L - 1;
  std::vector<int> bucket(static_cast<size_t>(span));
  for (int64_t r = 0; r < span; ++r)
    bucket[static_cast<size_t>(r)] = Bucket(static_cast<int>(r - (L - 1)), c.buckets, c.max_distance);

  // The activations live in the backend's memory; per layer only the expanded bias (H · (2L − 1)
  // floats, 256 KB for XXL at 512 tokens) crosses to it.
  auto vec = [](const std::vector<float>& w) {
    return Tensor::View(const_cast<float*>(w.data()), DType::kF32, {static_cast<int64_t>(w.size())});
  };
  // The layer buffers go back when Encode returns, on every path: the encoder runs once per prompt,
  // before the DiT needs the memory (on a GPU, 1.2 GB for XXL).
  struct Release {
    Umt5Encoder& e;
    ~Release() {
      for (BackendBuffer& buf : e.wide_) buf = {};
      for (BackendBuffer& buf : e.staged_) buf = {};
      e.matrix_ = {};
    }
  } release{*this};
  const int64_t ff = c.d_ff;
  BackendBuffer x, h, q, k, v, vt, o, f, scores, g, u, rel;
  for (auto [buf, rows, cols] :
       {std::tuple{&x, L, d}, std::tuple{&h, L, d}, std::tuple{&q, L, inner}, std::tuple{&k, L, inner},
        std::tuple{&v, L, inner}, std::tuple{&vt, inner, L}, std::tuple{&o, L, inner}, std::tuple{&f, L, d},
        std::tuple{&scores, c.heads * L, L}, std::tuple{&g, L, ff}, std::tuple{&u, L, ff},
        std::tuple{&rel, static_cast<int64_t>(c.heads), span}}) {
    DS_ASSIGN_OR_RETURN(*buf, be.NewBuffer(DType::kF32, {rows, cols}));
  }
  Tensor X = x.tensor, Hm = h.tensor, Q = q.tensor, K = k.tensor, V = v.tensor, VT = vt.tensor, O = o.tensor,
         F = f.tensor, S = scores.tensor, G = g.tensor, U = u.tensor, REL = rel.tensor;
  Tensor S3 = Tensor::View(S.data, DType::kF32, {c.heads, L, L}, S.device);  // the scores per head
  DS_TRY(be.CopyToBackend(Mat(out.data(), L, d), X));
  auto head_rows = [&](const Tensor& t, int64_t head) {
    return StridedRows(static_cast<float*>(t.data) + head * dk, L, dk, inner, t.device);
  };
  std::vector<float> rel_host(static_cast<size_t>(c.heads * span));
  for (const Layer& l : layers_) {
    DS_TRY(WidenLayer(be, l));
    // Self-attention: scores = q·kᵀ (unscaled) + bias(bucket(j − i)), per head.
    be.copy(X, Hm);
    be.rms_norm(Hm, vec(l.ln0), c.eps);
    be.linear(Hm, matrix_[0], nullptr, Q);
    be.linear(Hm, matrix_[1], nullptr, K);
    be.linear(Hm, matrix_[2], nullptr, V);
    be.transpose(V, VT);  // head h's values are rows [h·dk, (h + 1)·dk) of VT: the w of P·V
    auto head_scores = [&](int64_t head) { return Rows(S, head * L, L); };  // [L, L] of head `head`
    for (int64_t head = 0; head < c.heads; ++head) {
      Tensor sh = head_scores(head);
      be.linear(head_rows(Q, head), head_rows(K, head), nullptr, sh);
    }
    for (int64_t head = 0; head < c.heads; ++head) {
      for (int64_t r = 0; r < span; ++r) {
        rel_host[static_cast<size_t>(head * span + r)] =
            l.bias_table[static_cast<size_t>(bucket[static_cast<size_t>(r)]) * c.heads + head];
      }
    }
    DS_TRY(be.CopyToBackend(Mat(rel_host.data(), c.heads, span), REL));
    be.softmax_relative_bias(S3, REL);
    for (int64_t head = 0; head < c.heads; ++head) {
      Tensor oh = head_rows(O, head);
      be.linear(head_scores(head),
                Tensor::View(static_cast<float*>(VT.data) + head * dk * L, DType::kF32, {dk, L}, VT.device), nullptr,
                oh);
    }
    be.linear_residual(O, matrix_[3], nullptr, nullptr, X, F);
    // Gated FFN: wo(gelu_tanh(wi_0·h) ⊙ wi_1·h).
    be.copy(X, Hm);
    be.rms_norm(Hm, vec(l.ln1), c.eps);
    be.linear(Hm, matrix_[4], nullptr, G);
    be.gelu_tanh(G);
    be.linear(Hm, matrix_[5], nullptr, U);
    be.mul(G, U);
    be.linear_residual(G, matrix_[6], nullptr, nullptr, X, F);
  }
  be.rms_norm(X, vec(final_norm_), c.eps);
  return be.CopyToHost(X, Mat(out.data(), L, d));
}

}  // namespace ds
