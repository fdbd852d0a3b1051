// f32 GEMMs through cuBLASLt, in its column-major terms: D[m, n] = op(A)·op(B) (+ bias[m] broadcast
// over columns) (+ beta·D). One cached plan (descriptors + heuristic algorithm) per shape, so the
// steady state issues cublasLtMatmul and nothing else.
#pragma once

#include <cublasLt.h>

#include <map>
#include <memory>
#include <tuple>

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/cuda/context.h"

namespace ds::cuda {

struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  const float* a = nullptr;
  int64_t lda = 0;  // elements between columns of the stored (column-major) matrix
  const float* b = nullptr;
  int64_t ldb = 0;
  float* d = nullptr;
  int64_t ldd = 0;
  const float* bias = nullptr;  // [m], fused as the epilogue
  float beta = 0.0f;            // 1: accumulate into d
};

class GemmPlans {
 public:
  GemmPlans() = default;
  ~GemmPlans();
  GemmPlans(const GemmPlans&) = delete;
  GemmPlans& operator=(const GemmPlans&) = delete;

  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo = {};

    Plan() = default;
    Plan(const Plan&) = delete;
    Plan& operator=(const Plan&) = delete;
    ~Plan();
  };
  void Clear();  // destroys the descriptors (before the cuBLASLt handle goes)
  // Key: transposes, sizes, leading dims, bias or not, beta ≠ 0, operand alignments, TF32.
  using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, uint32_t, bool>;
  std::map<Key, std::unique_ptr<Plan>> plans;
};

Status Gemm(const Context& ctx, const GemmArgs& args);

// y[M, N] = x[M, K]·w[N, K]ᵀ (+ bias[N]); x and y may have row strides (2-D views).
Status Linear(const Context& ctx, const Tensor& x, const Tensor& w, const float* bias, const Tensor& y);

}  // namespace ds::cuda
