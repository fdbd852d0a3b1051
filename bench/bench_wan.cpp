// One forward of a Wan2.1-T2V-1.3B-shaped transformer (random bf16 weights, the real diffusers
// names and shapes) on a CPU backend, at a small latent size, with the load time and peak memory;
// then an extrapolation to 480x832x81 by FLOP count. Answers "how long would the 1.3B take on this
// machine" without the 5.7 GB checkpoint (no network access from CI or most dev machines).
//
//   bench_wan [--folder DIR] [--frames F --height H --width W] [--threads N] [--device cpu|reference]
//
// DIR (default /tmp/ditstream_wan13b_random/transformer) is written once (2.8 GB of bf16) and
// reused. F, H, W are video sizes (F = 4k + 1, H and W multiples of 16); default 9 x 240 x 416.
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/wan/wan_transformer.h"
#include "kernels/registry.h"

namespace {

namespace fs = std::filesystem;

struct Spec {
  std::string name;
  std::vector<int64_t> shape;
  float stddev;  // 0: a norm weight (ones + small noise)
};

// Wan2.1-T2V-1.3B: dim 1536 (12 heads x 128), FFN 8960, 30 blocks, text 4096, freq 256, 16 latent
// channels, patch 1x2x2 (wan21_spec.md §2).
constexpr int kDim = 1536, kFfn = 8960, kLayers = 30, kText = 4096, kFreq = 256, kChannels = 16;

std::vector<Spec> Specs() {
  std::vector<Spec> s;
  auto linear = [&](const std::string& name, int64_t out, int64_t in) {
    s.push_back({name + ".weight", {out, in}, static_cast<float>(1.0 / std::sqrt(static_cast<double>(in)))});
    s.push_back({name + ".bias", {out}, 0.02f});
  };
  s.push_back({"patch_embedding.weight", {kDim, kChannels, 1, 2, 2}, 0.125f});
  s.push_back({"patch_embedding.bias", {kDim}, 0.02f});
  linear("condition_embedder.text_embedder.linear_1", kDim, kText);
  linear("condition_embedder.text_embedder.linear_2", kDim, kDim);
  linear("condition_embedder.time_embedder.linear_1", kDim, kFreq);
  linear("condition_embedder.time_embedder.linear_2", kDim, kDim);
  linear("condition_embedder.time_proj", 6 * kDim, kDim);
  for (int b = 0; b < kLayers; ++b) {
    const std::string p = "blocks." + std::to_string(b) + ".";
    for (const char* attn : {"attn1", "attn2"}) {
      for (const char* proj : {"to_q", "to_k", "to_v", "to_out.0"}) linear(p + attn + "." + proj, kDim, kDim);
      s.push_back({p + attn + ".norm_q.weight", {kDim}, 0});
      s.push_back({p + attn + ".norm_k.weight", {kDim}, 0});
    }
    linear(p + "ffn.net.0.proj", kFfn, kDim);
    linear(p + "ffn.net.2", kDim, kFfn);
    s.push_back({p + "norm2.weight", {kDim}, 0});
    s.push_back({p + "norm2.bias", {kDim}, 0.02f});
    s.push_back({p + "scale_shift_table", {1, 6, kDim}, 0.1f});
  }
  s.push_back({"scale_shift_table", {1, 2, kDim}, 0.1f});
  linear("proj_out", kChannels * 4, kDim);
  return s;
}

uint16_t Bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

// Streams the tensors into one safetensors file (header first, then each tensor's bytes), so the
// 2.8 GB never sit in memory at once. Uniform noise of the given standard deviation.
bool WriteFolder(const fs::path& dir) {
  fs::create_directories(dir);
  const std::vector<Spec> specs = Specs();
  std::string header = "{";
  uint64_t offset = 0;
  for (const Spec& t : specs) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    std::string entry = header.size() > 1 ? "," : "";
    entry.append("\"").append(t.name).append("\":{\"dtype\":\"BF16\",\"shape\":[");
    for (size_t i = 0; i < t.shape.size(); ++i) entry.append(i ? "," : "").append(std::to_string(t.shape[i]));
    entry.append("],\"data_offsets\":[").append(std::to_string(offset)).append(",");
    entry.append(std::to_string(offset + 2 * static_cast<uint64_t>(n))).append("]}");
    header += entry;
    offset += 2 * static_cast<uint64_t>(n);
  }
  header += "}";
  while (header.size() % 8) header += ' ';
  const fs::path tmp = dir / "diffusion_pytorch_model.safetensors.tmp";
  std::ofstream out(tmp, std::ios::binary);
  const uint64_t hlen = header.size();
  out.write(reinterpret_cast<const char*>(&hlen), 8);
  out << header;
  uint64_t state = 0x9E3779B97F4A7C15ull;
  std::vector<uint16_t> buf;
  for (const Spec& t : specs) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    buf.resize(static_cast<size_t>(n));
    const float amp = (t.stddev > 0 ? t.stddev : 0.05f) * std::sqrt(3.0f);
    for (auto& v : buf) {
      state ^= state << 13, state ^= state >> 7, state ^= state << 17;
      const float u = static_cast<float>(state >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f;
      v = Bf16((t.stddev > 0 ? 0.0f : 1.0f) + amp * u);
    }
    out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(2 * buf.size()));
  }
  out.close();
  if (!out) return false;
  fs::rename(tmp, dir / "diffusion_pytorch_model.safetensors");
  std::ofstream cfg(dir / "config.json");
  cfg << "{\"_class_name\": \"WanTransformer3DModel\", \"attention_head_dim\": 128, \"cross_attn_norm\": true, "
         "\"eps\": 1e-06, \"ffn_dim\": 8960, \"freq_dim\": 256, \"in_channels\": 16, \"num_attention_heads\": 12, "
         "\"num_layers\": 30, \"out_channels\": 16, \"patch_size\": [1, 2, 2], \"qk_norm\": \"rms_norm_across_heads\", "
         "\"rope_max_seq_len\": 1024, \"text_dim\": 4096}\n";
  return static_cast<bool>(cfg);
}

double PeakRssGiB() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0 / 1024.0;  // kB on Linux
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string folder = "/tmp/ditstream_wan13b_random/transformer", device = "cpu";
  int frames = 9, height = 240, width = 416, threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--folder") folder = v;
    else if (a == "--frames") frames = std::stoi(v);
    else if (a == "--height") height = std::stoi(v);
    else if (a == "--width") width = std::stoi(v);
    else if (a == "--threads") threads = std::stoi(v);
    else if (a == "--device") device = v;
    else {
      std::fprintf(stderr, "bench_wan: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if ((frames - 1) % 4 != 0 || height % 16 != 0 || width % 16 != 0) {
    std::fprintf(stderr, "bench_wan: frames must be 4k+1 and height/width multiples of 16\n");
    return 2;
  }
  if (!fs::exists(fs::path(folder) / "diffusion_pytorch_model.safetensors")) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!WriteFolder(folder)) {
      std::fprintf(stderr, "bench_wan: cannot write %s\n", folder.c_str());
      return 1;
    }
    std::printf("wrote random 1.3B-shaped weights to %s in %.1f s\n", folder.c_str(), Seconds(t0));
  }
  auto t0 = std::chrono::steady_clock::now();
  auto model = ds::WanTransformer::Load(folder);
  if (!model.ok()) {
    std::fprintf(stderr, "bench_wan: %s\n", model.status().message().c_str());
    return 1;
  }
  std::printf("load: %.1f s, peak RSS %.2f GiB (weights converted to float32)\n", Seconds(t0), PeakRssGiB());
  auto backend = ds::CreateBackend(device, threads);
  if (!backend.ok()) {
    std::fprintf(stderr, "bench_wan: %s\n", backend.status().message().c_str());
    return 1;
  }
  const int T = (frames - 1) / 4 + 1, H = height / 8, W = width / 8, L = 512;
  const size_t latent = static_cast<size_t>(kChannels) * T * H * W;
  std::vector<float> x(latent), v(latent), ctx(static_cast<size_t>(L) * kText, 0.0f);
  for (size_t i = 0; i < latent; ++i) x[i] = std::sin(0.37f * static_cast<float>(i));
  for (int r = 0; r < 24; ++r) {  // a 24-token prompt, zeros after it (as the pipeline pads)
    for (int c = 0; c < kText; ++c) ctx[static_cast<size_t>(r) * kText + c] = 0.1f * std::cos(0.11f * (r * kText + c));
  }
  t0 = std::chrono::steady_clock::now();
  const ds::Status s = model->Forward(**backend, x.data(), T, H, W, 500.0f, ctx.data(), L, v.data());
  const double sec = Seconds(t0);
  if (!s.ok()) {
    std::fprintf(stderr, "bench_wan: forward: %s\n", s.message().c_str());
    return 1;
  }
  double sum = 0;
  for (float f : v) sum += std::abs(f);
  const double flops = model->Flops(T, H, W, L), full = model->Flops(21, 60, 104, L);
  const int tokens = T * (H / 2) * (W / 2);
  std::printf("RESULT wan13b_forward backend=%s threads=%d video=%dx%dx%d tokens=%d s=%.2f gflops=%.1f "
              "peak_rss_gib=%.2f mean_abs_v=%.4f\n",
              (*backend)->name(), (*backend)->threads(), width, height, frames, tokens, sec, flops / sec / 1e9,
              PeakRssGiB(), sum / static_cast<double>(latent));
  std::printf("extrapolation to 832x480x81 (32760 tokens, %.0f TFLOP per forward) at the same FLOP rate: "
              "%.0f s per forward, %.1f h for 50 steps with CFG (100 forwards); attention's share grows "
              "with the token count, so treat this as a lower bound\n",
              full / 1e12, full / (flops / sec), 100 * full / (flops / sec) / 3600);
  return 0;
}
