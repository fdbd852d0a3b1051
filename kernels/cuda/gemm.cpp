#include "kernels/cuda/gemm.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "core/log.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/gemm_tuning.h"
#include "kernels/cuda/launch_timer.h"
#include "kernels/cuda/row_layout.h"

namespace ds::cuda {

GemmPlans::Plan::~Plan() {
  if (d) cublasLtMatrixLayoutDestroy(d);
  if (b) cublasLtMatrixLayoutDestroy(b);
  if (a) cublasLtMatrixLayoutDestroy(a);
  if (op) cublasLtMatmulDescDestroy(op);
}

GemmPlans::~GemmPlans() = default;
void GemmPlans::Clear() { plans.clear(); }
size_t GemmPlans::Count(Choice choice) const {
  return static_cast<size_t>(
      std::count_if(plans.begin(), plans.end(), [&](const auto& p) { return p.second->choice == choice; }));
}

namespace {

// The largest power of two (≤ 256) dividing the address and the column stride: the alignment
// every column of the operand has. cuBLASLt assumes 256 unless told, and would pick kernels
// that fault on the odd-offset slices the engine passes.
uint32_t Alignment(const void* p, int64_t ld, size_t element) {
  const uintptr_t v = reinterpret_cast<uintptr_t>(p) | static_cast<uintptr_t>(ld * element) | 256u;
  return static_cast<uint32_t>(v & (~v + 1));
}

// Why the heuristic's candidate `r` cannot serve g (kUnsupported), or Ok.
Status Usable(const GemmArgs& g, const cublasLtMatmulHeuristicResult_t& r) {
  if (r.state != CUBLAS_STATUS_SUCCESS) {
    return Error(Code::kUnsupported, "cuBLASLt's algorithm for m {} n {} k {} is not usable (status {})", g.m, g.n, g.k,
                 static_cast<int>(r.state));
  }
  if (g.alpha_vector) {
    // cuBLASLt documents the per-row alpha vector for few kernels: an algorithm that does not list
    // the pointer mode would fail at launch, or worse, read the vector as a scalar.
    uint32_t modes = 0;
    size_t written = 0;
    const cublasStatus_t cap = cublasLtMatmulAlgoCapGetAttribute(&r.algo, CUBLASLT_ALGO_CAP_POINTER_MODE_MASK, &modes,
                                                                 sizeof(modes), &written);
    if (cap != CUBLAS_STATUS_SUCCESS || (modes & CUBLASLT_POINTER_MODE_MASK_ALPHA_DEVICE_VECTOR_BETA_HOST) == 0) {
      return Error(Code::kUnsupported,
                   "cuBLASLt's {} algorithm for m {} n {} k {} takes no per-row alpha vector (pointer modes {:#x})",
                   g.ab_type == CUDA_R_32F ? "f32" : "bf16", g.m, g.n, g.k, modes);
    }
  }
  return Status::Ok();
}

// Mean milliseconds of GemmTuning::kRuns launches of `algo` after one warm-up, with D (and C) in
// `d_scratch`; -1 when a launch or an event failed.
double TimeAlgorithm(const Context& ctx, const GemmArgs& g, const GemmPlans::Plan& plan,
                     const cublasLtMatmulAlgo_t& algo, void* d_scratch, LaunchTimer& timer) {
  const float one = 1.0f;
  const void* alpha = g.alpha_vector ? static_cast<const void*>(g.alpha_vector) : &one;
  return timer.MeanMs(ctx.stream, GemmTuning::kRuns, [&] {
    if (cublasLtMatmul(ctx.lt, plan.op, alpha, g.a, plan.a, g.b, plan.b, &g.beta, d_scratch, plan.d, d_scratch, plan.d,
                       &algo, ctx.lt_workspace, ctx.lt_workspace_bytes, ctx.stream) == CUBLAS_STATUS_SUCCESS) {
      return true;
    }
    cudaGetLastError();  // a refused candidate's launch error is not the next kernel's
    return false;
  });
}

// The fastest of the usable candidates on this card (gemm_tuning.h), timed into arena scratch so
// that g's own output (which an accumulating plan adds to) is untouched. Not during a CUDA graph
// capture (nothing runs then; a captured graph's plans were made by its first, eager run) and not
// when the arena has no room for a scratch D, nor when no candidate ran: then nothing (the caller
// keeps the heuristic's first).
std::optional<cublasLtMatmulAlgo_t> Fastest(const Context& ctx, const GemmArgs& g, const GemmPlans::Plan& plan,
                                            const std::vector<cublasLtMatmulAlgo_t>& usable) {
  if (!TimingPossible(ctx.stream)) return std::nullopt;
  Scratch scratch(ctx);
  const size_t d_size = g.d_type == CUDA_R_32F ? 4 : 2;
  const size_t d_elements = static_cast<size_t>((g.n - 1) * g.ldd + g.m);
  const Result<void*> d = scratch.Allocate(d_elements * d_size, "GEMM tuning output");
  LaunchTimer timer;
  if (!d.ok() || !timer.ok()) {
    Log(LogLevel::kDebug, "cuBLASLt m {} n {} k {}: not timed ({})", g.m, g.n, g.k,
        d.ok() ? "no CUDA events" : d.status().message());
    return std::nullopt;
  }
  if (g.bias) {
    if (cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)) !=
        CUBLAS_STATUS_SUCCESS) {
      return std::nullopt;
    }
  }
  std::vector<double> ms;
  for (const cublasLtMatmulAlgo_t& candidate : usable) {
    ms.push_back(TimeAlgorithm(ctx, g, plan, candidate, *d, timer));
    // A GEMM of microseconds: the launch is most of what the events see, and the choice would
    // follow noise; the heuristic's first is kept.
    if (ms.size() == 1 && ms[0] > 0.0 && ms[0] < GemmTuning::kMinMs) return std::nullopt;
  }
  const int chosen = ChooseFastest(ms);
  if (chosen < 0) return std::nullopt;
  if (chosen > 0) {
    Log(LogLevel::kDebug, "cuBLASLt m {} n {} k {}: candidate {} of {} runs {:.3f} ms, the heuristic's first {:.3f} ms",
        g.m, g.n, g.k, chosen + 1, ms.size(), ms[static_cast<size_t>(chosen)], ms[0]);
  }
  return usable[static_cast<size_t>(chosen)];
}

// The algorithm the tuning cache holds for `key`, if cuBLASLt still accepts it for this plan
// (cublasLtMatmulAlgoCheck: same library version, and the workspace and pointer mode fit).
std::optional<cublasLtMatmulAlgo_t> Cached(const Context& ctx, const GemmArgs& g, const GemmPlans::Plan& plan,
                                           const std::string& key) {
  const std::optional<std::string> text = ctx.tuning_cache->Find(key);
  const std::optional<std::vector<uint8_t>> bytes = text ? TuningCache::FromHex(*text) : std::nullopt;
  if (!bytes || bytes->size() != sizeof(cublasLtMatmulAlgo_t)) return std::nullopt;
  cublasLtMatmulAlgo_t algo;
  std::memcpy(&algo, bytes->data(), sizeof algo);
  cublasLtMatmulHeuristicResult_t checked = {};
  const cublasStatus_t check =
      cublasLtMatmulAlgoCheck(ctx.lt, plan.op, plan.a, plan.b, plan.d, plan.d, &algo, &checked);
  checked.algo = algo;  // AlgoCheck fills the rest of the result, never its algo: Usable reads it
  if (check != CUBLAS_STATUS_SUCCESS || checked.workspaceSize > ctx.lt_workspace_bytes || !Usable(g, checked).ok()) {
    Log(LogLevel::kDebug, "GEMM tuning cache: the entry for {} is not usable; timing again", key);
    return std::nullopt;
  }
  return algo;
}

Status MakePlan(const Context& ctx, const GemmArgs& g, const std::string& key, uint32_t align_a, uint32_t align_b,
                uint32_t align_d, GemmPlans::Plan& plan) {
  const bool tf32 = g.ab_type == CUDA_R_32F && ctx.tf32;
  const cublasComputeType_t compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  DS_CUBLAS_TRY(cublasLtMatmulDescCreate(&plan.op, compute, CUDA_R_32F));
  const cublasOperation_t ta = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  DS_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  DS_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  if (g.bias || g.gelu) {
    const cublasLtEpilogue_t epilogue =
        g.gelu ? (g.bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU) : CUBLASLT_EPILOGUE_BIAS;
    DS_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
  }
  if (g.bias) {
    const cudaDataType_t bias_type = g.d_type;
    DS_CUBLAS_TRY(
        cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
  }
  if (g.alpha_vector) {
    const cublasLtPointerMode_t mode = CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_HOST;
    DS_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_POINTER_MODE, &mode, sizeof(mode)));
  }
  // Stored shapes: op(A) is m×k, so A is k×m when transposed; likewise B.
  const uint64_t a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;
  const uint64_t b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;
  DS_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&plan.a, g.ab_type, a_rows, a_cols, g.lda));
  DS_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&plan.b, g.ab_type, b_rows, b_cols, g.ldb));
  DS_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&plan.d, g.d_type, g.m, g.n, g.ldd));

  cublasLtMatmulPreference_t pref = nullptr;
  DS_CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t workspace = ctx.lt_workspace_bytes;
  Status status = CheckCublas(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                                   &workspace, sizeof(workspace)),
                              "cublasLtMatmulPreferenceSetAttribute", __FILE__, __LINE__);
  const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> alignments[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_a},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_b},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_d},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_d},
  };
  for (const auto& [attr, value] : alignments) {
    if (status.ok()) {
      status = CheckCublas(cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof(value)),
                           "cublasLtMatmulPreferenceSetAttribute", __FILE__, __LINE__);
    }
  }
  cublasLtMatmulHeuristicResult_t results[GemmTuning::kCandidates] = {};
  int found = 0;
  if (status.ok()) {
    status = CheckCublas(cublasLtMatmulAlgoGetHeuristic(ctx.lt, plan.op, plan.a, plan.b, plan.d, plan.d, pref,
                                                        GemmTuning::kCandidates, results, &found),
                         "cublasLtMatmulAlgoGetHeuristic", __FILE__, __LINE__);
  }
  cublasLtMatmulPreferenceDestroy(pref);
  DS_TRY(status);
  if (found == 0) {
    return Error(Code::kUnsupported, "cuBLASLt has no {} algorithm for m {} n {} k {} (lda {} ldb {} ldd {}{}{}{})",
                 g.ab_type == CUDA_R_32F ? "f32" : "bf16", g.m, g.n, g.k, g.lda, g.ldb, g.ldd, g.bias ? ", bias" : "",
                 g.beta != 0.0f ? ", accumulating" : "", g.alpha_vector ? ", alpha vector" : "");
  }
  // The candidates this plan can launch, in the heuristic's order.
  std::vector<cublasLtMatmulAlgo_t> usable;
  Status refused = Status::Ok();
  for (int i = 0; i < found; ++i) {
    const Status why = Usable(g, results[i]);
    if (why.ok()) {
      usable.push_back(results[i].algo);
    } else if (refused.ok()) {
      refused = why;
    }
  }
  if (usable.empty()) return refused;
  const bool tune =
      ctx.gemm_autotune == Autotune::kAll || (ctx.gemm_autotune == Autotune::kRecorded && ctx.issuing_recording);
  plan.algo = usable.front();
  if (!tune || usable.size() < 2) return Status::Ok();
  // A choice this machine timed before (the cache), else timed now and recorded.
  const std::string cache_key = TuningCache::MakeKey({ctx.device_key, "gemm", key});
  if (ctx.tuning_cache != nullptr) {
    if (const std::optional<cublasLtMatmulAlgo_t> cached = Cached(ctx, g, plan, cache_key)) {
      plan.algo = *cached;
      plan.choice = GemmPlans::Choice::kCached;
      return Status::Ok();
    }
  }
  if (const std::optional<cublasLtMatmulAlgo_t> fastest = Fastest(ctx, g, plan, usable)) {
    plan.algo = *fastest;
    plan.choice = GemmPlans::Choice::kTimed;
    if (ctx.tuning_cache != nullptr) {
      const auto* raw = reinterpret_cast<const uint8_t*>(&plan.algo);
      const std::string hex = TuningCache::ToHex({raw, sizeof plan.algo});
      if (const Status kept = ctx.tuning_cache->Insert(cache_key, hex); !kept.ok()) {
        Log(LogLevel::kDebug, "{}", kept.message());
      }
    }
  }
  return Status::Ok();
}

}  // namespace

namespace {

// A plan key as text (the tuning cache's key, after the device's part).
std::string KeyString(const GemmPlans::Key& key) {
  std::string text;
  std::apply([&](const auto&... field) { ((text += std::to_string(field), text += ','), ...); }, key);
  text.pop_back();
  return text;
}

// The cached plan for g, made on first use; the error (kUnsupported) when cuBLASLt has none.
Result<GemmPlans::Plan*> PlanFor(const Context& ctx, const GemmArgs& g) {
  const size_t ab_size = g.ab_type == CUDA_R_32F ? 4 : 2, d_size = g.d_type == CUDA_R_32F ? 4 : 2;
  const uint32_t align_a = Alignment(g.a, g.lda, ab_size), align_b = Alignment(g.b, g.ldb, ab_size),
                 align_d = Alignment(g.d, g.ldd, d_size);
  const uint32_t variant = uint32_t{ctx.tf32} | (g.ab_type == CUDA_R_16BF ? 2u : 0u) |
                           (g.d_type == CUDA_R_16BF ? 4u : 0u) | (g.gelu ? 8u : 0u) | (g.alpha_vector ? 16u : 0u);
  const GemmPlans::Key key{g.trans_a,
                           g.trans_b,
                           g.m,
                           g.n,
                           g.k,
                           g.lda,
                           g.ldb,
                           g.ldd,
                           g.bias != nullptr,
                           g.beta != 0.0f,
                           align_a | (align_b << 9) | (align_d << 18),
                           variant};
  auto& slot = ctx.plans->plans[key];
  if (!slot) {
    auto plan = std::make_unique<GemmPlans::Plan>();
    const Status made = MakePlan(ctx, g, KeyString(key), align_a, align_b, align_d, *plan);
    if (!made.ok() && made.code() != Code::kUnsupported) return made;
    if (!made.ok()) Log(LogLevel::kInfo, "{}", made.message());  // once per shape: a fallback may follow
    plan->unsupported = made;                                    // asked once: the heuristic's answer does not change
    slot = std::move(plan);
  }
  DS_TRY(slot->unsupported);
  return slot.get();
}

}  // namespace

Status Gemm(const Context& ctx, const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return Status::Ok();
  DS_ASSIGN_OR_RETURN(GemmPlans::Plan * found, PlanFor(ctx, g));
  GemmPlans::Plan& plan = *found;
  if (g.bias) {
    DS_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)));
  }
  const float one = 1.0f;
  const void* alpha = g.alpha_vector ? static_cast<const void*>(g.alpha_vector) : &one;
  const cublasStatus_t ran = cublasLtMatmul(ctx.lt, plan.op, alpha, g.a, plan.a, g.b, plan.b, &g.beta, g.d, plan.d, g.d,
                                            plan.d, &plan.algo, ctx.lt_workspace, ctx.lt_workspace_bytes, ctx.stream);
  // A refusal at launch (nothing was queued) of a plan the heuristic offered: for the accumulating
  // and alpha-vector plans, which few kernels implement, the caller has a fallback, so it is kept
  // as the plan's answer (asked once) instead of failing every later use.
  const bool fused = g.alpha_vector != nullptr || g.beta != 0.0f;
  if (fused && (ran == CUBLAS_STATUS_NOT_SUPPORTED || ran == CUBLAS_STATUS_INVALID_VALUE)) {
    plan.unsupported =
        Error(Code::kUnsupported, "cuBLASLt refused its {} algorithm for m {} n {} k {} at launch ({})",
              g.alpha_vector ? "alpha-vector" : "accumulating", g.m, g.n, g.k, cublasLtGetStatusString(ran));
    Log(LogLevel::kInfo, "{}", plan.unsupported.message());
    return plan.unsupported;
  }
  DS_TRY(CheckCublas(ran, "cublasLtMatmul", __FILE__, __LINE__));
  return Status::Ok();
}

namespace {

// Elements between rows of a 2-D (or evenly strided) view; a single row gets its width.
Result<int64_t> RowStride(const Tensor& t, const char* name) {
  const RowLayout l = RowsOf(t);
  const int64_t element = static_cast<int64_t>(DTypeSize(t.dtype));
  if (l.count <= 1) return l.width;
  if (l.uniform < 0 || l.uniform % element != 0 || t.strides[t.ndim - 1] != element) {
    return Error(Code::kInvalidArgument, "CUDA linear: {} {} is not a matrix of evenly strided {} rows", name,
                 t.shape_string(), DTypeName(t.dtype));
  }
  return l.uniform / element;
}

}  // namespace

// Row-major y = x·wᵀ is column-major yᵀ = w·xᵀ: with x, w, y read as column-major matrices
// (x is K×M, w is K×N, y is N×M), D = yᵀ, op(A) = wᵀ (A = w, transposed), op(B) = xᵀ (B = x).
// The bias then runs along D's rows, which is cuBLASLt's bias epilogue.
namespace {

// What Linear and LinearAccumulate add to the product: see GemmArgs.
struct LinearEpilogue {
  bool gelu = false;
  float beta = 0.0f;
  const float* alpha_vector = nullptr;
};

Status LinearWith(const Context& ctx, const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& y,
                  const LinearEpilogue& e) {
  const bool bf16 = w.dtype == DType::kBF16;
  if (w.dtype != DType::kF32 && !bf16) {
    return Error(Code::kInvalidArgument, "CUDA linear: w is {}; F32 and BF16 weights are supported",
                 DTypeName(w.dtype));
  }
  for (const auto& [t, name] : {std::pair{&x, "x"}, std::pair{&y, "y"}}) {
    if (t->dtype != DType::kF32 && !(bf16 && t->dtype == DType::kBF16)) {
      return Error(Code::kInvalidArgument, "CUDA linear: {} is {} with {} weights (F32, or BF16 with BF16 weights)",
                   name, DTypeName(t->dtype), DTypeName(w.dtype));
    }
  }
  DS_ASSIGN_OR_RETURN(const int64_t ldx, RowStride(x, "x"));
  DS_ASSIGN_OR_RETURN(const int64_t ldw, RowStride(w, "w"));
  DS_ASSIGN_OR_RETURN(const int64_t ldy, RowStride(y, "y"));
  const RowLayout xl = RowsOf(x), wl = RowsOf(w), yl = RowsOf(y);
  if (wl.width != xl.width || yl.count != xl.count || yl.width != wl.count) {
    return Error(Code::kInvalidArgument, "CUDA linear: x {}, w {} and y {} are not [M, K], [N, K] and [M, N]",
                 x.shape_string(), w.shape_string(), y.shape_string());
  }
  if (bias && (bias->dtype != DType::kF32 || !bias->contiguous() || bias->numel() != wl.count)) {
    return Error(Code::kInvalidArgument, "CUDA linear: the bias must be {} contiguous F32 values, not {} {}", wl.count,
                 DTypeName(bias->dtype), bias->shape_string());
  }
  GemmArgs g;
  g.trans_a = true;
  g.m = wl.count;  // N
  g.n = xl.count;  // M
  g.k = xl.width;  // K
  g.a = w.data;
  g.lda = ldw;
  g.b = x.data;
  g.ldb = ldx;
  g.d = y.data;
  g.ldd = ldy;
  g.bias = bias ? bias->data : nullptr;
  g.gelu = e.gelu;
  g.beta = e.beta;
  g.alpha_vector = e.alpha_vector;
  if (!bf16) return Gemm(ctx, g);

  // BF16 weights. Scratch (the bias in BF16 for a BF16 y, x in BF16 for an F32 x) goes back to the
  // arena once the GEMMs are queued: the stream orders any later use of the memory after them.
  Scratch scratch(ctx);
  g.ab_type = CUDA_R_16BF;
  if (y.dtype == DType::kBF16) {
    g.d_type = CUDA_R_16BF;
    if (bias) {
      DS_ASSIGN_OR_RETURN(void* b16, scratch.Allocate(static_cast<size_t>(bias->numel()) * 2, "linear bias (bf16)"));
      DS_TRY(NarrowToBf16(ctx, *bias, b16));
      g.bias = b16;
    }
  }
  if (x.dtype == DType::kBF16 || xl.count == 0) return Gemm(ctx, g);
  // F32 x is rounded to BF16 in blocks of rows that fit the free arena (all of them, normally; the
  // arena holds only op scratch, so a 14B's FFN rows may not fit at once), each block's GEMM right
  // after its rounding.
  const size_t row_bytes = static_cast<size_t>(xl.width) * 2, slack = 2 * Arena::kAlign;
  const size_t free_bytes = ctx.arena->capacity() - ctx.arena->used();
  const int64_t block =
      std::min<int64_t>(xl.count, free_bytes > slack ? static_cast<int64_t>((free_bytes - slack) / row_bytes) : 0);
  if (block == 0) {
    return Error(Code::kOutOfMemory, "CUDA linear: one bf16 row of x ({} bytes) does not fit the arena ({} free)",
                 row_bytes, free_bytes);
  }
  DS_ASSIGN_OR_RETURN(void* x16, scratch.Allocate(static_cast<size_t>(block) * row_bytes, "linear x (bf16)"));
  g.b = x16;
  g.ldb = xl.width;
  const size_t y_row_bytes = static_cast<size_t>(ldy) * DTypeSize(y.dtype);
  auto block_gemm = [&](int64_t r0) {
    GemmArgs b = g;
    b.n = std::min(block, xl.count - r0);
    b.d = static_cast<char*>(y.data) + static_cast<size_t>(r0) * y_row_bytes;
    return b;
  };
  // Every block's plan before any block runs: an accumulating GEMM (beta 1) that stopped half way
  // could not be redone by a caller's fallback without adding the first blocks twice.
  for (int64_t r0 = 0; r0 < xl.count; r0 += block) {
    DS_TRY(PlanFor(ctx, block_gemm(r0)).status());
  }
  for (int64_t r0 = 0; r0 < xl.count; r0 += block) {
    const GemmArgs b = block_gemm(r0);
    // Rows [r0, r0 + rows) of x as a 2-D view (x's row stride is uniform: RowStride checked it).
    Tensor xr = Tensor::View(static_cast<char*>(x.data) + static_cast<size_t>(r0 * ldx) * 4, DType::kF32,
                             {b.n, xl.width}, x.device);
    xr.strides[0] = ldx * 4;
    DS_TRY(NarrowToBf16(ctx, xr, x16));
    const Status ran = Gemm(ctx, b);
    if (!ran.ok() && r0 > 0 && ran.code() == Code::kUnsupported) {
      // Refused at launch after earlier blocks were accumulated: a fallback would add them twice.
      return Error(Code::kInternal, "CUDA linear: rows from {} on: {}", r0, ran.message());
    }
    DS_TRY(ran);
  }
  return Status::Ok();
}

}  // namespace

Status Linear(const Context& ctx, const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& y, bool gelu) {
  return LinearWith(ctx, x, w, bias, y, {.gelu = gelu});
}

Status LinearAccumulate(const Context& ctx, const Tensor& x, const Tensor& w, const Tensor* bias, const float* gate,
                        const Tensor& y) {
  if (y.dtype != DType::kF32) {
    return Error(Code::kInvalidArgument, "CUDA linear into a residual: the residual is {}, not F32",
                 DTypeName(y.dtype));
  }
  if (gate == nullptr || bias == nullptr) return LinearWith(ctx, x, w, bias, y, {.beta = 1.0f, .alpha_vector = gate});
  if (bias->dtype != DType::kF32 || !bias->contiguous()) {
    return Error(Code::kInvalidArgument, "CUDA linear: the bias must be contiguous F32, not {} {}",
                 DTypeName(bias->dtype), bias->shape_string());
  }
  // gate ⊙ bias in scratch, which goes back to the arena once the GEMMs are queued.
  Scratch scratch(ctx);
  const int64_t n = bias->numel();
  DS_ASSIGN_OR_RETURN(void* scaled, scratch.Allocate(static_cast<size_t>(n) * 4, "linear bias (gated)"));
  const Tensor scaled_bias = Tensor::View(scaled, DType::kF32, {1, n}, Device::kCuda);
  DS_CUDA_TRY(cudaMemcpyAsync(scaled, bias->data, static_cast<size_t>(n) * 4, cudaMemcpyDeviceToDevice, ctx.stream));
  DS_TRY(Multiply(ctx, scaled_bias, Tensor::View(const_cast<float*>(gate), DType::kF32, {1, n}, Device::kCuda)));
  const Tensor flat_bias = Tensor::View(scaled, DType::kF32, {n}, Device::kCuda);
  return LinearWith(ctx, x, w, &flat_bias, y, {.beta = 1.0f, .alpha_vector = gate});
}

}  // namespace ds::cuda
