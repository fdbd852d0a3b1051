// DiT forward on the CPU backend: time per forward, achieved GFLOP/s, the share of time in GEMM,
// attention and everything else, and each against raw OpenBLAS sgemm on the very GEMM shapes the
// forward ran, measured in the same run.
//
//   bench_dit [MODEL_DIR] [--threads N] [--reps N]
// Without MODEL_DIR: the bundled demo model when present. Two configurations are measured: the
// model's native clip (CFG batch of two) and a 4× longer, 4× larger grid to show scaling.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench/profiling_backend.h"
#include "core/model.h"
#include "kernels/registry.h"
#include "pipelines/text_to_video.h"

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Raw cblas_sgemm time for y[M,N] = x[M,K]·w[N,K]ᵀ, best of reps.
double SgemmSeconds(int64_t M, int64_t N, int64_t K, int reps) {
  std::vector<float> x(M * K, 0.5f), w(N * K, 0.25f), y(M * N);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double t0 = Now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x.data(), K, w.data(), K, 0.0f, y.data(), N);
    best = std::min(best, Now() - t0);
  }
  return best;
}

void Run(ds::Model& model, ds::bench::ProfilingBackend& be, int T, int H, int W, int reps) {
  const ds::DitConfig& c = model.config().dit;
  const int L = 8;
  std::vector<float> x(static_cast<size_t>(c.in_channels) * T * H * W), text(L * c.text_dim), pooled(c.text_dim);
  std::vector<float> out(2 * static_cast<size_t>(c.out_channels) * T * H * W);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  for (auto* v : {&x, &text, &pooled})
    for (float& f : *v) f = nd(rng);
  const size_t n = out.size() / 2;
  ds::DitItem items[2] = {{x.data(), text.data(), L, pooled.data(), out.data()},
                          {x.data(), text.data(), 1, pooled.data(), out.data() + n}};
  (void)model.dit().Forward(be, items, 0.5f, T, H, W);  // warm-up: workspaces, caches
  double best = 1e30;
  ds::bench::ProfilingBackend::Profile best_profile;
  for (int r = 0; r < reps; ++r) {
    be.Reset();
    const double t0 = Now();
    if (!model.dit().Forward(be, items, 0.5f, T, H, W).ok()) return;
    const double dt = Now() - t0;
    if (dt < best) {
      best = dt;
      best_profile = be.profile;
    }
  }
  const double flops = model.dit().Flops(T, H, W, L) + model.dit().Flops(T, H, W, 1);
  double gemm_flops = 0, sgemm_s = 0;
  for (const auto& [shape, calls] : best_profile.gemm_shapes) {
    const auto [M, N, K] = shape;
    gemm_flops += 2.0 * M * N * K * calls;
    sgemm_s += SgemmSeconds(M, N, K, 5) * calls;
  }
  const double sgemm_gflops = gemm_flops / sgemm_s * 1e-9;
  const double tokens = static_cast<double>(T / c.patch[0]) * (H / c.patch[1]) * (W / c.patch[2]);
  std::printf("\nDiT forward, CFG batch of 2, latent %dx%dx%d (%.0f video tokens + %d/1 text), dim %d, %d layers, %d threads\n",
              T, H, W, tokens, L, c.dim, c.layers, be.threads());
  std::printf("  time per forward           %9.2f ms\n", best * 1e3);
  std::printf("  achieved                   %9.2f GFLOP/s (%.3f GFLOP)\n", flops / best * 1e-9, flops * 1e-9);
  std::printf("  GEMM                       %9.2f ms  %5.1f %%  %7.2f GFLOP/s = %5.1f %% of raw sgemm on the same shapes (%.2f GFLOP/s)\n",
              best_profile.gemm_s * 1e3, 100 * best_profile.gemm_s / best, gemm_flops / best_profile.gemm_s * 1e-9,
              100 * sgemm_s / best_profile.gemm_s, sgemm_gflops);
  std::printf("  attention                  %9.2f ms  %5.1f %%  %7.2f GFLOP/s = %5.1f %% of that sgemm rate\n",
              best_profile.attention_s * 1e3, 100 * best_profile.attention_s / best,
              best_profile.attention_flops / best_profile.attention_s * 1e-9,
              100 * best_profile.attention_flops / best_profile.attention_s * 1e-9 / sgemm_gflops);
  const double rest = best - best_profile.gemm_s - best_profile.attention_s;
  std::printf("  everything else            %9.2f ms  %5.1f %%  (norms, modulation, activations, RoPE, patchify)\n",
              rest * 1e3, 100 * rest / best);
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_arg = "demo";
  int threads = 0, reps = 10;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    else model_arg = argv[i];
  }
  auto folder = ds::ResolveModelFolder(model_arg);
  if (!folder.ok()) {
    std::fprintf(stderr, "bench_dit: %s\n", folder.status().message().c_str());
    return 1;
  }
  auto model = ds::Model::Load(*folder);
  auto inner = ds::CreateBackend("cpu", threads);
  if (!model.ok() || !inner.ok()) {
    std::fprintf(stderr, "bench_dit: %s\n", (!model.ok() ? model.status() : inner.status()).message().c_str());
    return 1;
  }
  ds::bench::ProfilingBackend be(std::move(*inner));
  const ds::ModelConfig& c = (*model)->config();
  const int T = c.video.frames, H = c.video.height / c.downsample, W = c.video.width / c.downsample;
  std::printf("model %s (%s)\n", folder->c_str(), c.family.c_str());
  Run(**model, be, T, H, W, reps);
  Run(**model, be, 4 * T, 2 * H, 2 * W, std::max(2, reps / 5));
  return 0;
}
