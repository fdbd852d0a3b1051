// bench_ops: how close the CPU backend's ops come to what this machine can do.
//   (a) register-only FMA peak, (b) raw OpenBLAS sgemm at the DiT's GEMM shapes, (c)
//   CpuBackend::linear at the same shapes as a fraction of (b), (d) CpuBackend::attention against
//   the best sgemm rate, (e) element-wise ops in GB/s against a plain parallel copy.
// Every number is the best of several repetitions. Usage: bench_ops [--threads N] [--quick]
// [--cpu-time]. --cpu-time (one thread only) times with the thread's CPU clock instead of the wall
// clock: on a shared, oversubscribed machine it leaves out the time other processes held the core.
#include <cblas.h>
#include <omp.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <random>
#include <string>

#include "core/tensor.h"
#include "kernels/cpu/cpu_backend.h"

namespace ds {
namespace {

bool g_cpu_time = false;

double Now() {
  timespec t;
  clock_gettime(g_cpu_time ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// Best time of fn over at least 3 runs, more for fast ops (up to ~0.3 s of runs in total).
double BestSeconds(const std::function<void()>& fn) {
  double best = 1e30, total = 0;
  for (int rep = 0; rep < 50 && (rep < 3 || total < 0.3); ++rep) {
    const double t0 = Now();
    fn();
    const double s = Now() - t0;
    best = std::min(best, s);
    total += s;
  }
  return best;
}

HostBuffer RandomBuffer(size_t n, std::mt19937& rng) {
  HostBuffer b(n);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (size_t i = 0; i < n; ++i) b.data()[i] = dist(rng);
  return b;
}

#if defined(__x86_64__)
// 12 independent FMA chains hide the 4-cycle FMA latency on two pipes; nothing touches memory.
__attribute__((target("avx2,fma"))) float FmaChains(int64_t iterations) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i) * 1e-3f);
  const __m256 mul = _mm256_set1_ps(0.999999f), add = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iterations; ++it) {
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], mul, add);
  }
  __m256 sum = acc[0];
  for (int i = 1; i < 12; ++i) sum = _mm256_add_ps(sum, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, sum);
  return out[0];
}

double FmaPeakGflops(int threads) {
  constexpr int64_t kIterations = 20'000'000;
  volatile float sink = 0;
  const double s = BestSeconds([&] {
#pragma omp parallel num_threads(threads)
    {
      const float r = FmaChains(kIterations);
      if (r == 12345.0f) sink = r;
    }
  });
  return threads * kIterations * 12.0 * 8 * 2 / s * 1e-9;
}
#else
double FmaPeakGflops(int) { return 0; }
#endif

// The same traffic as a two-tensor op: read n floats, write n floats.
double CopyGbps(int threads, size_t n) {
  HostBuffer a(n), b(n);
  std::fill_n(a.data(), n, 1.0f);
  const size_t chunk = (n + 63) / 64;
  const double s = BestSeconds([&] {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i += chunk) {
      std::memcpy(b.data() + i, a.data() + i, std::min(chunk, n - i) * sizeof(float));
    }
  });
  return 2.0 * static_cast<double>(n * sizeof(float)) / s * 1e-9;
}

struct GemmShape {
  const char* what;
  int64_t n, k;
};

// y = x·wᵀ shapes of the bundled demo model (d = 192) and of Wan2.1-1.3B (d = 1536, ffn 8960).
constexpr GemmShape kGemmShapes[] = {
    {"demo qkv", 576, 192},   {"demo ffn up", 768, 192},  {"demo ffn down", 192, 768},
    {"wan proj", 1536, 1536}, {"wan ffn up", 8960, 1536}, {"wan ffn down", 1536, 8960},
};

double GemmTable(CpuBackend& cpu, int threads, bool quick, std::mt19937& rng) {
  std::printf("\n(b, c) GEMM y[M, N] = x[M, K]·w[N, K]^T, GFLOP/s\n\n");
  std::printf("| shape         |    M |    N |    K | sgemm | linear+bias | linear/sgemm |\n");
  std::printf("|---------------|-----:|-----:|-----:|------:|------------:|-------------:|\n");
  double best_sgemm = 0;
  for (const int64_t m : {int64_t{144}, int64_t{512}, int64_t{4096}}) {
    for (const GemmShape& g : kGemmShapes) {
      if (quick && m * g.n * g.k > int64_t{4096} * 1536 * 1536) continue;
      const HostBuffer x = RandomBuffer(m * g.k, rng), w = RandomBuffer(g.n * g.k, rng);
      const HostBuffer bias = RandomBuffer(g.n, rng), y(m * g.n);
      const double flops = 2.0 * m * g.n * g.k;
      const double raw = flops / BestSeconds([&] {
                           openblas_set_num_threads(threads);
                           cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, g.n, g.k, 1.0f,
                                       x.data(), g.k, w.data(), g.k, 0.0f, y.data(), g.n);
                         }) *
                         1e-9;
      const Tensor b = bias.view({g.n});
      Tensor yt = y.view({m, g.n});
      const double lin = flops / BestSeconds([&] {
                           cpu.linear(x.view({m, g.k}), w.view({g.n, g.k}), &b, yt);
                         }) *
                         1e-9;
      best_sgemm = std::max(best_sgemm, raw);
      std::printf("| %-13s | %4ld | %4ld | %4ld | %5.1f | %11.1f | %11.0f%% |\n", g.what, m, g.n,
                  g.k, raw, lin, 100 * lin / raw);
    }
  }
  return best_sgemm;
}

void AttentionTable(CpuBackend& cpu, double best_sgemm, bool quick, std::mt19937& rng) {
  std::printf(
      "\n(d) attention, non-causal, 4·N²·dh·H flops; vs the best sgemm rate above (%.1f)\n\n",
      best_sgemm);
  std::printf("|    N |  H |  dh | GFLOP/s | ms      | vs sgemm |\n");
  std::printf("|-----:|---:|----:|--------:|--------:|---------:|\n");
  struct Shape {
    int64_t n, heads, dh;
  };
  for (const Shape s : {Shape{144, 6, 32}, Shape{1024, 6, 32}, Shape{4096, 12, 64}}) {
    if (quick && s.n > 1024) continue;
    const int64_t hd = s.heads * s.dh;
    const HostBuffer qkv = RandomBuffer(s.n * 3 * hd, rng), out(s.n * hd);
    // q/k/v as slices of the fused projection output, the layout the DiT produces.
    Tensor q = Tensor::View(qkv.data(), DType::kF32, {s.n, s.heads, s.dh}), k = q, v = q;
    for (Tensor* t : {&q, &k, &v}) t->strides[0] = 3 * hd * static_cast<int64_t>(sizeof(float));
    k.data = qkv.data() + hd;
    v.data = qkv.data() + 2 * hd;
    Tensor o = out.view({s.n, s.heads, s.dh});
    const double sec = BestSeconds([&] { cpu.attention(q, k, v, 0.125f, o); });
    const double gflops = 4.0 * s.n * s.n * s.dh * s.heads / sec * 1e-9;
    std::printf("| %4ld | %2ld | %3ld | %7.1f | %7.2f | %7.0f%% |\n", s.n, s.heads, s.dh, gflops,
                sec * 1e3, 100 * gflops / best_sgemm);
  }
}

void ElementwiseTable(CpuBackend& cpu, int threads, std::mt19937& rng) {
  const int64_t m = 4096, d = 1536;  // 24 MiB per tensor
  const HostBuffer xb = RandomBuffer(m * d, rng), fb = RandomBuffer(m * d, rng), yb(m * d);
  const HostBuffer vb = RandomBuffer(d, rng), wb = RandomBuffer(d, rng);
  const HostBuffer cb = RandomBuffer(m * 32, rng), sb = RandomBuffer(m * 32, rng);
  Tensor x = xb.view({m, d}), f = fb.view({m, d}), y = yb.view({m, d});
  const Tensor vec = vb.view({d}), w = wb.view({d});
  Tensor heads = xb.view({m, 24, 64});
  const double mb = static_cast<double>(m * d * sizeof(float));
  struct Op {
    const char* name;
    double bytes;  // compulsory traffic: each tensor read or written once
    std::function<void()> run;
  };
  const Op ops[] = {
      {"layer_norm_modulate", 2 * mb, [&] { cpu.layer_norm_modulate(x, vec, w, 1e-6f, y); }},
      {"rms_norm (per head)", 2 * mb, [&] { cpu.rms_norm(heads, wb.view({64}), 1e-6f); }},
      {"gate_residual", 3 * mb, [&] { cpu.gate_residual(y, vec, f); }},
      {"add", 3 * mb, [&] { cpu.add(y, f); }},
      {"gelu_tanh", 2 * mb, [&] { cpu.gelu_tanh(y); }},
      {"silu", 2 * mb, [&] { cpu.silu(y); }},
      {"rope (24 heads x 64)", 2 * mb,
       [&] {
         cpu.rope(heads, cb.view({m, 32}), sb.view({m, 32}));
       }},
  };
  std::printf(
      "\n(e) element-wise ops on [%ld, %ld] (%.0f MiB per tensor), GB/s; memcpy of one tensor: "
      "%.1f GB/s\n\n",
      m, d, mb / (1 << 20), CopyGbps(threads, static_cast<size_t>(m * d)));
  std::printf("| op                   |  GB/s |   ms  |\n");
  std::printf("|----------------------|------:|------:|\n");
  for (const Op& op : ops) {
    std::fill_n(yb.data(), m * d, 0.5f);  // keep repeated in-place activations finite
    const double sec = BestSeconds(op.run);
    std::printf("| %-20s | %5.1f | %5.2f |\n", op.name, op.bytes / sec * 1e-9, sec * 1e3);
  }
}

void ConvTable(CpuBackend& cpu, double best_sgemm, std::mt19937& rng) {
  std::printf("\n(f) decoder ops on 64x64 feature maps\n\n");
  std::printf("| op                  |           rate |   ms  | vs sgemm |\n");
  std::printf("|---------------------|---------------:|------:|---------:|\n");
  for (const int64_t c : {int64_t{64}, int64_t{128}}) {
    const int64_t h = 64, w = 64;
    const HostBuffer x = RandomBuffer(c * h * w, rng), wt = RandomBuffer(c * c * 9, rng);
    const HostBuffer bias = RandomBuffer(c, rng), y(c * h * w), up(c * 4 * h * w);
    Tensor yt = y.view({c, h, w}), upt = up.view({c, 2 * h, 2 * w});
    const double sec = BestSeconds([&] {
      cpu.conv3x3(x.view({c, h, w}), wt.view({c, c, 3, 3}), bias.view({c}), yt);
    });
    const double gflops = 2.0 * c * c * 9 * h * w / sec * 1e-9;
    std::printf("| conv3x3, %3ld -> %3ld | %6.1f GFLOP/s | %5.2f | %7.0f%% |\n", c, c, gflops,
                sec * 1e3, 100 * gflops / best_sgemm);
    const double up_sec = BestSeconds([&] { cpu.upsample_nearest2x(yt, upt); });
    std::printf("| upsample2x, %3ld ch  | %9.1f GB/s | %5.2f |          |\n", c,
                5.0 * c * h * w * sizeof(float) / up_sec * 1e-9, up_sec * 1e3);
  }
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

}  // namespace
}  // namespace ds

int main(int argc, char** argv) {
  int threads = 0;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--cpu-time") == 0) {
      ds::g_cpu_time = true;
    } else {
      std::fprintf(stderr, "usage: %s [--threads N] [--quick] [--cpu-time]\n", argv[0]);
      return 2;
    }
  }
  if (ds::g_cpu_time && threads != 1) {
    std::fprintf(stderr, "--cpu-time needs --threads 1 (other threads' time is not counted)\n");
    return 2;
  }
  ds::CpuBackend cpu(threads);
  threads = cpu.threads();
  std::mt19937 rng(1234);
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::localtime(&now));
  std::printf("bench_ops: %s, %d threads, %s, best of >= 3 runs, %s time\n", ds::CpuModel().c_str(),
              threads, date, ds::g_cpu_time ? "thread CPU" : "wall");
  std::printf("\n(a) FMA peak (12 AVX2 FMA chains, registers only): %.1f GFLOP/s\n",
              ds::FmaPeakGflops(threads));
  const double best_sgemm = ds::GemmTable(cpu, threads, quick, rng);
  ds::AttentionTable(cpu, best_sgemm, quick, rng);
  ds::ElementwiseTable(cpu, threads, rng);
  ds::ConvTable(cpu, best_sgemm, rng);
  return 0;
}
