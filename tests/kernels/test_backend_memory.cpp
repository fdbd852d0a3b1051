// The Backend's memory API on the host backends: buffers, copies in and out, widening 16-bit
// weights, and errors for mismatched sizes (a GPU backend is checked by bench/gpu_check.sh through bench_wan_cuda).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
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

// Models recognise the backend their memory lives in by id: a backend created where a destroyed one
// was must not pass for it.
TEST(BackendMemory, IdsAreNeverReused) {
  std::vector<uint64_t> ids;
  for (int i = 0; i < 4; ++i) {
    auto be = CreateBackend(i % 2 ? "cpu" : "reference", 1);
    ASSERT_TRUE(be.ok());
    ids.push_back((*be)->id());
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_NE(ids[i], 0u);
    for (size_t j = 0; j < i; ++j) EXPECT_NE(ids[i], ids[j]);
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

// Bit patterns with known values (IEEE binary16 and bfloat16 tables), from a source one byte off
// 2-byte alignment, as a safetensors tensor may be.
TEST(BackendMemory, WidensHalfAndBfloat16ToFloat) {
  const uint16_t bf16[] = {0x3F80, 0xC000, 0x0000, 0x8000, 0x7F80, 0x3EAA, 0x0001};
  const float bf16_want[] = {1.0f, -2.0f, 0.0f, -0.0f, INFINITY, 0.33203125f, 9.18354962e-41f};
  const uint16_t f16[] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x3555, 0xFC00, 0x0400};
  const float f16_want[] = {1.0f, -2.0f, 65504.0f, 5.96046448e-08f, 0.333251953f, -INFINITY, 6.10351562e-05f};
  for (const char* device : {"cpu", "reference"}) {
    auto be = CreateBackend(device, 1);
    ASSERT_TRUE(be.ok());
    for (bool is_bf16 : {true, false}) {
      std::vector<unsigned char> raw(1 + sizeof bf16);
      std::memcpy(raw.data() + 1, is_bf16 ? bf16 : f16, sizeof bf16);
      const Tensor src = Tensor::View(raw.data() + 1, is_bf16 ? DType::kBF16 : DType::kF16, {7});
      std::vector<float> out(7, -1.0f);
      Tensor dst = Tensor::View(out.data(), DType::kF32, {7});
      (*be)->widen(src, dst, 1.0f);
      const float* want = is_bf16 ? bf16_want : f16_want;
      for (int i = 0; i < 7; ++i) {
        EXPECT_EQ(std::signbit(out[i]), std::signbit(want[i])) << device << " " << i;
        EXPECT_EQ(out[i], want[i]) << device << (is_bf16 ? " bf16 " : " f16 ") << i;
      }
    }
    std::vector<float> in = {1.5f, -0.25f}, out(2);
    Tensor dst = Tensor::View(out.data(), DType::kF32, {2});
    (*be)->widen(Tensor::View(in.data(), DType::kF32, {2}), dst, 1.0f);
    EXPECT_EQ(out, in);
  }
}

// Widening into BF16 (what a GPU model does with F16/F8 weights) is the float32 result rounded to
// nearest even, on every host backend, over more elements than one work chunk and from an odd
// byte offset, with a partial last piece; every E4M3 and every F16 pattern, times a scale.
TEST(BackendMemory, WidensIntoBfloat16ByRoundingTheFloat32Result) {
  constexpr int kF16Count = 2 * 65536 + 77;  // every F16 pattern twice, and a ragged tail
  std::vector<unsigned char> f16_raw(1 + 2 * kF16Count);
  for (int i = 0; i < kF16Count; ++i) {
    const uint16_t bits = static_cast<uint16_t>(i);
    std::memcpy(f16_raw.data() + 1 + 2 * i, &bits, 2);
  }
  std::vector<uint8_t> e4m3(256);
  for (int i = 0; i < 256; ++i) e4m3[i] = static_cast<uint8_t>(i);
  const Tensor sources[] = {Tensor::View(f16_raw.data() + 1, DType::kF16, {kF16Count}),
                            Tensor::View(e4m3.data(), DType::kF8E4M3, {256})};
  for (const char* device : {"cpu", "reference"}) {
    auto be = CreateBackend(device, 2);
    ASSERT_TRUE(be.ok());
    for (const Tensor& src : sources) {
      const int64_t n = src.numel();
      std::vector<float> wide(static_cast<size_t>(n));
      WidenToF32(src.data, src.dtype, wide.data(), 0, wide.size(), 0.3f);
      std::vector<uint16_t> out(static_cast<size_t>(n), 0xFFFF);
      Tensor dst = Tensor::View(out.data(), DType::kBF16, {n});
      (*be)->widen(src, dst, 0.3f);
      int64_t mismatches = 0;
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t want = FloatToBFloat16(wide[static_cast<size_t>(i)]);
        const bool both_nan = std::isnan(wide[static_cast<size_t>(i)]) && std::isnan(BFloat16ToFloat(out[i]));
        mismatches += !both_nan && out[static_cast<size_t>(i)] != want;
      }
      EXPECT_EQ(mismatches, 0) << device << " " << DTypeName(src.dtype);
    }
  }
}

// OCP 8-bit floats as ComfyUI's fp8 checkpoints store them, times a per-tensor scale.
TEST(BackendMemory, WidensEightBitFloatsWithTheirScale) {
  const uint8_t e4m3[] = {0x38, 0xB8, 0x7E, 0x01, 0x08, 0x7F, 0x00, 0x3C};
  const float e4m3_want[] = {1.0f, -1.0f, 448.0f, 0.001953125f, 0.015625f, NAN, 0.0f, 1.5f};
  const uint8_t e5m2[] = {0x3C, 0xBC, 0x7B, 0x01, 0x7C, 0xFC, 0x7E, 0x3E};
  const float e5m2_want[] = {1.0f, -1.0f, 57344.0f, 1.52587891e-05f, INFINITY, -INFINITY, NAN, 1.5f};
  for (const char* device : {"cpu", "reference"}) {
    auto be = CreateBackend(device, 1);
    ASSERT_TRUE(be.ok());
    for (bool is_e4m3 : {true, false}) {
      for (float scale : {1.0f, 0.25f}) {
        std::vector<float> out(8, -7.0f);
        Tensor dst = Tensor::View(out.data(), DType::kF32, {8});
        const Tensor src =
            Tensor::View(const_cast<uint8_t*>(is_e4m3 ? e4m3 : e5m2), is_e4m3 ? DType::kF8E4M3 : DType::kF8E5M2, {8});
        (*be)->widen(src, dst, scale);
        const float* want = is_e4m3 ? e4m3_want : e5m2_want;
        for (int i = 0; i < 8; ++i) {
          if (std::isnan(want[i])) {
            EXPECT_TRUE(std::isnan(out[i])) << device << " " << i;
          } else {
            EXPECT_EQ(out[i], want[i] * scale) << device << (is_e4m3 ? " e4m3 " : " e5m2 ") << i << " scale " << scale;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace ds
