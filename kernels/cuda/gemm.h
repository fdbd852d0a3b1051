// GEMMs through cuBLASLt, in its column-major terms: D[m, n] = act(alpha ⊙ op(A)·op(B) + beta·D
// (+ bias[m] broadcast over columns)), alpha 1 or a per-row vector. A and B are float32 (TF32 or full f32 on the tensor
// cores) or both BF16 (f32 accumulate); D and bias are float32, or BF16 after a BF16 product (cuBLASLt's bias has D's
// type). One cached plan (descriptors + heuristic algorithm) per shape, so the steady state issues cublasLtMatmul and
// nothing else.
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
  cudaDataType_t d_type = CUDA_R_32F;  // of D and bias: CUDA_R_32F, or CUDA_R_16BF with BF16 A and B
  void* d = nullptr;
  int64_t ldd = 0;
  const void* bias = nullptr;  // [m], fused as the epilogue
  bool gelu = false;           // tanh-GELU after the bias, in the epilogue
  float beta = 0.0f;           // 1: accumulate into d
  // [m] F32 in device memory: each row of the product scaled by its element (cuBLASLt's alpha
  // vector; the bias is added after the scaling, unscaled). Null: alpha 1.
  const float* alpha_vector = nullptr;
};

class GemmPlans {
 public:
  GemmPlans() = default;
  ~GemmPlans();
  GemmPlans(const GemmPlans&) = delete;
  GemmPlans& operator=(const GemmPlans&) = delete;

  // How a plan's algorithm was chosen (gemm_tuning.h): cuBLASLt's first usable candidate, the
  // fastest of the candidates timed now, or the one the tuning cache holds from an earlier timing.
  enum class Choice { kHeuristic, kTimed, kCached };
  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo = {};
    Status unsupported;  // not ok: cuBLASLt has no algorithm for this plan (kUnsupported)
    Choice choice = Choice::kHeuristic;

    Plan() = default;
    Plan(const Plan&) = delete;
    Plan& operator=(const Plan&) = delete;
    ~Plan();
  };
  void Clear();                       // destroys the descriptors (before the cuBLASLt handle goes)
  size_t Count(Choice choice) const;  // plans whose algorithm was chosen so
  // Key: transposes, sizes, leading dims, bias or not, beta ≠ 0, operand alignments, and the
  // variant (TF32, A/B type, D type, GELU, alpha vector).
  using Key =
      std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, uint32_t, uint32_t>;
  std::map<Key, std::unique_ptr<Plan>> plans;
};

Status Gemm(const Context& ctx, const GemmArgs& args);

// y[M, N] = x[M, K]·w[N, K]ᵀ (+ bias[N]) (then tanh-GELU when `gelu`); x and y may have row strides
// (2-D views). w is F32, or BF16 as a checkpoint stores it: then the GEMM runs on BF16 operands
// with f32 accumulation, the precision PyTorch's bf16 pipelines compute in, x may be F32 (rounded
// to BF16 into arena scratch first) or BF16, and y F32 or BF16 (written by the epilogue). bias is
// F32 [N] in device memory.
Status Linear(const Context& ctx, const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& y,
              bool gelu = false);

// y[M, N] += gate[N] ⊙ (x·wᵀ + bias[N]), or y += x·wᵀ + bias without a gate: a linear whose
// output only feeds a residual, accumulated by the GEMM itself (beta 1, C = D = y), so the product
// is never written and read back. y is F32; x, w and bias as Linear takes them; gate is F32 [N] in
// device memory, cuBLASLt's alpha vector, and the bias is multiplied by it first (cuBLASLt adds
// the bias after alpha). kUnsupported when cuBLASLt has no algorithm for the combination: the
// caller then writes the product to scratch and adds it.
Status LinearAccumulate(const Context& ctx, const Tensor& x, const Tensor& w, const Tensor* bias, const float* gate,
                        const Tensor& y);

}  // namespace ds::cuda
