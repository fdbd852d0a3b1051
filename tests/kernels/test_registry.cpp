#include <gtest/gtest.h>

#include <string>

#include "kernels/registry.h"

namespace ds {
namespace {

TEST(Registry, CreatesNamedBackends) {
  for (const auto& [device, name] :
       {std::pair{"cpu", "cpu"}, std::pair{"reference", "reference"}, std::pair{"auto", "cpu"}}) {
    auto backend = CreateBackend(device, 1);
    ASSERT_TRUE(backend.ok()) << device << ": " << backend.status().message();
    EXPECT_STREQ((*backend)->name(), name) << device;
    EXPECT_EQ((*backend)->device(), Device::kCpu);
  }
}

TEST(Registry, PassesThreadCount) {
  auto two = CreateBackend("cpu", 2);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ((*two)->threads(), 2);
  auto all = CreateBackend("cpu", 0);
  ASSERT_TRUE(all.ok());
  EXPECT_GE((*all)->threads(), 1);
}

TEST(Registry, CudaWithoutAUsableDeviceIsUnsupported) {
  auto backend = CreateBackend("cuda", 0);
  if (backend.ok()) GTEST_SKIP() << "a CUDA device is present (tests/cuda covers it)";
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), Code::kUnsupported);
  EXPECT_NE(backend.status().message().find("CUDA"), std::string::npos);
}

TEST(Registry, UnknownNameListsAcceptedOnes) {
  auto backend = CreateBackend("tpu", 0);
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), Code::kInvalidArgument);
  const std::string& message = backend.status().message();
  for (const char* word : {"tpu", "cpu", "cuda", "reference", "auto"}) {
    EXPECT_NE(message.find(word), std::string::npos) << word << " missing from: " << message;
  }
}

}  // namespace
}  // namespace ds
