// The Backend's memory API on the host backends: buffers, copies in and out, and errors for
// mismatched sizes (a GPU backend is checked by bench/gpu_check.sh through bench_wan_cuda).
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kernels/registry.h"

namespace ds {
namespace {

TEST(BackendMemory, BuffersAreAlignedAndRoundTrip) {
  for (const char* device : {"cpu", "reference"}) {
    auto be = CreateBackend(device, 1);
    ASSERT_TRUE(be.ok()) << device;
    auto buf = (*be)->NewBuffer(DType::kF32, {3, 5});
    ASSERT_TRUE(buf.ok()) << buf.status().message();
    EXPECT_EQ(buf->tensor.numel(), 15);
    EXPECT_EQ(buf->tensor.device, Device::kCpu);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(buf->tensor.data) % 64, 0u);
    std::vector<float> in(15), out(15, -1.0f);
    for (int i = 0; i < 15; ++i) in[i] = 0.5f * static_cast<float>(i) - 3.0f;
    ASSERT_TRUE((*be)->CopyToBackend(Tensor::View(in.data(), DType::kF32, {3, 5}), buf->tensor).ok());
    auto second = (*be)->NewBuffer(DType::kF32, {15});
    ASSERT_TRUE(second.ok());
    (*be)->copy(buf->tensor, second->tensor);
    ASSERT_TRUE((*be)->CopyToHost(second->tensor, Tensor::View(out.data(), DType::kF32, {15})).ok());
    EXPECT_EQ(out, in) << device;
  }
}

TEST(BackendMemory, MismatchedCopiesAreErrorsNamingBothShapes) {
  auto be = CreateBackend("cpu", 1);
  ASSERT_TRUE(be.ok());
  auto buf = (*be)->NewBuffer(DType::kF32, {4});
  ASSERT_TRUE(buf.ok());
  std::vector<float> host(5);
  const Status s = (*be)->CopyToBackend(Tensor::View(host.data(), DType::kF32, {5}), buf->tensor);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("[5]"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("[4]"), std::string::npos) << s.message();
  EXPECT_FALSE((*be)->CopyToHost(buf->tensor, Tensor::View(host.data(), DType::kF32, {5})).ok());
}

}  // namespace
}  // namespace ds
