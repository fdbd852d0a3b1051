#include <gtest/gtest.h>

#include <string>
#include <utility>

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

TEST(Registry, DeviceNamesParse) {
  using Kind = DeviceChoice::Kind;
  const std::pair<const char*, DeviceChoice> good[] = {
      {"auto", {Kind::kAuto, 0}},    {"cpu", {Kind::kCpu, 0}},           {"reference", {Kind::kReference, 0}},
      {"cuda", {Kind::kCuda, 0}},    {"cuda:0", {Kind::kCuda, 0}},       {"cuda:1", {Kind::kCuda, 1}},
      {"cuda:07", {Kind::kCuda, 7}}, {"cuda:1023", {Kind::kCuda, 1023}},
  };
  for (const auto& [name, want] : good) {
    const Result<DeviceChoice> got = ParseDevice(name);
    ASSERT_TRUE(got.ok()) << name << ": " << got.status().message();
    EXPECT_EQ(got->kind, want.kind) << name;
    EXPECT_EQ(got->cuda_index, want.cuda_index) << name;
  }
  for (const char* bad : {"cuda:", "cuda:-1", "cuda:+1", "cuda:1.5", "cuda:x", "cuda:1024", "cuda:99999999999",
                          "cuda: 1", "cuda:1 ", "CUDA", "cuda0", "cuda:0:1", "", "gpu", "cpu:0"}) {
    const Result<DeviceChoice> got = ParseDevice(bad);
    EXPECT_FALSE(got.ok()) << "\"" << bad << "\" accepted";
    if (!got.ok()) {
      EXPECT_EQ(got.status().code(), Code::kInvalidArgument);
      EXPECT_NE(got.status().message().find("cuda"), std::string::npos) << got.status().message();
    }
  }
}

// A GPU index is a CUDA device here or a clear error: never the CPU, never another GPU.
TEST(Registry, CudaIndexWithoutThatDeviceIsAnError) {
  auto backend = CreateBackend("cuda:1023", 0);
  ASSERT_FALSE(backend.ok()) << "a machine with 1024 GPUs?";
  EXPECT_NE(backend.status().message().find("cuda:1023"), std::string::npos) << backend.status().message();
  EXPECT_FALSE(CreateBackend("cuda:x", 0).ok());
}

}  // namespace
}  // namespace ds
