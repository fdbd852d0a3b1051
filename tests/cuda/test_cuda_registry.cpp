// The registry with the CUDA backend built in: "cuda" is the GPU when one is usable and a clear
// kUnsupported status otherwise; "auto" stays on the CPU for now. Runs (not skipped) without a GPU.
#include <gtest/gtest.h>

#include <string>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/registry.h"

namespace ds {
namespace {

TEST(CudaRegistry, CudaIsTheGpuOrAClearError) {
  const auto count = CudaDeviceCount();
  auto backend = CreateBackend("cuda", 0);
  if (!count.ok()) {
    ASSERT_FALSE(backend.ok());
    EXPECT_EQ(backend.status().code(), Code::kUnsupported);
    EXPECT_NE(backend.status().message().find("no CUDA device"), std::string::npos) << backend.status().message();
    return;
  }
  ASSERT_TRUE(backend.ok()) << backend.status().message();
  EXPECT_STREQ((*backend)->name(), "cuda");
  EXPECT_EQ((*backend)->device(), Device::kCuda);
}

TEST(CudaRegistry, AutoStaysOnTheCpuUntilTheEngineIsDeviceResident) {
  auto backend = CreateBackend("auto", 1);
  ASSERT_TRUE(backend.ok()) << backend.status().message();
  EXPECT_STREQ((*backend)->name(), "cpu");
}

TEST(CudaRegistry, AutoPutsDeviceResidentModelsOnTheGpuWhenThereIsOne) {
  auto backend = CreateBackend("auto", 1, AutoDevice::kGpuWhenPresent);
  ASSERT_TRUE(backend.ok()) << backend.status().message();
  const bool gpu = CudaDeviceCount().ok();
  EXPECT_STREQ((*backend)->name(), gpu ? "cuda" : "cpu");
  // "cuda" itself never falls back.
  if (!gpu) {
    EXPECT_EQ(CreateBackend("cuda", 1, AutoDevice::kGpuWhenPresent).status().code(), Code::kUnsupported);
  }
}

// "cuda:N" picks the N-th GPU; one past the driver's last is a clear error, not another GPU.
TEST(CudaRegistry, GpuIndicesPickTheirDeviceOrAreAClearError) {
  const auto count = CudaDeviceCount();
  const int past = count.ok() ? *count : 1;
  const std::string name = "cuda:" + std::to_string(past);
  auto backend = CreateBackend(name, 0);
  ASSERT_FALSE(backend.ok());
  EXPECT_NE(backend.status().message().find(name), std::string::npos) << backend.status().message();
  if (!count.ok()) return;
  EXPECT_EQ(backend.status().code(), Code::kInvalidArgument);
  EXPECT_NE(backend.status().message().find("requested"), std::string::npos) << backend.status().message();
  auto last = CreateBackend("cuda:" + std::to_string(*count - 1), 0);
  ASSERT_TRUE(last.ok()) << last.status().message();
  EXPECT_STREQ((*last)->name(), "cuda");
  // The refusal left no CUDA error behind for this thread: a kernel launch on the next backend
  // (whose check reads the thread's last error) succeeds.
  auto* gpu = dynamic_cast<CudaBackend*>(last->get());
  ASSERT_NE(gpu, nullptr);
  auto buffer = gpu->NewBuffer(DType::kF32, {256});
  ASSERT_TRUE(buffer.ok()) << buffer.status().message();
  Tensor t = buffer->tensor;
  ASSERT_TRUE(gpu->Zero(t).ok());
  gpu->silu(t);
  const Status ran = gpu->Synchronize();
  EXPECT_TRUE(ran.ok()) << ran.message();
}

TEST(CudaRegistry, NoDeviceIsUnsupportedNotACrash) {
  const auto count = CudaDeviceCount();
  if (count.ok()) {
    GTEST_SKIP() << *count << " CUDA device(s) present";
  }
  EXPECT_EQ(count.status().code(), Code::kUnsupported);
  auto backend = CudaBackend::Create();
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), Code::kUnsupported);
  EXPECT_NE(backend.status().message().find("no CUDA device"), std::string::npos) << backend.status().message();
}

}  // namespace
}  // namespace ds
