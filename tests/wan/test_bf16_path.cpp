// The Wan transformer's BF16 path, which only a GPU backend takes in production (its BF16 matrices
// go to linear as stored, the FFN's hidden rows are BF16, written by linear_gelu_tanh and read by
// fc2), run on the CPU through Bf16LinearBackend (tests/wan/bf16_linear_backend.h). So CI checks
// the model side of that path (which buffers are BF16, views and strides over them, which ops
// receive them) without a GPU; the GPU tests check the CUDA ops themselves. The FP8 variant is in
// test_fp8.cpp.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/wan/wan_transformer.h"
#include "kernels/cpu/reference_backend.h"
#include "tests/wan/bf16_linear_backend.h"
#include "tests/wan/wan_test_util.h"

namespace ds {
namespace {

using wan_test::Bf16LinearBackend;

// The tiny fixture's matrices are BF16: every block matrix goes to linear as stored (q, k and v as
// one fused matrix where the weights are copied into the backend's buffers), the norms write BF16
// rows for the GEMMs that read them, q/k/v and the attention output are BF16 (normalised and
// rotated in place, read and written by the attention directly), each block's fc1 writes BF16
// hidden rows that its fc2 reads, and the result stays within bf16 rounding of the float32 path
// (the reference backend, which widens the matrices and keeps every activation f32).
TEST(WanBf16Path, BlockMatricesAsStoredAndBf16HiddenRowsMatchTheF32Path) {
  auto model = WanTransformer::Load(wan_test::FixtureDir() + "/tiny/transformer");
  ASSERT_TRUE(model.ok()) << model.status().message();
  const int64_t blocks = model->config().layers;
  ReferenceBackend reference;
  const std::vector<float> want = wan_test::SmallForward(*model, reference);
  // As a host backend, and claiming to be a GPU (the model's device branches: weights copied into
  // backend buffers, the FFN rows sized by the working-set budget).
  for (Device reported : {Device::kCpu, Device::kCuda}) {
    SCOPED_TRACE(reported == Device::kCuda ? "reported as a GPU" : "reported as the CPU");
    Bf16LinearBackend bf16(reported);
    const std::vector<float> got = wan_test::SmallForward(*model, bf16);
    EXPECT_FALSE(bf16.misuse) << "a BF16 tensor reached an op the CUDA backend refuses it in";
    // q k v o, cross q k v o, fc1, fc2; with the weights in device buffers q, k and v are one GEMM.
    const bool device = reported == Device::kCuda;
    EXPECT_EQ(bf16.bf16_weight_calls, blocks * (device ? 8 : 10));
    EXPECT_EQ(bf16.bf16_three_way_calls, device ? blocks : 0);
    // BF16 outputs: q/k/v (one GEMM or three), the cross-attention's q, fc1's hidden rows.
    EXPECT_EQ(bf16.bf16_y_calls, blocks * (device ? 3 : 5));
    // BF16 inputs: the norms' rows into q/k/v, cross q and fc1; the attention outputs into o and
    // the cross o; the hidden rows into fc2.
    EXPECT_EQ(bf16.bf16_x_calls, blocks * (device ? 6 : 8));
    EXPECT_EQ(bf16.bf16_norm_calls, blocks * 3);       // two modulated LayerNorms, the cross one
    EXPECT_EQ(bf16.bf16_attention_calls, blocks * 2);  // self and cross, BF16 q and o
    const double err = wan_test::RelError(got, want);
    EXPECT_LT(err, 2e-2);
    EXPECT_GT(err, 1e-5) << "bf16 rounding of the activations should show";
  }
}

// A backend without BF16 linears (every CPU backend) gets float32 hidden rows and widened matrices.
TEST(WanBf16Path, HostBackendsKeepTheF32Path) {
  auto model = WanTransformer::Load(wan_test::FixtureDir() + "/tiny/transformer");
  ASSERT_TRUE(model.ok()) << model.status().message();
  auto cpu = wan_test::MakeBackend("cpu");
  ASSERT_TRUE(cpu);
  EXPECT_FALSE(cpu->LinearAcceptsWeights(DType::kBF16));
  EXPECT_EQ(cpu->WidenedWeightDType(), DType::kF32);
  ReferenceBackend reference;
  EXPECT_LT(wan_test::RelError(wan_test::SmallForward(*model, *cpu), wan_test::SmallForward(*model, reference)), 1e-4);
}

}  // namespace
}  // namespace ds
