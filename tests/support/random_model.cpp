#include "tests/support/random_model.h"

#include <filesystem>
#include <fstream>
#include <cmath>
#include <random>

#include <nlohmann/json.hpp>

namespace ds::testing {

std::string WriteSafetensors(const std::string& path, const std::vector<NamedTensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  size_t offset = 0;
  for (const NamedTensor& t : tensors) {
    const size_t bytes = t.data.size() * sizeof(float);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = text.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const NamedTensor& t : tensors) {
    out.write(reinterpret_cast<const char*>(t.data.data()), static_cast<std::streamsize>(t.data.size() * 4));
  }
  return out ? "" : "cannot write " + path;
}

namespace {

class Builder {
 public:
  Builder(uint64_t seed, float scale) : rng_(seed), scale_(scale) {}
  void Add(const std::string& name, std::vector<int64_t> shape, float scale = -1, float offset = 0) {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    std::normal_distribution<float> dist(0.0f, scale < 0 ? scale_ : scale);
    NamedTensor t{name, std::move(shape), std::vector<float>(n)};
    for (float& v : t.data) v = offset + dist(rng_);
    tensors_.push_back(std::move(t));
  }
  void Linear(const std::string& name, int64_t out, int64_t in) {
    Add(name + ".weight", {out, in}, scale_ / std::sqrt(static_cast<float>(in)) * 4.0f);
    Add(name + ".bias", {out}, 0.02f);
  }
  std::vector<NamedTensor>& tensors() { return tensors_; }

 private:
  std::mt19937_64 rng_;
  float scale_;
  std::vector<NamedTensor> tensors_;
};

}  // namespace

std::string WriteRandomModel(const std::string& folder, const RandomModelSpec& s, uint64_t seed) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) return "cannot create " + folder;
  const std::vector<std::string> words = {"<pad>", "<start>", "a", "red", "green", "blue", "circle", "square",
                                          "moving", "left", "right", "up", "down"};
  {
    std::ofstream v(fs::path(folder) / "vocab.txt");
    for (const std::string& w : words) v << w << "\n";
  }
  const int C = s.latent_channels, d = s.dim, dh = d / s.heads;
  const int pt = 2, ph = 2, pw = 2, in_ch = C + 1, pv = pt * ph * pw;
  std::array<int, 3> axes;
  if (s.pos == "rope3d") {
    const int a = (dh / 3) & ~1;
    axes = {dh - 2 * a, a, a};
  } else {
    const int a = (d / 3) & ~1;
    axes = {d - 2 * a, a, a};
  }
  nlohmann::json cfg = {
      {"family", "demo"},
      {"video", {{"width", s.width}, {"height", s.height}, {"frames", s.frames}, {"fps", s.fps}}},
      {"latent", {{"channels", C}, {"downsample", 8}}},
      {"text", {{"vocab", "vocab.txt"}, {"max_tokens", 8}, {"dim", s.text_dim}, {"layers", s.text_layers},
                {"heads", s.text_heads}, {"ffn", 2 * s.text_dim}}},
      {"dit", {{"block_kind", s.block_kind}, {"in_channels", in_ch}, {"out_channels", C}, {"patch", {pt, ph, pw}},
               {"dim", d}, {"heads", s.heads}, {"layers", s.layers}, {"ffn", s.ffn}, {"freq_dim", 32},
               {"pos", s.pos}, {"rope_axes", axes}, {"rope_theta", 10000.0}, {"qk_norm", "rms"},
               {"prefix_mask_channel", true}}},
      {"decoder", {{"channels", {16, 12, 8, 8}}}},
      {"sampling", {{"steps", s.steps}, {"guidance", s.guidance}, {"shift", 1.0}, {"continuation_prefix_frames", 2}}},
  };
  {
    std::ofstream out(fs::path(folder) / "config.json");
    out << cfg.dump(2) << "\n";
  }
  Builder b(seed, s.weight_scale);
  const int td = s.text_dim;
  b.Add("text.tok_emb.weight", {static_cast<int64_t>(words.size()), td}, 1.0f);
  b.Add("text.pos_emb.weight", {8, td}, 0.5f);
  for (int i = 0; i < s.text_layers; ++i) {
    const std::string p = "text.layers." + std::to_string(i) + ".";
    b.Add(p + "ln1.weight", {td}, 0.1f, 1.0f);
    b.Add(p + "ln1.bias", {td}, 0.1f);
    b.Linear(p + "qkv", 3 * td, td);
    b.Linear(p + "out", td, td);
    b.Add(p + "ln2.weight", {td}, 0.1f, 1.0f);
    b.Add(p + "ln2.bias", {td}, 0.1f);
    b.Linear(p + "fc1", 2 * td, td);
    b.Linear(p + "fc2", td, 2 * td);
  }
  b.Add("text.ln_f.weight", {td}, 0.1f, 1.0f);
  b.Add("text.ln_f.bias", {td}, 0.1f);
  b.Linear("dit.x_embed", d, in_ch * pv);
  b.Linear("dit.t_embed.fc1", d, 32);
  b.Linear("dit.t_embed.fc2", d, d);
  b.Linear("dit.pooled_embed.fc1", d, td);
  b.Linear("dit.pooled_embed.fc2", d, d);
  if (s.block_kind != "dit") b.Linear("dit.ctx_embed", d, td);
  auto stream = [&](const std::string& p) {
    b.Linear(p + "_mod", 6 * d, d);
    b.Linear(p + "_attn.qkv", 3 * d, d);
    b.Add(p + "_attn.q_norm.weight", {dh}, 0.1f, 1.0f);
    b.Add(p + "_attn.k_norm.weight", {dh}, 0.1f, 1.0f);
    b.Linear(p + "_attn.out", d, d);
    b.Linear(p + "_ffn.fc1", s.ffn, d);
    b.Linear(p + "_ffn.fc2", d, s.ffn);
  };
  for (int i = 0; i < s.layers; ++i) {
    const std::string p = "dit.blocks." + std::to_string(i) + ".";
    stream(p + "x");
    if (s.block_kind == "mmdit") stream(p + "c");
    if (s.block_kind == "cross") {
      b.Add(p + "cross_norm.weight", {d}, 0.1f, 1.0f);
      b.Add(p + "cross_norm.bias", {d}, 0.1f);
      for (const char* n : {"q", "k", "v", "out"}) b.Linear(p + "cross." + n, d, d);
      b.Add(p + "cross.q_norm.weight", {dh}, 0.1f, 1.0f);
      b.Add(p + "cross.k_norm.weight", {dh}, 0.1f, 1.0f);
    }
  }
  b.Linear("dit.final_mod", 2 * d, d);
  b.Linear("dit.final", C * pv, d);
  b.Add("decoder.latent_mean", {C}, 0.1f);
  b.Add("decoder.latent_std", {C}, 0.1f, 1.0f);
  const std::vector<int> ch = {16, 12, 8, 8};
  b.Add("decoder.conv_in.weight", {ch[0], C, 3, 3}, 0.2f);
  b.Add("decoder.conv_in.bias", {ch[0]}, 0.02f);
  for (size_t j = 1; j < ch.size(); ++j) {
    b.Add("decoder.up." + std::to_string(j - 1) + ".weight", {ch[j], ch[j - 1], 3, 3}, 0.2f);
    b.Add("decoder.up." + std::to_string(j - 1) + ".bias", {ch[j]}, 0.02f);
  }
  b.Add("decoder.conv_out.weight", {3, ch.back(), 3, 3}, 0.3f);
  b.Add("decoder.conv_out.bias", {3}, 0.02f);
  return WriteSafetensors((fs::path(folder) / "model.safetensors").string(), b.tensors());
}

}  // namespace ds::testing
