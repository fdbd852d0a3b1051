#include "core/text_encoder.h"

#include <cmath>
#include <cstring>
#include <string>

#include "core/weights.h"

namespace ds {

Result<TextEncoder> TextEncoder::Load(const TextConfig& config, int vocab_size, Weights& weights) {
  TextEncoder e;
  e.cfg_ = config;
  e.vocab_size_ = vocab_size;
  const int d = config.dim;
  WeightReader r(weights);
  e.tok_emb_ = r.tensor("text.tok_emb.weight", {vocab_size, d});
  e.pos_emb_ = r.tensor("text.pos_emb.weight", {config.max_tokens, d});
  e.layers_.resize(config.layers);
  for (int i = 0; i < config.layers; ++i) {
    const std::string p = "text.layers." + std::to_string(i) + ".";
    Layer& l = e.layers_[i];
    l.ln1_w = r.tensor(p + "ln1.weight", {d});
    l.ln1_b = r.tensor(p + "ln1.bias", {d});
    l.qkv = r.linear(p + "qkv", 3 * d, d);
    l.out = r.linear(p + "out", d, d);
    l.ln2_w = r.tensor(p + "ln2.weight", {d});
    l.ln2_b = r.tensor(p + "ln2.bias", {d});
    l.fc1 = r.linear(p + "fc1", config.ffn, d);
    l.fc2 = r.linear(p + "fc2", d, config.ffn);
  }
  e.lnf_w_ = r.tensor("text.ln_f.weight", {d});
  e.lnf_b_ = r.tensor("text.ln_f.bias", {d});
  DS_TRY(r.status());
  return e;
}

Result<TextEmbedding> TextEncoder::Encode(Backend& be, const std::vector<int>& ids) const {
  const int d = cfg_.dim, L = static_cast<int>(ids.size()), heads = cfg_.heads, dh = d / heads;
  if (L == 0 || L > cfg_.max_tokens) {
    return Error(Code::kInvalidArgument, "text encoder takes 1 to {} tokens, got {}", cfg_.max_tokens, L);
  }
  std::vector<float> h(static_cast<size_t>(L) * d), a(h.size()), o(h.size()), f(h.size());
  std::vector<float> qkv(static_cast<size_t>(L) * 3 * d), hidden(static_cast<size_t>(L) * cfg_.ffn);
  for (int i = 0; i < L; ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size_) {
      return Error(Code::kInvalidArgument, "token id {} outside the vocabulary of {}", ids[i], vocab_size_);
    }
    const float* te = tok_emb_.f32() + static_cast<size_t>(ids[i]) * d;
    const float* pe = pos_emb_.f32() + static_cast<size_t>(i) * d;
    for (int j = 0; j < d; ++j) h[static_cast<size_t>(i) * d + j] = te[j] + pe[j];
  }
  Tensor H = Mat(h.data(), L, d), A = Mat(a.data(), L, d), O = Mat(o.data(), L, d), F = Mat(f.data(), L, d);
  Tensor QKV = Mat(qkv.data(), L, 3 * d), Hid = Mat(hidden.data(), L, cfg_.ffn);
  // q, k and v are [L, heads, dh] views into the fused projection, with a token stride of 3d.
  auto qkv_part = [&](int part) {
    Tensor t = Tensor::View(qkv.data() + part * d, DType::kF32, {L, heads, dh});
    t.strides[0] = static_cast<int64_t>(3 * d * sizeof(float));
    return t;
  };
  for (const Layer& l : layers_) {
    be.layer_norm(H, &l.ln1_w, &l.ln1_b, 1e-6f, A);
    l.qkv(be, A, QKV);
    Tensor oh = Tensor::View(o.data(), DType::kF32, {L, heads, dh});
    be.attention(qkv_part(0), qkv_part(1), qkv_part(2), 1.0f / std::sqrt(static_cast<float>(dh)), oh);
    l.out(be, O, F);
    be.add(H, F);
    be.layer_norm(H, &l.ln2_w, &l.ln2_b, 1e-6f, A);
    l.fc1(be, A, Hid);
    be.gelu_tanh(Hid);
    l.fc2(be, Hid, F);
    be.add(H, F);
  }
  TextEmbedding out;
  out.len = L;
  out.tokens.resize(static_cast<size_t>(L) * d);
  Tensor T = Mat(out.tokens.data(), L, d);
  be.layer_norm(H, &lnf_w_, &lnf_b_, 1e-6f, T);
  out.pooled.assign(d, 0.0f);
  for (int i = 0; i < L; ++i)
    for (int j = 0; j < d; ++j) out.pooled[j] += out.tokens[static_cast<size_t>(i) * d + j];
  for (float& v : out.pooled) v /= static_cast<float>(L);
  return out;
}

}  // namespace ds
