// Times Wan2.1-1.3B-shaped stages with random weights (no checkpoint needed) and extrapolates to
// a 480x832x81 generation:
//   bench_wan_forward dit [layers=2] [threads=0]   transformer forward at one latent frame of 480p
//   bench_wan_forward dit14b [layers=2] [threads=0]   the same with the 14B's widths
//   bench_wan_forward vae [side=64] [threads=0]    VAE decoder frames at side x side pixels
//   bench_wan_forward vae-memory [side=512] [streamed|tiled]
//                                                  the VAE's working set, predicted at 480p and 720p
//                                                  and measured (peak RSS) decoding one latent frame
// The transformer is extrapolated from two measured rates: the self-attention kernel alone, and the
// rest of a 1-frame forward (linear layers); the VAE time per output frame scales with pixels.
#include <fmt/format.h>

#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "bench/random_wan.h"
#include "core/tensor.h"
#include "core/wan/wan_transformer.h"
#include "core/wan/wan_vae.h"
#include "core/wan/wan_vae_tiling.h"
#include "kernels/registry.h"

namespace {

using ds::Status;

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double PeakRssGb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss * 1024.0 / 1e9;  // KiB → GB
}

int BenchDit(const ds::WanTransformerConfig& c, const char* label, int layers, ds::Backend& be,
             const std::string& dir) {
  const int64_t d = c.dim();
  if (Status w = ds::bench::WriteRandomWan(dir, c, layers); !w.ok()) {
    std::fprintf(stderr, "%s\n", w.message().c_str());
    return 1;
  }
  const double rss_before = PeakRssGb();
  const auto t_load = std::chrono::steady_clock::now();
  auto m = ds::WanTransformer::Load(dir);
  if (!m.ok()) {
    std::fprintf(stderr, "%s\n", m.status().message().c_str());
    return 1;
  }
  std::printf("dit: loading %d layers of the %s: %.2f s, peak RSS %.2f GB → %.2f GB\n", layers, label, Seconds(t_load),
              rss_before, PeakRssGb());
  const int H = 60, W = 104, L = 512;  // 480x832 latents, Wan's 512 text rows
  std::vector<float> ctx(static_cast<size_t>(L) * 4096, 0.0f);
  std::mt19937 rng(2);
  std::normal_distribution<float> nd;
  for (size_t i = 0; i < 20 * 4096; ++i) ctx[i] = nd(rng);
  // Attention FLOPs of one layer at n tokens (self q·kᵀ and p·v, cross-attention to L rows).
  auto attn_flops = [&](double n) { return 4 * n * n * d + 4 * n * L * d; };

  // 1. The forward at one 480p latent frame (1560 tokens), where the linear layers dominate.
  std::vector<float> x(static_cast<size_t>(16) * H * W), v(x.size());
  for (float& e : x) e = nd(rng);
  auto t0 = std::chrono::steady_clock::now();
  Status s = m->Forward(be, x.data(), 1, H, W, 500.0f, ctx.data(), L, v.data());
  const double t_fwd = Seconds(t0);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  const double n1 = (H / 2) * (W / 2), f_fwd = m->Flops(1, H, W, L);
  std::printf("dit: %d layers at 1 latent frame (%.0f tokens): %.2f s, %.1f GFLOP/s; peak RSS %.2f GB\n", layers, n1,
              t_fwd, f_fwd / t_fwd * 1e-9, PeakRssGb());

  // 2. Self-attention alone at 4 latent frames (6240 tokens), where it dominates at full size.
  const int64_t na = 4 * (H / 2) * (W / 2), heads = c.heads, dh = c.head_dim;
  std::vector<float> q(static_cast<size_t>(na * d)), o(q.size());
  for (float& e : q) e = nd(rng);
  const ds::Tensor qt = ds::Tensor::View(q.data(), ds::DType::kF32, {na, heads, dh});
  ds::Tensor ot = ds::Tensor::View(o.data(), ds::DType::kF32, {na, heads, dh});
  t0 = std::chrono::steady_clock::now();
  be.attention(qt, qt, qt, 1.0f / std::sqrt(static_cast<float>(dh)), ot);
  const double t_attn = Seconds(t0), r_attn = 4.0 * na * na * d / t_attn;
  std::printf("dit: self-attention over %lld tokens: %.2f s, %.1f GFLOP/s\n", static_cast<long long>(na), t_attn,
              r_attn * 1e-9);

  // 3. Linear-layer rate = the forward's non-attention FLOPs over its non-attention time.
  const double f_attn1 = layers * attn_flops(n1), t_lin = t_fwd - f_attn1 / r_attn;
  const double r_lin = (f_fwd - f_attn1) / t_lin;
  std::printf("dit: linear layers %.1f GFLOP/s\n", r_lin * 1e-9);

  // 4. The whole model (all its blocks) at 480x832x81: 21 latent frames, 32760 tokens.
  const ds::WanTransformerConfig& full = c;
  const double n = 21.0 * (H / 2) * (W / 2);
  const double f_attn = full.layers * attn_flops(n);
  const double f_total = m->Flops(21, H, W, L) / layers * full.layers;
  const double per_forward = f_attn / r_attn + (f_total - f_attn) / r_lin;
  std::printf("dit: %s forward at 480x832x81 (%.0f tokens, %.0f TFLOP, %.0f%% attention): %.0f s\n", label, n,
              f_total * 1e-12, 100 * f_attn / f_total, per_forward);
  std::printf("dit: 50 steps with CFG (100 forwards): %.1f h\n", per_forward * 100 / 3600);
  return 0;
}

// The published Wan2.1 VAE's widths with random weights, written to dir and loaded.
ds::Result<ds::WanVaeDecoder> RandomVae(const std::string& dir) {
  DS_TRY(ds::bench::WriteRandomWanVae(dir));
  return ds::WanVaeDecoder::Load(dir);
}

int BenchVae(int side, ds::Backend& be, const std::string& dir) {
  auto vae = RandomVae(dir);
  if (!vae.ok()) {
    std::fprintf(stderr, "%s\n", vae.status().message().c_str());
    return 1;
  }
  const int h = side / 8, w = side / 8;
  std::vector<float> z(static_cast<size_t>(16) * h * w, 0.5f);
  if (!vae->Begin(be, h, w).ok()) return 1;
  int frames = 0;
  auto count = [&](const float*) {
    ++frames;
    return Status::Ok();
  };
  for (int t = 0; t < 3; ++t) {
    const int before = frames;
    const auto t0 = std::chrono::steady_clock::now();
    if (!vae->Push(be, z.data(), count).ok()) return 1;
    const double s = Seconds(t0);
    std::printf("vae: latent frame %d at %dx%d -> %d frame(s): %.2f s (%.3f s per frame)\n", t, side, side,
                frames - before, s, s / (frames - before));
    if (t == 2) {
      const double scale = 480.0 * 832.0 / (side * side);
      std::printf("vae: 480x832, 81 frames, extrapolated by pixel count: %.0f s\n", s / 4 * scale * 81);
    }
  }
  return 0;
}

int BenchVaeMemory(int side, bool tiled, ds::Backend& be, const std::string& dir) {
  auto vae = RandomVae(dir);
  if (!vae.ok()) {
    std::fprintf(stderr, "%s\n", vae.status().message().c_str());
    return 1;
  }
  const ds::VaeTiles tiles;
  std::printf("vae-memory: predicted working set, 81 frames (21 latent), diffusers' 256/192 tiles:\n");
  for (auto [h, w] : {std::pair{480, 832}, std::pair{720, 1280}}) {
    std::printf("vae-memory:   %4dx%-4d streamed %5.2f GB, tiled %5.2f GB (of which the video %4.2f GB)\n", w, h,
                vae->WorkingSetBytes(h / 8, w / 8) / 1e9,
                ds::VaeTiledWorkingSetBytes(*vae, tiles, 21, h / 8, w / 8) / 1e9, 81.0 * 3 * h * w * 4 / 1e9);
  }
  const int n = side / 8;
  std::vector<float> z(static_cast<size_t>(16) * n * n, 0.5f);
  const double before = PeakRssGb();
  const auto t0 = std::chrono::steady_clock::now();
  auto sink = [](const float*) { return Status::Ok(); };
  Status s = Status::Ok();
  size_t predicted = 0;
  if (tiled) {
    predicted = ds::VaeTiledWorkingSetBytes(*vae, tiles, 1, n, n);
    s = ds::DecodeTiled(
        *vae, be, tiles, z.data(), 1, n, n, [](int, int) { return Status::Ok(); }, sink);
  } else {
    predicted = vae->WorkingSetBytes(n, n);
    s = vae->Begin(be, n, n);
    if (s.ok()) s = vae->Push(be, z.data(), sink);
  }
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  std::printf(
      "vae-memory: %s decode of one latent frame at %dx%d: %.1f s, peak RSS %.2f GB after loading, "
      "%.2f GB during (+%.2f GB; predicted %.2f GB)\n",
      tiled ? "tiled" : "streamed", side, side, Seconds(t0), before, PeakRssGb(), PeakRssGb() - before,
      predicted / 1e9);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string what = argc > 1 ? argv[1] : "dit";
  const int arg = argc > 2 ? std::atoi(argv[2]) : (what == "vae" ? 64 : what == "vae-memory" ? 512 : 2);
  const bool tiled = what == "vae-memory" && argc > 3 && std::string(argv[3]) == "tiled";
  const int threads = argc > 3 && what != "vae-memory" ? std::atoi(argv[3]) : 0;
  auto be = ds::CreateBackend("cpu", threads);
  if (!be.ok()) return 1;
  const std::string dir = (std::filesystem::temp_directory_path() / fmt::format("ds_wan_bench_{}", what)).string();
  std::filesystem::create_directories(dir);
  const int rc = what == "vae"          ? BenchVae(arg, **be, dir)
                 : what == "vae-memory" ? BenchVaeMemory(arg, tiled, **be, dir)
                 : what == "dit14b"     ? BenchDit(ds::Wan14BConfig(), "14B", arg, **be, dir)
                                        : BenchDit(ds::Wan13BConfig(), "1.3B", arg, **be, dir);
  std::filesystem::remove_all(dir);
  return rc;
}
