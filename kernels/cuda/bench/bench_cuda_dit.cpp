// A Wan2.1-1.3B-shaped DiT forward on the CUDA backend, device-resident: every activation lives in
// the backend's arena, every op is a Backend op, in the order of WanTransformer::RunBlock
// (core/wan/wan_transformer.cpp). 480×832×81 frames → latent 21×60×104 → 32 760 tokens after the
// 1×2×2 patch; dim 1536, 12 heads × 128, FFN 8960, 30 blocks, 512 text tokens.
//
// Why beside bench/bench_wan_cuda (which times the engine's own WanTransformer on the GPU, and agreed
// within 0.3 % on the H100): this program attributes time to op families by synchronising after
// each op, which the engine cannot do without a profiling hook in the model code; keep Block() in
// step with RunBlock when either changes.
//
// Random weights, the matrices in BF16 as the engine keeps a bf16 checkpoint's (linear then runs
// bf16 GEMMs). One block's weights (93 MB, far more than the L2) serve all 30 blocks:
// each block still streams its weights from device memory, and filling 5.6 GB from the host would
// only slow the benchmark down. The per-block modulation vectors are device tensors prepared once
// (the engine adds the block table to the time projection on the device: 6·1536 floats, two tiny
// ops per block, left out here).
//
// Prints "RESULT dit_forward_wan13b ..." with the mean wall time of a forward (host clock around
// Synchronize, after a warm-up forward) and one "RESULT dit_forward_part ..." line per op family
// from a separate pass that synchronizes after every op.
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

#include "kernels/cuda/cuda_backend.h"

namespace ds {
namespace {

void Require(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "bench_cuda_dit: %s: %s\n", what, s.message().c_str());
    std::exit(1);
  }
}

template <class T>
T Take(Result<T> r, const char* what) {
  Require(r.status(), what);
  return std::move(*r);
}

struct Shape {
  int tokens = 21 * 30 * 52, dim = 1536, heads = 12, head_dim = 128, ffn = 8960, layers = 30, text = 512;
};

// Device tensors of one block (shared by every block) and of the activations.
struct Net {
  Tensor qkv_w, qkv_b, o_w, o_b;                          // self-attention: q, k, v as one matrix
  Tensor cq_w, cq_b, ck_w, ck_b, cv_w, cv_b, co_w, co_b;  // cross-attention
  Tensor fc1_w, fc1_b, fc2_w, fc2_b;
  Tensor norm_q, norm_k, cnorm_q, cnorm_k, norm2_w, norm2_b;
  Tensor mod;  // [6, dim]: shift, scale, gate (attention), shift, scale, gate (FFN)
  Tensor x, a, qkv, q, k, v, o, f, hidden, ctx, ck, cv, cos, sin;  // q, k, v: column views of qkv
};

// Normal(mean, stddev) values in a device tensor of `dtype`: F32, or BF16 for the block matrices, as
// the published checkpoints store them and the engine keeps them on the device.
Tensor Random(CudaBackend& be, std::mt19937& rng, std::initializer_list<int64_t> shape, float stddev, float mean = 0,
              DType dtype = DType::kF32) {
  Tensor t = Take(be.Alloc(dtype, shape), "alloc");
  std::vector<float> host(static_cast<size_t>(t.numel()));
  std::normal_distribution<float> dist(mean, stddev);
  for (float& x : host) x = dist(rng);
  std::vector<uint16_t> bf16;
  Tensor src = Tensor::View(host.data(), DType::kF32, {t.numel()});
  if (dtype == DType::kBF16) {
    for (float x : host) bf16.push_back(FloatToBFloat16(x));
    src = Tensor::View(bf16.data(), DType::kBF16, {t.numel()});
  }
  Require(be.Upload(src, Tensor::View(t.data, dtype, {t.numel()}, Device::kCuda)), "upload");
  return t;
}

Net Build(CudaBackend& be, const Shape& s) {
  std::mt19937 rng(2026);
  const float wstd = 1.0f / std::sqrt(static_cast<float>(s.dim)), fstd = 1.0f / std::sqrt(static_cast<float>(s.ffn));
  Net n;
  auto linear = [&](Tensor& w, Tensor& b, int out, int in, float stddev) {
    w = Random(be, rng, {out, in}, stddev, 0.0f, DType::kBF16);
    b = Random(be, rng, {out}, 0.02f);
  };
  linear(n.qkv_w, n.qkv_b, 3 * s.dim, s.dim, wstd);
  linear(n.o_w, n.o_b, s.dim, s.dim, wstd);
  linear(n.cq_w, n.cq_b, s.dim, s.dim, wstd);
  linear(n.ck_w, n.ck_b, s.dim, s.dim, wstd);
  linear(n.cv_w, n.cv_b, s.dim, s.dim, wstd);
  linear(n.co_w, n.co_b, s.dim, s.dim, wstd);
  linear(n.fc1_w, n.fc1_b, s.ffn, s.dim, wstd);
  linear(n.fc2_w, n.fc2_b, s.dim, s.ffn, fstd);
  for (Tensor* t : {&n.norm_q, &n.norm_k, &n.cnorm_q, &n.cnorm_k, &n.norm2_w})
    *t = Random(be, rng, {s.dim}, 0.05f, 1.0f);
  n.norm2_b = Random(be, rng, {s.dim}, 0.02f);
  n.mod = Random(be, rng, {6, s.dim}, 0.1f);
  n.x = Random(be, rng, {s.tokens, s.dim}, 1.0f);
  n.ctx = Random(be, rng, {s.text, s.dim}, 1.0f);
  // BF16 where the engine keeps them on a GPU: the norms' rows, q/k/v and the attention output.
  n.f = Take(be.Alloc(DType::kF32, {s.tokens, s.dim}), "alloc");
  n.o = Take(be.Alloc(DType::kBF16, {s.tokens, s.dim}), "alloc");
  n.a = Take(be.Alloc(DType::kBF16, {s.tokens, s.dim}), "alloc");
  n.qkv = Take(be.Alloc(DType::kBF16, {s.tokens, 3 * s.dim}), "alloc");
  for (int part = 0; part < 3; ++part) {
    Tensor& t = part == 0 ? n.q : part == 1 ? n.k : n.v;
    t = n.qkv;
    t.shape[1] = s.dim;
    t.data = static_cast<uint16_t*>(n.qkv.data) + part * s.dim;
  }
  n.hidden = Take(be.Alloc(DType::kBF16, {s.tokens, s.ffn}), "alloc");  // as the engine keeps it (HiddenDType)
  n.ck = Take(be.Alloc(DType::kF32, {s.text, s.dim}), "alloc");
  n.cv = Take(be.Alloc(DType::kF32, {s.text, s.dim}), "alloc");
  // RoPE angles of the 21×30×52 grid, split 44/42/42 over the head's 64 pairs (as the engine does).
  const int half = s.head_dim / 2, grid[3] = {21, 30, 52}, pairs[3] = {22, 21, 21};
  std::vector<float> cs(static_cast<size_t>(s.tokens) * half), sn(cs.size());
  for (int t = 0; t < s.tokens; ++t) {
    const int pos[3] = {t / (grid[1] * grid[2]), t / grid[2] % grid[1], t % grid[2]};
    int j = 0;
    for (int axis = 0; axis < 3; ++axis) {
      for (int p = 0; p < pairs[axis]; ++p, ++j) {
        const double angle = pos[axis] * std::pow(10000.0, -2.0 * p / (2.0 * pairs[axis]));
        cs[static_cast<size_t>(t) * half + j] = static_cast<float>(std::cos(angle));
        sn[static_cast<size_t>(t) * half + j] = static_cast<float>(std::sin(angle));
      }
    }
  }
  n.cos = Take(be.Alloc(DType::kF32, {s.tokens, half}), "alloc");
  n.sin = Take(be.Alloc(DType::kF32, {s.tokens, half}), "alloc");
  Require(be.Upload(Tensor::View(cs.data(), DType::kF32, {s.tokens, half}), n.cos), "upload");
  Require(be.Upload(Tensor::View(sn.data(), DType::kF32, {s.tokens, half}), n.sin), "upload");
  return n;
}

Tensor Row(const Tensor& m, int i, int64_t d) {
  return Tensor::View(static_cast<float*>(m.data) + i * d, DType::kF32, {d}, Device::kCuda);
}

Tensor Heads(const Tensor& t, const Shape& s) { return SplitHeads(t, s.heads); }

// One block, op for op as WanTransformer::RunBlock. `after(family)` runs after every op.
template <class After>
void Block(CudaBackend& be, Net& n, const Shape& s, After after) {
  const float eps = 1e-6f, scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  const int64_t d = s.dim;
  be.layer_norm_modulate(n.x, Row(n.mod, 0, d), Row(n.mod, 1, d), eps, n.a);
  after("norm+modulate");
  be.linear(n.a, n.qkv_w, &n.qkv_b, n.qkv);
  after("linear");
  be.rms_norm_rope(n.q, n.norm_q, eps, n.cos, n.sin, s.heads);
  be.rms_norm_rope(n.k, n.norm_k, eps, n.cos, n.sin, s.heads);
  after("rms_norm+rope");
  Tensor qh = Heads(n.q, s), kh = Heads(n.k, s), oh = Heads(n.o, s);
  be.attention(qh, kh, Heads(n.v, s), scale, oh);
  after("self-attention");
  const Tensor gate_attn = Row(n.mod, 2, d), gate_ffn = Row(n.mod, 5, d);
  be.linear_residual(n.o, n.o_w, &n.o_b, &gate_attn, n.x, n.f);
  after("linear+residual");
  be.layer_norm(n.x, &n.norm2_w, &n.norm2_b, eps, n.a);
  after("norm+modulate");
  be.linear(n.a, n.cq_w, &n.cq_b, n.q);
  be.linear(n.ctx, n.ck_w, &n.ck_b, n.ck);
  be.linear(n.ctx, n.cv_w, &n.cv_b, n.cv);
  after("linear");
  be.rms_norm(n.q, n.cnorm_q, eps);
  be.rms_norm(n.ck, n.cnorm_k, eps);
  after("rms_norm");
  be.attention(qh, Heads(n.ck, s), Heads(n.cv, s), scale, oh);
  after("cross-attention");
  be.linear_residual(n.o, n.co_w, &n.co_b, nullptr, n.x, n.f);
  after("linear+residual");
  be.layer_norm_modulate(n.x, Row(n.mod, 3, d), Row(n.mod, 4, d), eps, n.a);
  after("norm+modulate");
  be.linear_gelu_tanh(n.a, n.fc1_w, &n.fc1_b, n.hidden);  // GELU in the GEMM's epilogue, hidden in BF16
  after("linear+gelu");
  be.linear_residual(n.hidden, n.fc2_w, &n.fc2_b, &gate_ffn, n.x, n.f);
  after("linear+residual");
}

double Flops(const Shape& s) {
  const double n = s.tokens, d = s.dim, l = s.text;
  return s.layers * (2 * n * (6 * d * d + 2 * d * s.ffn) + 2 * l * 2 * d * d + 4 * n * n * d + 4 * n * l * d);
}

}  // namespace
}  // namespace ds

int main(int argc, char** argv) {
  using namespace ds;
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  CudaOptions options;
  options.arena_bytes = size_t{12} << 30;
  auto backend = CudaBackend::Create(options);
  if (!backend.ok()) {
    std::fprintf(stderr, "bench_cuda_dit: %s\n", backend.status().message().c_str());
    return 2;
  }
  CudaBackend& be = **backend;
  std::printf("device: %s\n", be.description().c_str());
  Shape s;
  if (quick) s.layers = 4;
  Net net = Build(be, s);
  Require(be.Synchronize(), "build");
  std::printf("arena: %.2f GiB used (weights of one block + activations + scratch)\n",
              be.arena_used() / double(1 << 30));

  auto nothing = [](const char*) {};
  auto forward = [&] {
    for (int layer = 0; layer < s.layers; ++layer) Block(be, net, s, nothing);
  };
  forward();  // warm-up: cuBLASLt plans, first-touch
  Require(be.Synchronize(), "warm-up forward");
  const int reps = quick ? 1 : 3;
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) forward();
  Require(be.Synchronize(), "timed forward");
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
  std::printf("RESULT dit_forward_wan13b tokens=%d layers=%d text=%d ms=%.1f tflops=%.1f\n", s.tokens, s.layers, s.text,
              ms, Flops(s) / ms / 1e9);

  // Breakdown: synchronize after every op of one forward, attribute the time to its family.
  std::map<std::string, double> parts;
  auto last = std::chrono::steady_clock::now();
  auto after = [&](const char* family) {
    Require(be.Synchronize(), family);
    const auto now = std::chrono::steady_clock::now();
    parts[family] += std::chrono::duration<double, std::milli>(now - last).count();
    last = now;
  };
  for (int layer = 0; layer < s.layers; ++layer) Block(be, net, s, after);
  for (const auto& [family, part_ms] : parts) {
    std::printf("RESULT dit_forward_part family=%s ms=%.1f share=%.1f%%\n", family.c_str(), part_ms,
                100.0 * part_ms / ms);
  }
  return 0;
}
