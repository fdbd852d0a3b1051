// GPU benchmarks of the CUDA backend at Wan2.1-1.3B shapes (480×832×81 frames → 32 760 tokens,
// dim 1536, 12 heads × 128, FFN 8960). Run by hand or by bench/gpu_check.sh; prints one
// "RESULT <name> <shape> ms=<…> tflops=<…>" line per measurement (parsed into gpu_check's table)
// and "CHECK" lines that spot-check the timed attention output against float64.
//
//   attention_flash_bf16   the flash kernel alone, bf16 q/k/v in device memory (what SDPA is fed),
//                          in the configuration the backend runs (default, or DS_FLASH_CONFIG)
//   attention_flash_bf16_<config>  the same for every configuration built (flash::Candidates),
//                          with its registers, shared memory and resident blocks per SM; also
//                          at the cross-attention's shape (N=32760x512: 512 keys)
//   attention_backend_f32  Backend::attention on f32 tensors: f32→bf16 conversion + flash kernel
//   gemm_bf16_cublaslt     cuBLASLt bf16×bf16→bf16, f32 accumulate (the bf16 plan's GEMM), its
//                          heuristic's first algorithm: "cuBLAS" of the "≥ 90 % of cuBLAS" target
//   gemm_bf16_f32out_cublaslt  the same writing f32 (the baseline of the families with an f32 y)
//   linear_backend_tf32    Backend::linear on f32 tensors (TF32 tensor cores: f32 checkpoints)
//   linear_backend_bf16w   Backend::linear, f32 x and y, BF16 w as stored (bf16 checkpoints)
//   linear_backend_bf16xy, linear_backend_bf16x_f32y   the same with BF16 x (as the Wan block on a
//                          GPU feeds it) and a BF16 or f32 y
//   linear_gelu_bf16xy     Backend::linear_gelu_tanh, BF16 x and y (the FFN's first GEMM)
//   linear_residual_fused, linear_residual_unfused   x += gate·(a·wᵀ + b) at the Wan block's o and
//                          FFN-down shapes (BF16 a and w, f32 x): Backend::linear_residual (the
//                          GEMM accumulates into x), and linear into f32 scratch then gate_residual
//   <name>_heuristic       the BF16-x families again with cuBLASLt's first algorithm instead of
//                          the fastest of its candidates (the rows without the suffix: every plan
//                          timed, Autotune::kAll; a model times its recorded forward's)
//
//   bench_cuda [--quick | --list-configs]
//
// Attention FLOPs follow FlashAttention: 4·B·H·N²·d; GEMM FLOPs 2·M·N·K. Times are means over
// back-to-back launches after warm-up (cudaEvents on the default stream for the raw kernels,
// host time around Synchronize() for Backend ops).
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/attention/flash_attention.cuh"
#include "kernels/cuda/attention/flash_layout.h"
#include "kernels/cuda/cuda_backend.h"

namespace ds {
namespace {

#define BENCH_CHECK(expr)                                                                  \
  do {                                                                                     \
    if (!(expr)) {                                                                         \
      std::fprintf(stderr, "bench_cuda: %s failed at %s:%d\n", #expr, __FILE__, __LINE__); \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)

void Require(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "bench_cuda: %s: %s\n", what, s.message().c_str());
    std::exit(1);
  }
}

std::vector<uint16_t> RandomBf16(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = cuda::flash::Bf16Bits(dist(rng));
  return v;
}

// Random normal values into a device tensor of F32 or BF16 (never time on zeros: they run faster):
// one block of 2^20 values, repeated (drawing hundreds of millions on the host would take longer
// than the benchmark).
void FillRandom(const Tensor& t, std::mt19937& rng) {
  constexpr size_t kBlock = size_t{1} << 20;
  const size_t n = static_cast<size_t>(t.numel()), esize = DTypeSize(t.dtype);
  BENCH_CHECK(t.dtype == DType::kBF16 || t.dtype == DType::kF32);
  std::vector<unsigned char> block(kBlock * esize);
  if (t.dtype == DType::kBF16) {
    const std::vector<uint16_t> h = RandomBf16(rng, kBlock);
    std::memcpy(block.data(), h.data(), block.size());
  } else {
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (size_t i = 0; i < kBlock; ++i) {
      const float x = dist(rng);
      std::memcpy(block.data() + i * 4, &x, 4);
    }
  }
  for (size_t at = 0; at < n; at += kBlock) {
    const size_t count = std::min(kBlock, n - at);
    BENCH_CHECK(cudaMemcpy(static_cast<unsigned char*>(t.data) + at * esize, block.data(), count * esize,
                           cudaMemcpyHostToDevice) == cudaSuccess);
  }
}

template <class Fn>
double EventMs(Fn launch, int iters) {
  for (int i = 0; i < 3; ++i) launch();
  BENCH_CHECK(cudaDeviceSynchronize() == cudaSuccess);
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaEventRecord(start);
  for (int i = 0; i < iters; ++i) launch();
  cudaEventRecord(stop);
  BENCH_CHECK(cudaEventSynchronize(stop) == cudaSuccess);
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / iters;
}

template <class Fn>
double HostMs(CudaBackend& be, Fn op, int iters) {
  for (int i = 0; i < 2; ++i) op();
  Require(be.Synchronize(), "warm-up");
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) op();
  Require(be.Synchronize(), "timed ops");
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / iters;
}

// Worst |got − want| / (|want| + rms) over query rows 0, n/2, n−1 of the first and last head (nk
// keys), against float64 softmax on the same bf16 inputs.
double SampledError(const std::vector<uint16_t>& q, const std::vector<uint16_t>& k, const std::vector<uint16_t>& v,
                    const std::vector<float>& out, int heads, int n, int nk, int d, double scale) {
  double worst = 0;
  for (int h : {0, heads - 1}) {
    for (int i : {0, n / 2, n - 1}) {
      std::vector<double> s(static_cast<size_t>(nk)), acc(static_cast<size_t>(d), 0.0);
      auto at = [&](const std::vector<uint16_t>& t, int row, int e) {
        return double{cuda::flash::Bf16ToFloat(t[(static_cast<size_t>(row) * heads + h) * d + e])};
      };
      double max = -1e300, sum = 0;
      for (int j = 0; j < nk; ++j) {
        double dot = 0;
        for (int e = 0; e < d; ++e) dot += at(q, i, e) * at(k, j, e);
        s[j] = dot * scale;
        max = std::max(max, s[j]);
      }
      for (int j = 0; j < nk; ++j) {
        const double w = std::exp(s[j] - max);
        sum += w;
        for (int e = 0; e < d; ++e) acc[e] += w * at(v, j, e);
      }
      double ss = 0;
      for (double a : acc) ss += (a / sum) * (a / sum);
      const double rms = std::sqrt(ss / d);
      for (int e = 0; e < d; ++e) {
        const double want = acc[e] / sum, got = out[(static_cast<size_t>(i) * heads + h) * d + e];
        worst = std::isnan(got) ? INFINITY : std::max(worst, std::abs(got - want) / (std::abs(want) + rms));
      }
    }
  }
  return worst;
}

// Flash kernel on bf16 [N, H, d] q and [NK, H, d] k/v (NK = N: self-attention; the Wan block's
// cross-attention has NK = 512 text rows): the backend's configuration as attention_flash_bf16,
// then (with `candidates`) every configuration of head dim d; each timed, then spot-checked in
// float64. A cross shape prints as N=<N>x<NK>.
void BenchAttention(CudaBackend& be, int heads, int n, int d, int iters, bool candidates, int nk = 0) {
  nk = nk > 0 ? nk : n;
  std::mt19937 rng(1234);
  const size_t count = static_cast<size_t>(n) * heads * d, kv_count = static_cast<size_t>(nk) * heads * d;
  const std::vector<uint16_t> q = RandomBf16(rng, count), k = RandomBf16(rng, kv_count), v = RandomBf16(rng, kv_count);
  auto dq = be.Alloc(DType::kBF16, {n, heads, d}), dk = be.Alloc(DType::kBF16, {nk, heads, d});
  auto dv = be.Alloc(DType::kBF16, {nk, heads, d}), dout = be.Alloc(DType::kF32, {n, heads, d});
  BENCH_CHECK(dq.ok() && dk.ok() && dv.ok() && dout.ok());
  BENCH_CHECK(cudaMemcpy(dq->data, q.data(), count * 2, cudaMemcpyHostToDevice) == cudaSuccess);
  BENCH_CHECK(cudaMemcpy(dk->data, k.data(), kv_count * 2, cudaMemcpyHostToDevice) == cudaSuccess);
  BENCH_CHECK(cudaMemcpy(dv->data, v.data(), kv_count * 2, cudaMemcpyHostToDevice) == cudaSuccess);
  const std::string shape = nk == n ? std::to_string(n) : std::to_string(n) + "x" + std::to_string(nk);

  cuda::flash::Params p;
  p.q = dq->data;
  p.k = dk->data;
  p.v = dv->data;
  p.o = dout->data;
  p.q_row = p.k_row = p.v_row = p.o_row = static_cast<int64_t>(heads) * d;
  p.q_head = p.k_head = p.v_head = p.o_head = d;
  p.nq = n;
  p.nk = nk;
  p.heads = heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  p.scale_log2 = static_cast<float>(scale) * cuda::flash::kLog2e;
  const double flops = 4.0 * heads * double(n) * nk * d;

  auto choice = cuda::flash::Choice::FromOption("");
  Require(choice.status(), "DS_FLASH_CONFIG");
  const std::vector<cuda::flash::ConfigInfo> configs = cuda::flash::Configs(d);
  // One timing per entry: the backend's configuration under the plain name, then each candidate.
  std::vector<std::pair<std::string, int>> runs = {{"attention_flash_bf16", choice->index(d)}};
  for (size_t c = 0; candidates && c < configs.size(); ++c) {
    runs.push_back({"attention_flash_bf16_" + configs[c].name, static_cast<int>(c)});
  }
  std::vector<float> out(count);
  for (const auto& run : runs) {
    const std::string& name = run.first;
    const int config = run.second;
    const cuda::flash::ConfigInfo& info = configs[static_cast<size_t>(config)];
    if (const Status runnable = cuda::flash::Runnable(d, config); !runnable.ok()) {
      std::printf("SKIP %s config=%s: %s\n", name.c_str(), info.name.c_str(), runnable.message().c_str());
      continue;
    }
    // The wgmma configurations' Vᵀ scratch (ScratchBytes; 0 for the others).
    p.v_t = nullptr;
    if (const size_t vt_bytes = cuda::flash::ScratchBytes(d, config, heads, nk); vt_bytes > 0) {
      auto vt = be.Alloc(DType::kBF16, {static_cast<int64_t>(vt_bytes / 2)});  // arena: freed by ResetArena
      Require(vt.status(), "Vt scratch");
      p.v_t = vt->data;
    }
    auto res = cuda::flash::Resources(d, config);
    Require(res.status(), "flash attention resources");
    BENCH_CHECK(cudaMemset(p.o, 0xff, count * 4) == cudaSuccess);  // NaN: unwritten outputs show
    const double ms = EventMs([&] { Require(cuda::flash::Forward(p, d, nullptr, config), "flash attention"); }, iters);
    std::printf(
        "RESULT %s B=1 H=%d N=%s d=%d ms=%.3f tflops=%.1f config=%s warps=%d rows_per_warp=%d block_m=%d block_n=%d "
        "stages=%d q=%s smem_kb=%d regs=%d local_bytes=%d blocks_per_sm=%d\n",
        name.c_str(), heads, shape.c_str(), d, ms, flops / ms / 1e9, info.name.c_str(), info.warps, 16 * info.m_tiles,
        info.block_m, info.block_n, info.stages, info.q_in_regs ? "regs" : "smem", info.smem_bytes / 1024,
        res->registers, res->local_bytes, res->blocks_per_sm);
    BENCH_CHECK(cudaMemcpy(out.data(), p.o, count * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    std::printf("CHECK %s H=%d N=%s d=%d sampled rows worst error %.2e (|err| / (|want| + rms))\n", name.c_str(), heads,
                shape.c_str(), d, SampledError(q, k, v, out, heads, n, nk, d, scale));
    std::fflush(stdout);
  }
  be.ResetArena();
}

// Backend::attention on f32 [N, H, d] tensors (fused-qkv layout, as the engine passes them).
void BenchBackendAttention(CudaBackend& be, int heads, int n, int d, int iters) {
  auto qkv = be.Alloc(DType::kF32, {n, 3, heads, d}), o = be.Alloc(DType::kF32, {n, heads, d});
  BENCH_CHECK(qkv.ok() && o.ok());
  std::mt19937 rng(99);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> host(static_cast<size_t>(qkv->numel()));
  for (float& x : host) x = dist(rng);
  BENCH_CHECK(cudaMemcpy(qkv->data, host.data(), host.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
  const int64_t row = 3LL * heads * d * 4;
  auto view = [&](int which) {
    Tensor t =
        Tensor::View(static_cast<char*>(qkv->data) + which * heads * d * 4, DType::kF32, {n, heads, d}, Device::kCuda);
    t.strides[0] = row;
    return t;
  };
  const Tensor q = view(0), k = view(1), v = view(2);
  Tensor out = *o;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const double ms = HostMs(
      be, [&] { be.attention(q, k, v, scale, out); }, iters);
  std::printf("RESULT attention_backend_f32 B=1 H=%d N=%d d=%d ms=%.3f tflops=%.1f\n", heads, n, d, ms,
              4.0 * heads * double(n) * n * d / ms / 1e9);
  be.ResetArena();
}

// cuBLASLt bf16 GEMM, row-major y[M, N] = x[M, K]·w[N, K]ᵀ (column-major yᵀ = w·xᵀ), y BF16 or
// (f32_out) F32: the baselines of the linear families that write each.
void BenchGemmBf16(CudaBackend& be, int m, int n, int k, int iters, bool f32_out = false) {
  const DType y_dtype = f32_out ? DType::kF32 : DType::kBF16;
  const cudaDataType_t d_type = f32_out ? CUDA_R_32F : CUDA_R_16BF;
  auto x = be.Alloc(DType::kBF16, {m, k}), w = be.Alloc(DType::kBF16, {n, k}), y = be.Alloc(y_dtype, {m, n});
  auto workspace = be.Alloc(DType::kF32, {8 << 20});
  BENCH_CHECK(x.ok() && w.ok() && y.ok() && workspace.ok());
  std::mt19937 rng(7);
  const std::vector<uint16_t> hx = RandomBf16(rng, static_cast<size_t>(m) * k);
  const std::vector<uint16_t> hw = RandomBf16(rng, static_cast<size_t>(n) * k);
  BENCH_CHECK(cudaMemcpy(x->data, hx.data(), hx.size() * 2, cudaMemcpyHostToDevice) == cudaSuccess);
  BENCH_CHECK(cudaMemcpy(w->data, hw.data(), hw.size() * 2, cudaMemcpyHostToDevice) == cudaSuccess);

  cublasLtHandle_t lt;
  BENCH_CHECK(cublasLtCreate(&lt) == CUBLAS_STATUS_SUCCESS);
  cublasLtMatmulDesc_t op;
  BENCH_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta));
  cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb));
  cublasLtMatrixLayout_t la, lb, ld;
  cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, k, n, k);
  cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, k, m, k);
  cublasLtMatrixLayoutCreate(&ld, d_type, n, m, n);
  cublasLtMatmulPreference_t pref;
  cublasLtMatmulPreferenceCreate(&pref);
  const uint64_t ws_bytes = workspace->nbytes();
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof(ws_bytes));
  cublasLtMatmulHeuristicResult_t heuristic = {};
  int found = 0;
  BENCH_CHECK(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, ld, ld, pref, 1, &heuristic, &found) ==
                  CUBLAS_STATUS_SUCCESS &&
              found == 1);
  const float alpha = 1.0f, beta = 0.0f;
  const double ms = EventMs(
      [&] {
        BENCH_CHECK(cublasLtMatmul(lt, op, &alpha, w->data, la, x->data, lb, &beta, y->data, ld, y->data, ld,
                                   &heuristic.algo, workspace->data, ws_bytes, nullptr) == CUBLAS_STATUS_SUCCESS);
      },
      iters);
  std::printf("RESULT %s M=%d N=%d K=%d ms=%.3f tflops=%.1f\n",
              f32_out ? "gemm_bf16_f32out_cublaslt" : "gemm_bf16_cublaslt", m, n, k, ms,
              2.0 * m * double(n) * k / ms / 1e9);
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(ld);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatmulDescDestroy(op);
  cublasLtDestroy(lt);
  be.ResetArena();
}

// Backend::linear: w float32 (TF32 tensor cores) or BF16 as stored; x and y f32 (linear rounds x
// to bf16 for a BF16 w) or, as the Wan block feeds it on a GPU, BF16 x with a BF16 y (q/k/v,
// cross-q) or an f32 y (the o and FFN-down projections, into the f32 residual stream); with `gelu`,
// Backend::linear_gelu_tanh (the FFN's first GEMM, GELU in cuBLASLt's epilogue). `suffix` names
// the GEMM plans' algorithm choice ("" tuned, "_heuristic" cuBLASLt's first).
void BenchLinear(CudaBackend& be, DType w_dtype, DType x_dtype, DType y_dtype, int m, int n, int k, int iters,
                 bool gelu = false, const char* suffix = "") {
  auto x = be.Alloc(x_dtype, {m, k}), w = be.Alloc(w_dtype, {n, k}), b = be.Alloc(DType::kF32, {n});
  auto y = be.Alloc(y_dtype, {m, n});
  BENCH_CHECK(x.ok() && w.ok() && b.ok() && y.ok());
  std::mt19937 rng(11);
  for (const Tensor* t : {&*x, &*w, &*b}) FillRandom(*t, rng);
  Tensor out = *y;
  const double ms = HostMs(
      be,
      [&] {
        if (gelu) {
          be.linear_gelu_tanh(*x, *w, &*b, out);
        } else {
          be.linear(*x, *w, &*b, out);
        }
      },
      iters);
  const char* name = gelu                      ? "linear_gelu_bf16xy"
                     : w_dtype != DType::kBF16 ? "linear_backend_tf32"
                     : x_dtype != DType::kBF16 ? "linear_backend_bf16w"
                     : y_dtype == DType::kBF16 ? "linear_backend_bf16xy"
                                               : "linear_backend_bf16x_f32y";
  std::printf("RESULT %s%s M=%d N=%d K=%d ms=%.3f tflops=%.1f\n", name, suffix, m, n, k, ms,
              2.0 * m * double(n) * k / ms / 1e9);
  be.ResetArena();
}

// The Wan block's gated residual after its o and FFN-down projections: x[M, N] += gate ⊙ (a·wᵀ + b)
// with BF16 a and w and the f32 residual x, as one op (cuBLASLt accumulating into x) and as the two
// it replaces; the same random inputs, one run.
void BenchLinearResidual(CudaBackend& be, int m, int n, int k, int iters, const char* suffix = "") {
  auto a = be.Alloc(DType::kBF16, {m, k}), w = be.Alloc(DType::kBF16, {n, k}), b = be.Alloc(DType::kF32, {n});
  auto gate = be.Alloc(DType::kF32, {n}), x = be.Alloc(DType::kF32, {m, n}), f = be.Alloc(DType::kF32, {m, n});
  BENCH_CHECK(a.ok() && w.ok() && b.ok() && gate.ok() && x.ok() && f.ok());
  std::mt19937 rng(12);
  for (const Tensor* t : {&*a, &*w, &*b, &*gate, &*x}) FillRandom(*t, rng);
  Tensor residual = *x, scratch = *f;
  const double fused = HostMs(
      be, [&] { be.linear_residual(*a, *w, &*b, &*gate, residual, scratch); }, iters);
  const double unfused = HostMs(
      be,
      [&] {
        be.linear(*a, *w, &*b, scratch);
        be.gate_residual(residual, *gate, scratch);
      },
      iters);
  const double flops = 2.0 * m * double(n) * k;
  std::printf("RESULT linear_residual_fused%s M=%d N=%d K=%d ms=%.3f tflops=%.1f\n", suffix, m, n, k, fused,
              flops / fused / 1e9);
  std::printf("RESULT linear_residual_unfused%s M=%d N=%d K=%d ms=%.3f tflops=%.1f\n", suffix, m, n, k, unfused,
              flops / unfused / 1e9);
  be.ResetArena();
}

}  // namespace
}  // namespace ds

int main(int argc, char** argv) {
  using namespace ds;
  if (argc > 1 && std::strcmp(argv[1], "--list-configs") == 0) {
    // The flash configurations built, one "config <name> hd=<d> wgmma=<0|1> tma=<0|1>" line each
    // (no GPU needed): gpu_check smoke-tests the TMA-fed ones one by one.
    for (int d : {32, 64, 128}) {
      for (const cuda::flash::ConfigInfo& info : cuda::flash::Configs(d)) {
        std::printf("config %s hd=%d wgmma=%d tma=%d\n", info.name.c_str(), d, info.wgmma ? 1 : 0, info.tma ? 1 : 0);
      }
    }
    return 0;
  }
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  CudaOptions options;
  options.arena_bytes = size_t{8} << 30;
  auto backend = CudaBackend::Create(options);
  if (!backend.ok()) {
    std::fprintf(stderr, "bench_cuda: %s\n", backend.status().message().c_str());
    return 2;
  }
  CudaBackend& be = **backend;
  std::printf("device: %s\n", be.description().c_str());
  const int iters = quick ? 3 : 10;

  // Wan2.1-1.3B self-attention at 480×832×81 frames, and the FLUX/HunyuanVideo-like shape of
  // pytorch/pytorch#142132 (the SDPA anchor in perf_anchors.md).
  BenchAttention(be, 12, 32760, 128, iters, true);
  BenchAttention(be, 24, 4608, 128, iters, true);
  BenchAttention(be, 24, 4608, 64, iters, true);
  // The Wan block's cross-attention: 32 760 video queries over 512 text rows (a few key tiles per
  // query tile: the blocks' prologue and epilogue weigh, unlike above).
  BenchAttention(be, 12, 32760, 128, iters, true, 512);
  BenchBackendAttention(be, 12, 32760, 128, iters);

  const int tokens = 32760, dim = 1536, ffn = 8960;
  const int shapes[][3] = {{tokens, 3 * dim, dim}, {tokens, dim, dim}, {tokens, ffn, dim}, {tokens, dim, ffn}};
  for (const auto& s : shapes) BenchGemmBf16(be, s[0], s[1], s[2], iters * 2);
  for (const auto& s : shapes) BenchGemmBf16(be, s[0], s[1], s[2], iters * 2, true);
  for (const auto& s : shapes) BenchLinear(be, DType::kF32, DType::kF32, DType::kF32, s[0], s[1], s[2], iters);
  for (const auto& s : shapes) BenchLinear(be, DType::kBF16, DType::kF32, DType::kF32, s[0], s[1], s[2], iters);
  // The Wan block's GEMMs as it issues them on a GPU, with the plans' algorithms timed (the
  // default) and as cuBLASLt's heuristic ranks them first, in one run: the tuning's gain.
  for (const bool tuned : {true, false}) {
    Require(be.set_gemm_autotune(tuned ? cuda::Autotune::kAll : cuda::Autotune::kOff), "set_gemm_autotune");
    const char* suffix = tuned ? "" : "_heuristic";
    for (const auto& s : shapes) {
      BenchLinear(be, DType::kBF16, DType::kBF16, DType::kBF16, s[0], s[1], s[2], iters, false, suffix);
    }
    for (const auto& s : shapes) {
      BenchLinear(be, DType::kBF16, DType::kBF16, DType::kF32, s[0], s[1], s[2], iters, false, suffix);
    }
    BenchLinear(be, DType::kBF16, DType::kBF16, DType::kBF16, tokens, ffn, dim, iters, true, suffix);
    BenchLinearResidual(be, tokens, dim, dim, iters, suffix);
    BenchLinearResidual(be, tokens, dim, ffn, iters, suffix);
  }
  return 0;
}
