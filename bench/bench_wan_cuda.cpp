// The engine's own WanTransformer on the CUDA backend, device-resident (weights copied to the GPU
// on first use, activations in backend buffers; only the latent, the text context and the velocity
// cross PCIe per forward). Run by bench/gpu_check.sh on a GPU machine:
//
//   1. parity: the tiny fixture transformer (tests/fixtures/wan/tiny/transformer), one forward on
//      the reference backend (float64-accumulating host code) and one on the CUDA backend (the
//      fixture is BF16: bf16 GEMMs on its matrices as stored, the FFN's hidden rows in bf16, bf16
//      flash attention), same inputs: "CHECK wan_tiny_cuda_vs_reference rel_rms=…";
//      exit 1 when the relative RMS difference exceeds 2e-2 or anything is not finite. Then the
//      CUDA graph of the forward (Backend::RunRecorded; the run above issued the ops one by one):
//      captured on the next forward, replayed on the one after, each with new inputs and against
//      the reference on them, "CHECK wan_tiny_cuda_graph_vs_reference …", and replayed on the
//      first run's inputs against its output, "CHECK wan_tiny_cuda_graph_vs_ops …" (the same
//      kernels on the same inputs: equal up to 1e-6). Then the first-block cache's recorded parts
//      (every block run; the rest reused on inputs seen), "CHECK wan_tiny_cuda_block_cache …".
//   2. speed: a random Wan2.1-1.3B (30 blocks) at 480x832x81 (latent 21x60x104, 32 760 tokens,
//      512 text rows): a first forward (uploads the weights), then timed forwards, replaying
//      the forward's CUDA graph, then issuing its ops one by one:
//      "RESULT engine_wan13b_forward …", "RESULT engine_wan13b_forward_without_graph …", and
//      with cuBLASLt's first algorithm for every GEMM instead of the fastest of those the first
//      forward timed, "RESULT engine_wan13b_forward_heuristic_gemms …"; the attention kernel the
//      first forward chose for each shape, "RESULT engine_wan13b_attention_choice …", and the
//      forward with each head dim's default kernel instead, "RESULT
//      engine_wan13b_forward_default_attention … attention_tuning_speedup=…"; then,
//      with --flash-configs a,b,…, the same graph-replayed forward with each of those attention
//      kernels (CudaBackend::set_flash_config; gpu_check names the fastest of bench_cuda's
//      table), "RESULT engine_wan13b_forward_flash config=… ms=…"; and a forward through the
//      first-block cache that runs every block and one that skips the rest,
//      "RESULT engine_wan13b_forward_block_cache full_ms=… reused_ms=…".
//   3. the VAE decoder, device-resident too: the tiny fixture VAE on both backends
//      ("CHECK wan_vae_tiny_cuda_vs_reference …", every decoded frame), then a random VAE of the
//      published widths streaming 3 latent frames (9 video frames) at 480x832:
//      "RESULT engine_wan_vae_480p …".
//   4. from 2 and 3, the time of a 50-step CFG generation at 480p x 81 frames:
//      "RESULT engine_wan13b_generation_estimate …".
//   5. the UMT5 text encoder (matrices widened per layer on the device, activations staged): the
//      tiny fixture encoder on both backends, "CHECK wan_umt5_tiny_cuda_vs_reference …".
//
//   bench_wan_cuda <repo root> [--layers N] [--reps N] [--work DIR] [--flash-configs a,b,…]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bench/random_wan.h"
#include "core/wan/umt5.h"
#include "core/wan/wan_transformer.h"
#include "core/wan/wan_vae.h"
#include "kernels/cpu/reference_backend.h"
#include "kernels/cuda/cuda_backend.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<float> Random(size_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

// ‖got − want‖ / ‖want‖; *finite: same sizes, not empty, every value of got finite.
double RelRms(const std::vector<float>& got, const std::vector<float>& want, bool* finite) {
  double diff = 0, norm = 0;
  *finite = got.size() == want.size() && !want.empty();
  for (size_t i = 0; *finite && i < want.size(); ++i) {
    *finite = std::isfinite(got[i]);
    diff += (got[i] - want[i]) * double(got[i] - want[i]);
    norm += want[i] * double(want[i]);
  }
  return norm > 0 ? std::sqrt(diff / norm) : INFINITY;
}

int Parity(const std::string& root, ds::CudaBackend& gpu) {
  auto model = ds::WanTransformer::Load(root + "/tests/fixtures/wan/tiny/transformer");
  if (!model.ok()) {
    std::fprintf(stderr, "bench_wan_cuda: %s\n", model.status().message().c_str());
    return 1;
  }
  const ds::WanTransformerConfig& c = model->config();
  const int T = 3, H = 8, W = 8, L = 16;
  std::vector<float> context = Random(static_cast<size_t>(L) * c.text_dim, 2, 1.0f);
  std::fill(context.begin() + 10 * c.text_dim, context.end(), 0.0f);  // padded rows, as the pipeline sends
  const size_t out_size = static_cast<size_t>(c.out_channels) * T * H * W;
  ds::ReferenceBackend reference;
  // Run 0 issues the ops (the first run of a recording), run 1 captures the graph and launches it,
  // run 2 replays it, run 3 replays it on run 0's inputs. The references first: a forward on
  // another backend starts the model's workspace (and its recording) over.
  const float timesteps[] = {700.0f, 300.0f, 950.0f, 700.0f};
  const uint32_t seeds[] = {1, 5, 6, 1};
  std::vector<std::vector<float>> latents, wants;
  for (int run = 0; run < 4; ++run) {
    latents.push_back(Random(static_cast<size_t>(c.in_channels) * T * H * W, seeds[run], 1.0f));
    wants.emplace_back(out_size);
    const ds::Status s =
        model->Forward(reference, latents[run].data(), T, H, W, timesteps[run], context.data(), L, wants[run].data());
    if (!s.ok()) {
      std::fprintf(stderr, "bench_wan_cuda: tiny reference forward %d: %s\n", run, s.message().c_str());
      return 1;
    }
  }
  std::vector<float> first;
  double graph_rel = 0, graph_vs_ops = 0;
  bool finite = true, replayed = true;
  for (int run = 0; run < 4; ++run) {
    std::vector<float> got(out_size, NAN);
    replayed = replayed && model->ForwardReplays() == (run >= 2);  // run 1 captures, 2 and 3 replay
    const ds::Status s =
        model->Forward(gpu, latents[run].data(), T, H, W, timesteps[run], context.data(), L, got.data());
    if (!s.ok()) {
      std::fprintf(stderr, "bench_wan_cuda: tiny forward %d: %s\n", run, s.message().c_str());
      return 1;
    }
    bool run_finite = false;
    const double rel = RelRms(got, wants[run], &run_finite);
    finite = finite && run_finite;
    if (run == 0) {
      std::printf(
          "CHECK wan_tiny_cuda_vs_reference rel_rms=%.2e (bf16 GEMMs and FFN hidden, bf16 attention; limit 2e-2)%s\n",
          rel, run_finite ? "" : " NON-FINITE OUTPUT");
      first = got;
    } else {
      graph_rel = std::max(graph_rel, rel);
    }
    if (run == 3) graph_vs_ops = RelRms(got, first, &run_finite);
  }
  std::printf("CHECK wan_tiny_cuda_graph_vs_reference runs=3 max_rel_rms=%.2e (limit 2e-2)%s%s\n", graph_rel,
              finite ? "" : " NON-FINITE OUTPUT", replayed ? "" : " NOT REPLAYED AS A GRAPH");
  std::printf("CHECK wan_tiny_cuda_graph_vs_ops rel_rms=%.2e (same inputs; limit 1e-6)\n", graph_vs_ops);

  // The first-block cache's three recorded parts (each issued, captured, then replayed). Slot 1,
  // under a threshold no change passes, runs every block on the four inputs: its first and rest
  // parts against the reference. Slot 0 gets run 0's inputs four times: the first full, the others
  // reuse the rest, which on the same inputs is the full forward again.
  model->ResetBlockCache();
  double cache_rel = 0, reused_vs_full = 0;
  bool cache_ok = true;
  for (int pass = 0; pass < 2; ++pass) {
    for (int run = 0; run < 4; ++run) {
      const int in = pass == 0 ? run : 0;
      const ds::BlockCacheUse use = pass == 0 ? ds::BlockCacheUse{1e-30f, 1} : ds::BlockCacheUse{0.5f, 0};
      std::vector<float> got(out_size, NAN);
      const ds::Status s =
          model->Forward(gpu, latents[in].data(), T, H, W, timesteps[in], context.data(), L, got.data(), use);
      if (!s.ok()) {
        std::fprintf(stderr, "bench_wan_cuda: tiny cached forward %d/%d: %s\n", pass, run, s.message().c_str());
        return 1;
      }
      bool run_finite = false;
      if (pass == 0) {
        cache_rel = std::max(cache_rel, RelRms(got, wants[in], &run_finite));
      } else {
        reused_vs_full = std::max(reused_vs_full, RelRms(got, first, &run_finite));
      }
      cache_ok = cache_ok && run_finite;
    }
  }
  const ds::FirstBlockCache::Stats full_slot = model->block_cache_stats(1), reuse_slot = model->block_cache_stats(0);
  const bool counts_ok =
      full_slot.forwards == 4 && full_slot.reused == 0 && reuse_slot.forwards == 4 && reuse_slot.reused == 3;
  // Slot 1's first and rest parts ran four times, slot 0's reuse part three: each captured by now.
  const bool cache_replays = model->CachedForwardReplays(1, /*reused=*/false) && model->CachedForwardReplays(0, true);
  std::printf(
      "CHECK wan_tiny_cuda_block_cache full_rel_rms=%.2e (limit 2e-2) reused_vs_full=%.2e (limit 1e-5) "
      "reused=%d/%d and %d/%d (want 0/4 and 3/4)%s%s\n",
      cache_rel, reused_vs_full, full_slot.reused, full_slot.forwards, reuse_slot.reused, reuse_slot.forwards,
      cache_ok ? "" : " NON-FINITE OUTPUT", cache_replays ? "" : " NOT REPLAYED AS GRAPHS");
  return finite && replayed && graph_rel <= 2e-2 && graph_vs_ops <= 1e-6 && cache_ok && counts_ok && cache_replays &&
                 cache_rel <= 2e-2 && reused_vs_full <= 1e-5
             ? 0
             : 1;
}

// "a,b" → {"a", "b"}; empty names dropped.
std::vector<std::string> SplitNames(const std::string& list) {
  std::vector<std::string> names;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    if (comma > start) names.push_back(list.substr(start, comma - start));
    start = comma + 1;
  }
  return names;
}

int Speed(ds::CudaBackend& gpu, const std::string& work, int layers, int reps,
          const std::vector<std::string>& flash_configs, double* forward_ms) {
  auto t0 = std::chrono::steady_clock::now();
  if (ds::Status s = ds::bench::WriteRandomWan13B(work, layers); !s.ok()) {
    std::fprintf(stderr, "bench_wan_cuda: %s\n", s.message().c_str());
    return 1;
  }
  std::printf("wrote a random %d-block Wan2.1-1.3B checkpoint in %.1f s\n", layers, Seconds(t0));
  t0 = std::chrono::steady_clock::now();
  auto model = ds::WanTransformer::Load(work);
  if (!model.ok()) {
    std::fprintf(stderr, "bench_wan_cuda: %s\n", model.status().message().c_str());
    return 1;
  }
  std::printf("loaded (block matrices kept in BF16, mapped) in %.1f s\n", Seconds(t0));
  const int T = 21, H = 60, W = 104, L = 512;
  const std::vector<float> latent = Random(16ull * T * H * W, 3, 1.0f);
  std::vector<float> context = Random(static_cast<size_t>(L) * 4096, 4, 0.1f);
  std::fill(context.begin() + 40 * 4096, context.end(), 0.0f);
  std::vector<float> velocity(latent.size());
  // Mean seconds of `n` forwards (one status for all: a failed op fails the next Synchronize).
  ds::Status s = ds::Status::Ok();
  auto timed = [&](int n, float timestep, ds::BlockCacheUse cache = {}) {
    const auto start = std::chrono::steady_clock::now();
    for (int r = 0; r < n && s.ok(); ++r) {
      s = model->Forward(gpu, latent.data(), T, H, W, timestep, context.data(), L, velocity.data(), cache);
    }
    return Seconds(start) / n;
  };
  const double first_s = timed(1, 999.0f);
  std::printf(
      "first forward (incl. weight upload, workspace allocation, GEMM algorithm and attention kernel timing): %.2f s\n",
      first_s);
  const double second_s = timed(1, 999.0f);
  std::printf("second forward (captures the CUDA graph, then launches it): %.2f s; replays: %s\n", second_s,
              model->ForwardReplays() ? "yes" : "NO");
  const double ms = timed(reps, 500.0f) * 1e3;
  // The same forwards with the ops issued one by one (the graph saves their launches and host work).
  gpu.set_graphs(false);
  const double ops_ms = timed(reps, 500.0f) * 1e3;
  gpu.set_graphs(true);
  // The same forwards with one of the first forward's choices undone (`off`: its default at every
  // call; the first forward then issues the ops, the second captures them), then the choice made
  // again (`on`: from this run's tuning cache) for the stages after; the velocity is held to that
  // of the chosen kernels.
  const std::vector<float> tuned_velocity = velocity;
  struct Undone {
    double ms = 0, rel = 0;
    bool finite = false;
  };
  auto undone = [&](ds::Status (ds::CudaBackend::*set)(ds::cuda::Autotune)) {
    Undone u;
    if (s.ok()) s = (gpu.*set)(ds::cuda::Autotune::kOff);
    if (s.ok()) {
      timed(2, 999.0f);
      u.ms = timed(reps, 500.0f) * 1e3;
      u.rel = RelRms(velocity, tuned_velocity, &u.finite);
    }
    if (s.ok()) s = (gpu.*set)(ds::cuda::Autotune::kRecorded);
    if (s.ok()) timed(2, 500.0f);
    return u;
  };
  // cuBLASLt's first algorithm for every GEMM instead of the fastest of the candidates timed.
  const Undone heuristic = undone(&ds::CudaBackend::set_gemm_autotune);
  // Each head dim's default attention kernel at every shape (the choices printed first).
  const std::map<std::string, ds::cuda::AttentionChoice> attention_choices = gpu.attention_choices();
  const Undone default_attention = undone(&ds::CudaBackend::set_attention_autotune);
  // The first-block cache: a step that runs every block (plus the cache's copies and sums), and
  // one that skips the rest. The inputs never change here, so the change is 0 from the second
  // forward on: a reset before each forward leaves nothing to reuse, and without it the rest is
  // always reused. The velocity reported below stays the uncached forward's.
  const std::vector<float> uncached_velocity = velocity;
  const ds::BlockCacheUse cached{1.0f, 0};
  auto full_through_cache = [&](int n) {
    double seconds = 0;
    for (int r = 0; r < n && s.ok(); ++r) {
      model->ResetBlockCache();
      seconds += timed(1, 500.0f, cached);
    }
    return seconds / n;
  };
  full_through_cache(2);  // issues, then captures
  const double cache_full_ms = s.ok() ? full_through_cache(reps) * 1e3 : 0;
  const bool full_replays = model->CachedForwardReplays(0, /*reused=*/false);
  const ds::FirstBlockCache::Stats full_stats = model->block_cache_stats(0);
  if (s.ok()) timed(2, 500.0f, cached);  // the reused part issued, then captured
  const double cache_reused_ms = s.ok() ? timed(reps, 500.0f, cached) * 1e3 : 0;
  const bool reused_replays = model->CachedForwardReplays(0, /*reused=*/true);
  const ds::FirstBlockCache::Stats cache_stats = model->block_cache_stats(0);
  velocity = uncached_velocity;
  if (!s.ok()) {
    std::fprintf(stderr, "bench_wan_cuda: forward: %s\n", s.message().c_str());
    return 1;
  }
  double sum = 0;
  for (float v : velocity) sum += std::abs(v);
  const double flops = model->Flops(T, H, W, L);
  std::printf("RESULT engine_wan13b_forward tokens=%d layers=%d text=%d ms=%.1f tflops=%.1f mean_abs_v=%.4f\n",
              T * (H / 2) * (W / 2), layers, L, ms, flops / ms / 1e9, sum / static_cast<double>(velocity.size()));
  std::printf("RESULT engine_wan13b_forward_without_graph tokens=%d layers=%d ms=%.1f graph_speedup=%.3f\n",
              T * (H / 2) * (W / 2), layers, ops_ms, ops_ms / ms);
  std::printf(
      "RESULT engine_wan13b_forward_block_cache tokens=%d layers=%d full_ms=%.1f reused_ms=%.1f skip_speedup=%.2f "
      "(full: reused %d/%d, want 0; then reused %d/%d, want all but the first)%s\n",
      T * (H / 2) * (W / 2), layers, cache_full_ms, cache_reused_ms, cache_reused_ms > 0 ? ms / cache_reused_ms : 0.0,
      full_stats.reused, full_stats.forwards, cache_stats.reused, cache_stats.forwards,
      full_replays && reused_replays ? "" : " NOT REPLAYED AS GRAPHS");
  // Whether cuBLASLt accumulated the gated residuals itself (its per-row alpha) or the fallback ran.
  const ds::CudaBackend::LinearResidualPaths paths = gpu.linear_residual_paths();
  std::printf("RESULT engine_wan13b_linear_residual fused=%zu fallback=%zu\n", paths.fused, paths.fallback);
  std::printf(
      "RESULT engine_wan13b_forward_heuristic_gemms tokens=%d layers=%d ms=%.1f gemm_tuning_speedup=%.3f "
      "rel_rms_vs_tuned=%.2e\n",
      T * (H / 2) * (W / 2), layers, heuristic.ms, heuristic.ms / ms, heuristic.rel);
  for (const auto& [shape, choice] : attention_choices) {
    const char* how = choice.how == ds::cuda::AttentionChoice::How::kTimed    ? "timed"
                      : choice.how == ds::cuda::AttentionChoice::How::kCached ? "cached"
                                                                              : "untimed";
    std::printf("RESULT engine_wan13b_attention_choice shape=%s config=%s how=%s ms=%.3f default_ms=%.3f\n",
                shape.c_str(), choice.name.c_str(), how, choice.chosen_ms, choice.default_ms);
  }
  std::printf(
      "RESULT engine_wan13b_forward_default_attention tokens=%d layers=%d ms=%.1f attention_tuning_speedup=%.3f "
      "rel_rms_vs_tuned=%.2e\n",
      T * (H / 2) * (W / 2), layers, default_attention.ms, default_attention.ms / ms, default_attention.rel);
  for (const auto& [what, u] : {std::pair{"the default attention kernels", default_attention},
                                std::pair{"the heuristic's GEMM algorithms", heuristic}}) {
    if (!u.finite || u.rel > 2e-2) {
      std::fprintf(stderr, "bench_wan_cuda: the forward with %s %s (rel rms %.2e)\n", what,
                   u.finite ? "differs from the tuned one" : "is not finite", u.rel);
      return 1;
    }
  }
  *forward_ms = ms;
  // Each further attention kernel: its first forward issues the ops, the second captures them
  // (the graph of the previous kernel is not what replays), then the timed replays; its velocity
  // is held to that of the kernels the first forward chose, on the same inputs (a fast kernel must
  // also be right).
  const std::vector<float> chosen_velocity = velocity;
  for (const std::string& config : flash_configs) {
    if (ds::Status set = gpu.set_flash_config(config); !set.ok()) {
      std::fprintf(stderr, "bench_wan_cuda: flash config %s: %s\n", config.c_str(), set.message().c_str());
      return 1;
    }
    timed(2, 999.0f);
    const double config_ms = timed(reps, 500.0f) * 1e3;
    if (!s.ok()) {
      std::fprintf(stderr, "bench_wan_cuda: forward with flash config %s: %s\n", config.c_str(), s.message().c_str());
      return 1;
    }
    bool finite = false;
    const double rel = RelRms(velocity, chosen_velocity, &finite);
    std::printf(
        "RESULT engine_wan13b_forward_flash config=%s tokens=%d layers=%d ms=%.1f tflops=%.1f replays=%s "
        "rel_rms_vs_chosen=%.2e\n",
        config.c_str(), T * (H / 2) * (W / 2), layers, config_ms, flops / config_ms / 1e9,
        model->ForwardReplays() ? "yes" : "NO", rel);
    if (!finite || rel > 2e-2) {
      std::fprintf(stderr, "bench_wan_cuda: flash config %s: velocity %s the chosen kernels' (rel rms %.2e)\n",
                   config.c_str(), finite ? "differs from" : "is not finite, unlike", rel);
      return 1;
    }
  }
  if (!flash_configs.empty()) {
    if (ds::Status set = gpu.set_flash_config(""); !set.ok()) {  // the starting choice again, for the stages after
      std::fprintf(stderr, "bench_wan_cuda: %s\n", set.message().c_str());
      return 1;
    }
  }
  return std::isfinite(sum) ? 0 : 1;
}

// Streams latent frames z [16, T, h, w] through `vae` on `be`; every video frame appended to out.
ds::Status Decode(ds::WanVaeDecoder& vae, ds::Backend& be, const std::vector<float>& z, int T, int h, int w,
                  std::vector<float>& out) {
  DS_TRY(vae.Begin(be, h, w));
  const size_t plane = static_cast<size_t>(h) * w;
  std::vector<float> frame(16 * plane);
  const size_t pixels = 3 * plane * 64;
  for (int t = 0; t < T; ++t) {
    for (size_t c = 0; c < 16; ++c) std::copy_n(z.begin() + (c * T + t) * plane, plane, frame.begin() + c * plane);
    DS_TRY(vae.Push(be, frame.data(), [&](const float* rgb) {
      out.insert(out.end(), rgb, rgb + pixels);
      return ds::Status::Ok();
    }));
  }
  vae.End();
  return ds::Status::Ok();
}

int VaeParity(const std::string& root, ds::CudaBackend& gpu) {
  auto vae = ds::WanVaeDecoder::Load(root + "/tests/fixtures/wan/tiny/vae");
  if (!vae.ok()) {
    std::fprintf(stderr, "bench_wan_cuda: %s\n", vae.status().message().c_str());
    return 1;
  }
  const int T = 3, h = 5, w = 7;
  const std::vector<float> z = Random(16ull * T * h * w, 5, 1.0f);
  std::vector<float> want, got;
  ds::ReferenceBackend reference;
  ds::Status s = Decode(*vae, reference, z, T, h, w, want);
  if (s.ok()) s = Decode(*vae, gpu, z, T, h, w, got);
  if (!s.ok()) {
    std::fprintf(stderr, "bench_wan_cuda: tiny VAE: %s\n", s.message().c_str());
    return 1;
  }
  bool finite = false;
  const double rel = RelRms(got, want, &finite);
  std::printf("CHECK wan_vae_tiny_cuda_vs_reference frames=%zu rel_rms=%.2e (limit 2e-2)%s\n",
              want.size() / (3 * 64 * h * w), rel, finite ? "" : " NON-FINITE OR MISSING OUTPUT");
  return finite && rel <= 2e-2 ? 0 : 1;
}

int TextEncoderParity(const std::string& root, ds::CudaBackend& gpu) {
  auto encoder = ds::Umt5Encoder::Load(root + "/tests/fixtures/wan/tiny/text_encoder");
  if (!encoder.ok()) {
    std::fprintf(stderr, "bench_wan_cuda: %s\n", encoder.status().message().c_str());
    return 1;
  }
  const std::vector<int> ids = {5, 17, 3, 42, 1, 9, 2};
  std::vector<float> want, got;
  ds::ReferenceBackend reference;
  ds::Status s = encoder->Encode(reference, ids, want);
  if (s.ok()) s = encoder->Encode(gpu, ids, got);
  if (s.ok()) s = gpu.Synchronize();
  if (!s.ok()) {
    std::fprintf(stderr, "bench_wan_cuda: tiny UMT5: %s\n", s.message().c_str());
    return 1;
  }
  bool finite = false;
  const double rel = RelRms(got, want, &finite);
  std::printf("CHECK wan_umt5_tiny_cuda_vs_reference rel_rms=%.2e (TF32 GEMMs; limit 2e-2)%s\n", rel,
              finite ? "" : " NON-FINITE OR MISSING OUTPUT");
  return finite && rel <= 2e-2 ? 0 : 1;
}

int VaeSpeed(ds::CudaBackend& gpu, const std::string& work, double* clip_s) {
  if (ds::Status s = ds::bench::WriteRandomWanVae(work + "_vae"); !s.ok()) {
    std::fprintf(stderr, "bench_wan_cuda: %s\n", s.message().c_str());
    return 1;
  }
  auto vae = ds::WanVaeDecoder::Load(work + "_vae");
  if (!vae.ok()) {
    std::fprintf(stderr, "bench_wan_cuda: %s\n", vae.status().message().c_str());
    return 1;
  }
  const int T = 3, h = 60, w = 104;
  const std::vector<float> z = Random(16ull * T * h * w, 6, 1.0f);
  std::vector<float> frames;
  auto t0 = std::chrono::steady_clock::now();
  ds::Status s = Decode(*vae, gpu, z, 1, h, w, frames);  // uploads the weights, allocates
  const double first = Seconds(t0);
  frames.clear();
  t0 = std::chrono::steady_clock::now();
  if (s.ok()) s = Decode(*vae, gpu, z, T, h, w, frames);
  const double secs = Seconds(t0);
  if (!s.ok()) {
    std::fprintf(stderr, "bench_wan_cuda: VAE: %s\n", s.message().c_str());
    return 1;
  }
  const size_t n = frames.size() / (3 * 64 * static_cast<size_t>(h) * w);
  std::printf(
      "RESULT engine_wan_vae_480p frames=%zu ms_per_frame=%.1f first_frame_incl_upload_ms=%.0f "
      "clip81_s=%.1f\n",
      n, secs * 1e3 / static_cast<double>(n), first * 1e3, secs / static_cast<double>(n) * 81);
  *clip_s = secs / static_cast<double>(n) * 81;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: bench_wan_cuda <repo root> [--layers N] [--reps N] [--work DIR] [--flash-configs a,b,...]\n");
    return 2;
  }
  const std::string root = argv[1];
  int layers = 30, reps = 3;
  std::string work = "/tmp/ditstream_wan13b_random";
  std::vector<std::string> flash_configs;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--layers") == 0)
      layers = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--reps") == 0)
      reps = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--work") == 0)
      work = argv[i + 1];
    else if (std::strcmp(argv[i], "--flash-configs") == 0)
      flash_configs = SplitNames(argv[i + 1]);
  }
  ds::CudaOptions options;
  options.arena_bytes = size_t{2} << 30;  // op scratch only: the model's memory comes from NewBuffer
  // A tuning cache of this run's own: the first forward times the GEMM algorithms and attention
  // kernels, and after each comparison below (heuristic GEMMs, default attention kernels) the same
  // choices come back from it, so the stages after run what the first forward chose.
  options.tuning_cache = work + ".tuning.txt";
  std::remove(options.tuning_cache->c_str());
  auto gpu = ds::CudaBackend::Create(options);
  if (!gpu.ok()) {
    std::fprintf(stderr, "bench_wan_cuda: %s\n", gpu.status().message().c_str());
    return 2;
  }
  std::printf("device: %s\n", (*gpu)->description().c_str());
  const int parity = Parity(root, **gpu);
  double forward_ms = 0, vae_clip_s = 0;
  const int speed = Speed(**gpu, work, layers, reps, flash_configs, &forward_ms);
  const int vae_parity = VaeParity(root, **gpu);
  const int vae_speed = VaeSpeed(**gpu, work, &vae_clip_s);
  // A 50-step CFG generation at 480x832x81 from the measured stages: 100 forwards of all 30 blocks
  // and the streamed decode of 81 frames (the text encoder runs once per prompt, and is cached).
  if (speed == 0 && vae_speed == 0 && layers > 0) {
    const double dit_s = forward_ms * 30.0 / layers * 100 / 1e3;
    std::printf("RESULT engine_wan13b_generation_estimate steps=50 cfg=1 dit_s=%.1f vae_s=%.1f total_s=%.1f\n", dit_s,
                vae_clip_s, dit_s + vae_clip_s);
  }
  const int text_parity = TextEncoderParity(root, **gpu);
  for (int rc : {parity, speed, vae_parity, vae_speed, text_parity}) {
    if (rc != 0) return rc;
  }
  return 0;
}
