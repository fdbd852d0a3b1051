// GEMMs through cuBLASLt, in its column-major terms: D[m, n] = op(A)·op(B) (+ bias[m] broadcast
// over columns) (+ beta·D), D and bias float32; A and B float32 (TF32 or full f32 on the tensor
// cores) or both BF16 (f32 accumulate). One cached plan (descriptors + heuristic algorithm) per
// shape, so the steady state issues cublasLtMatmul and nothing else.
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
  cudaDataType_t ab_type = CUDA_R_32F;  // of A and B: CUDA_R_32F or CUDA_R_16BF
  const void* a = nullptr;
  int64_t lda = 0;  // elements between columns of the stored (column-major) matrix
  const void* b = nullptr;
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
  // Key: transposes, sizes, leading dims, bias or not, beta ≠ 0, operand alignments, TF32, A/B type.
  using Key =
      std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, uint32_t, bool, int>;
  std::map<Key, std::unique_ptr<Plan>> plans;
};

Status Gemm(const Context& ctx, const GemmArgs& args);

// y[M, N] = x[M, K]·w[N, K]ᵀ (+ bias[N]); x and y may have row strides (2-D views). w is F32, or
// BF16 as a checkpoint stores it: then x is rounded to BF16 (into arena scratch) and the GEMM runs
// on BF16 operands with f32 accumulation, the precision PyTorch's bf16 pipelines compute in.
Status Linear(const Context& ctx, const Tensor& x, const Tensor& w, const float* bias, const Tensor& y);

}  // namespace ds::cuda
