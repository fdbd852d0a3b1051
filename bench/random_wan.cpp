#include "bench/random_wan.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "core/tensor.h"
#include "core/wan/wan_config.h"

namespace ds::bench {
namespace {

std::vector<RandomTensor> Specs(int layers) {
  const WanTransformerConfig c = Wan13BConfig();
  const int64_t d = c.dim(), f = c.ffn;
  std::vector<RandomTensor> specs = {{"patch_embedding.weight", {d, 16, 1, 2, 2}, 0.05f},
                             {"patch_embedding.bias", {d}, 0.01f},
                             {"condition_embedder.time_embedder.linear_1.weight", {d, 256}, 0.05f},
                             {"condition_embedder.time_embedder.linear_1.bias", {d}, 0.01f},
                             {"condition_embedder.time_embedder.linear_2.weight", {d, d}, 0.02f},
                             {"condition_embedder.time_embedder.linear_2.bias", {d}, 0.01f},
                             {"condition_embedder.time_proj.weight", {6 * d, d}, 0.02f},
                             {"condition_embedder.time_proj.bias", {6 * d}, 0.01f},
                             {"condition_embedder.text_embedder.linear_1.weight", {d, 4096}, 0.015f},
                             {"condition_embedder.text_embedder.linear_1.bias", {d}, 0.01f},
                             {"condition_embedder.text_embedder.linear_2.weight", {d, d}, 0.02f},
                             {"condition_embedder.text_embedder.linear_2.bias", {d}, 0.01f},
                             {"scale_shift_table", {1, 2, d}, 0.02f},
                             {"proj_out.weight", {64, d}, 0.02f},
                             {"proj_out.bias", {64}, 0.01f}};
  for (int i = 0; i < layers; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    specs.push_back({p + "scale_shift_table", {1, 6, d}, 0.02f});
    for (const char* a : {"attn1.", "attn2."}) {
      for (const char* l : {"to_q", "to_k", "to_v", "to_out.0"}) {
        specs.push_back({p + a + l + ".weight", {d, d}, 0.02f});
        specs.push_back({p + a + l + ".bias", {d}, 0.01f});
      }
      specs.push_back({p + a + "norm_q.weight", {d}, -1});
      specs.push_back({p + a + "norm_k.weight", {d}, -1});
    }
    specs.push_back({p + "norm2.weight", {d}, -1});
    specs.push_back({p + "norm2.bias", {d}, 0.01f});
    specs.push_back({p + "ffn.net.0.proj.weight", {f, d}, 0.02f});
    specs.push_back({p + "ffn.net.0.proj.bias", {f}, 0.01f});
    specs.push_back({p + "ffn.net.2.weight", {d, f}, 0.01f});
    specs.push_back({p + "ffn.net.2.bias", {d}, 0.01f});
  }
  return specs;
}

}  // namespace

Status WriteRandomSafetensors(const std::string& path, const std::vector<RandomTensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  size_t offset = 0;
  for (const RandomTensor& s : tensors) {
    size_t n = 1;
    for (int64_t d : s.shape) n *= static_cast<size_t>(d);
    header[s.name] = {{"dtype", "BF16"}, {"shape", s.shape}, {"data_offsets", {offset, offset + 2 * n}}};
    offset += 2 * n;
  }
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');
  std::ofstream out(path, std::ios::binary);
  const uint64_t len = text.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<uint16_t> buf;
  for (const RandomTensor& s : tensors) {
    size_t n = 1;
    for (int64_t d : s.shape) n *= static_cast<size_t>(d);
    buf.resize(n);
    for (uint16_t& v : buf) v = FloatToBFloat16(s.scale < 0 ? 1.0f : s.scale * nd(rng));
    out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(2 * n));
  }
  out.close();
  if (!out) return Error(Code::kIo, "cannot write {}", path);
  return Status::Ok();
}

Status WriteRandomWan13B(const std::string& dir, int layers) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  DS_TRY(WriteRandomSafetensors(dir + "/diffusion_pytorch_model.safetensors", Specs(layers)));
  const WanTransformerConfig c = Wan13BConfig();
  nlohmann::json cfg = {{"_class_name", "WanTransformer3DModel"},
                        {"patch_size", {1, 2, 2}},
                        {"num_attention_heads", c.heads},
                        {"attention_head_dim", c.head_dim},
                        {"num_layers", layers},
                        {"ffn_dim", c.ffn},
                        {"in_channels", 16},
                        {"out_channels", 16},
                        {"text_dim", 4096},
                        {"freq_dim", 256}};
  std::ofstream(dir + "/config.json") << cfg.dump();
  return Status::Ok();
}

}  // namespace ds::bench
