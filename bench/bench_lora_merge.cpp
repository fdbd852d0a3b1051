// What a LoRA costs at load: a random Wan2.1 transformer of the 1.3B's widths (BF16) loaded as is
// and with a rank-R LoRA over every block matrix (q, k, v, o of both attentions, both FFN
// matrices: ComfyUI's spelling, BF16), which the loader merges (W += alpha/rank · up·down) into
// BF16 copies. Prints load time and resident memory for both.
//
//   bench_lora_merge <scratch folder> [--layers N (30)] [--rank R (32)] [--keep 1]
//
// --keep 1 leaves the files in the folder and reuses them when they are there (for profiling the
// load alone).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bench/random_wan.h"
#include "core/wan/wan_transformer.h"

namespace fs = std::filesystem;

namespace {

// Resident memory now, from /proc: all of it, and the part not backed by files (the mapped
// checkpoint's pages count as resident while cached, but the kernel can drop them).
struct Resident {
  double all_gib, anonymous_gib;
};
Resident ResidentNow() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, resident = 0, shared = 0;
  in >> pages >> resident >> shared;
  const double gib = 4096.0 / (1024.0 * 1024.0 * 1024.0);
  return {static_cast<double>(resident) * gib, static_cast<double>(resident - shared) * gib};
}

// Loads, touches the matrices (so mapped pages count), and reports.
bool TimeLoad(const char* what, const std::string& dir, const std::vector<ds::LoraSpec>& loras) {
  const auto t0 = std::chrono::steady_clock::now();
  auto m = ds::WanTransformer::Load(dir, loras);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!m.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, m.status().message().c_str());
    return false;
  }
  const Resident r = ResidentNow();
  std::printf("RESULT lora_merge_%s load_s=%.3f resident_gib=%.2f anonymous_gib=%.2f\n", what, seconds, r.all_gib,
              r.anonymous_gib);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <scratch folder> [--layers N] [--rank R]\n", argv[0]);
    return 2;
  }
  const std::string root = argv[1];
  int layers = 30, rank = 32;
  bool keep = false;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--layers") == 0) layers = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--rank") == 0) rank = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--keep") == 0) keep = std::atoi(argv[i + 1]) != 0;
  }
  const ds::WanTransformerConfig c = ds::Wan13BConfig();
  const int64_t d = c.dim(), ffn = c.ffn;
  const std::string base = root + "/transformer", lora = root + "/lora.safetensors";
  std::error_code ec;
  fs::create_directories(base, ec);
  const bool reuse = keep && fs::exists(lora, ec);
  if (const ds::Status s = reuse ? ds::Status::Ok() : ds::bench::WriteRandomWan13B(base, layers); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  std::vector<ds::bench::RandomTensor> tensors;
  for (int i = 0; i < layers; ++i) {
    const std::string b = "diffusion_model.blocks." + std::to_string(i) + ".";
    struct Module {
      std::string name;
      int64_t out, in;
    };
    std::vector<Module> modules;
    for (const char* attn : {"self_attn.", "cross_attn."}) {
      for (const char* p : {"q", "k", "v", "o"}) modules.push_back({b + attn + p, d, d});
    }
    modules.push_back({b + "ffn.0", ffn, d});
    modules.push_back({b + "ffn.2", d, ffn});
    for (const Module& m : modules) {
      tensors.push_back({m.name + ".lora_down.weight", {rank, m.in}, 0.02f});
      tensors.push_back({m.name + ".lora_up.weight", {m.out, rank}, 0.02f});
      tensors.push_back({m.name + ".alpha", {}, -1.0f});
    }
  }
  if (const ds::Status s = reuse ? ds::Status::Ok() : ds::bench::WriteRandomSafetensors(lora, tensors); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  std::printf("transformer: %d blocks of the 1.3B's widths (d=%lld, ffn=%lld), LoRA rank %d over %zu matrices\n",
              layers, static_cast<long long>(d), static_cast<long long>(ffn), rank, tensors.size() / 3);
  if (!TimeLoad("base", base, {})) return 1;
  if (!TimeLoad("with_lora", base, {{lora, 1.0}})) return 1;
  if (!keep) fs::remove_all(root, ec);
  return 0;
}
