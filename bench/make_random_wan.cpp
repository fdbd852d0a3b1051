// Writes a complete Wan2.1 text-to-video folder in the diffusers layout with random weights of the
// 1.3B's transformer and VAE widths, for timing the whole pipeline (ditgen, ditsrc, the FFmpeg
// filter) without the 16 GB download:
//
//   make_random_wan <repo root> <out folder> [--layers N (30)] [--text-layers N (1)]
//
// The tokenizer, scheduler and model_index.json are the tiny fixture's (tests/fixtures/wan/tiny);
// the text encoder has UMT5-XXL's width (4096, 64 heads of 64) so that it feeds the transformer,
// but --text-layers layers (24 in XXL) and a small FFN: its 11 GB would only cost disk and one
// encode per prompt. Output is noise; the timings and memory are the real model's.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "bench/random_wan.h"

namespace fs = std::filesystem;

namespace {

ds::Status WriteTextEncoder(const std::string& fixture, const std::string& dir, int layers) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::ifstream in(fixture + "/text_encoder/config.json");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json cfg = nlohmann::json::parse(text.str(), nullptr, false);
  if (cfg.is_discarded()) return ds::Error(ds::Code::kIo, "{}: cannot read the tiny text encoder's config", fixture);
  const int64_t d = 4096, heads = 64, dkv = 64, ff = 256, vocab = cfg.value("vocab_size", 0);
  cfg["d_model"] = d;
  cfg["num_heads"] = heads;
  cfg["d_kv"] = dkv;
  cfg["d_ff"] = ff;
  cfg["num_layers"] = layers;
  std::ofstream(dir + "/config.json") << cfg.dump(2);
  std::vector<ds::bench::RandomTensor> specs = {{"shared.weight", {vocab, d}, 1.0f},
                                                {"encoder.final_layer_norm.weight", {d}, -1}};
  for (int i = 0; i < layers; ++i) {
    const std::string p = "encoder.block." + std::to_string(i) + ".layer.";
    specs.push_back({p + "0.layer_norm.weight", {d}, -1});
    for (const char* m : {"q", "k", "v"})
      specs.push_back({p + "0.SelfAttention." + m + ".weight", {heads * dkv, d}, 0.01f});
    specs.push_back({p + "0.SelfAttention.o.weight", {d, heads * dkv}, 0.01f});
    specs.push_back({p + "0.SelfAttention.relative_attention_bias.weight", {32, heads}, 0.1f});
    specs.push_back({p + "1.layer_norm.weight", {d}, -1});
    specs.push_back({p + "1.DenseReluDense.wi_0.weight", {ff, d}, 0.02f});
    specs.push_back({p + "1.DenseReluDense.wi_1.weight", {ff, d}, 0.02f});
    specs.push_back({p + "1.DenseReluDense.wo.weight", {d, ff}, 0.05f});
  }
  return ds::bench::WriteRandomSafetensors(dir + "/model.safetensors", specs);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: make_random_wan <repo root> <out folder> [--layers N] [--text-layers N]\n");
    return 2;
  }
  const std::string fixture = std::string(argv[1]) + "/tests/fixtures/wan/tiny", out = argv[2];
  int layers = 30, text_layers = 1;
  for (int i = 3; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--layers") == 0) layers = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--text-layers") == 0) text_layers = std::atoi(argv[i + 1]);
  }
  std::error_code ec;
  fs::create_directories(out, ec);
  for (const char* part : {"model_index.json", "scheduler", "tokenizer"}) {
    fs::copy(fixture + "/" + part, out + "/" + part, fs::copy_options::recursive | fs::copy_options::overwrite_existing,
             ec);
    if (ec) {
      std::fprintf(stderr, "make_random_wan: copying %s/%s: %s\n", fixture.c_str(), part, ec.message().c_str());
      return 1;
    }
  }
  for (const ds::Status& s :
       {WriteTextEncoder(fixture, out + "/text_encoder", text_layers),
        ds::bench::WriteRandomWan13B(out + "/transformer", layers), ds::bench::WriteRandomWanVae(out + "/vae")}) {
    if (!s.ok()) {
      std::fprintf(stderr, "make_random_wan: %s\n", s.message().c_str());
      return 1;
    }
  }
  std::printf("wrote %s: random Wan2.1-1.3B widths, %d transformer blocks, %d text-encoder layers\n", out.c_str(),
              layers, text_layers);
  return 0;
}
