#include "bench/random_wan.h"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/wan/wan_config.h"

namespace ds::bench {
namespace {

std::vector<RandomTensor> Specs(const WanTransformerConfig& c, int layers) {
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

Status WriteRandomWan13B(const std::string& dir, int layers) { return WriteRandomWan(dir, Wan13BConfig(), layers); }

Status WriteRandomWan(const std::string& dir, const WanTransformerConfig& c, int layers) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  DS_TRY(WriteRandomSafetensors(dir + "/diffusion_pytorch_model.safetensors", Specs(c, layers)));
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

Status WriteRandomWanVae(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  // The published Wan2.1 VAE decoder (base_dim 96), in diffusers names.
  const std::vector<int64_t> dims = {384, 384, 384, 192, 96};
  std::vector<RandomTensor> specs = {{"post_quant_conv.weight", {16, 16, 1, 1, 1}, 0.2f},
                                     {"post_quant_conv.bias", {16}, 0.01f}};
  auto conv3 = [&](const std::string& n, int64_t in, int64_t out) {
    specs.push_back({n + ".weight", {out, in, 3, 3, 3}, static_cast<float>(1.0 / std::sqrt(27.0 * in))});
    specs.push_back({n + ".bias", {out}, 0.01f});
  };
  auto res = [&](const std::string& p, int64_t in, int64_t out) {
    specs.push_back({p + ".norm1.gamma", {in, 1, 1, 1}, -1});
    conv3(p + ".conv1", in, out);
    specs.push_back({p + ".norm2.gamma", {out, 1, 1, 1}, -1});
    conv3(p + ".conv2", out, out);
    if (in != out) {
      specs.push_back({p + ".conv_shortcut.weight", {out, in, 1, 1, 1}, static_cast<float>(1.0 / std::sqrt(in))});
      specs.push_back({p + ".conv_shortcut.bias", {out}, 0.01f});
    }
  };
  conv3("decoder.conv_in", 16, 384);
  res("decoder.mid_block.resnets.0", 384, 384);
  res("decoder.mid_block.resnets.1", 384, 384);
  const std::string a = "decoder.mid_block.attentions.0.";
  specs.push_back({a + "norm.gamma", {384, 1, 1}, -1});
  specs.push_back({a + "to_qkv.weight", {1152, 384, 1, 1}, 0.05f});
  specs.push_back({a + "to_qkv.bias", {1152}, 0.01f});
  specs.push_back({a + "proj.weight", {384, 384, 1, 1}, 0.05f});
  specs.push_back({a + "proj.bias", {384}, 0.01f});
  for (int i = 0; i < 4; ++i) {
    const int64_t in = dims[i] / (i > 0 ? 2 : 1), out = dims[i + 1];
    const std::string p = "decoder.up_blocks." + std::to_string(i);
    for (int j = 0; j < 3; ++j) res(p + ".resnets." + std::to_string(j), j == 0 ? in : out, out);
    if (i == 3) continue;
    specs.push_back(
        {p + ".upsamplers.0.resample.1.weight", {out / 2, out, 3, 3}, static_cast<float>(1 / std::sqrt(9.0 * out))});
    specs.push_back({p + ".upsamplers.0.resample.1.bias", {out / 2}, 0.01f});
    if (i < 2) {
      specs.push_back({p + ".upsamplers.0.time_conv.weight",
                       {2 * out, out, 3, 1, 1},
                       static_cast<float>(1 / std::sqrt(3.0 * out))});
      specs.push_back({p + ".upsamplers.0.time_conv.bias", {2 * out}, 0.01f});
    }
  }
  specs.push_back({"decoder.norm_out.gamma", {96, 1, 1, 1}, -1});
  conv3("decoder.conv_out", 96, 3);
  DS_TRY(WriteRandomSafetensors(dir + "/diffusion_pytorch_model.safetensors", specs));
  std::ofstream(dir + "/config.json") << R"({"_class_name": "AutoencoderKLWan", "base_dim": 96, "z_dim": 16})";
  return Status::Ok();
}

}  // namespace ds::bench
