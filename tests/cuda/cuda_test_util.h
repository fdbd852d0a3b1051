// Helpers for the GPU tests (suite cuda-gpu): a fixture that skips when the machine has no usable
// GPU, and device mirrors of host buffers so a test can build its views on the host, run the op
// on the device twins, and compare on the host with the helpers of tests/kernels.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <utility>
#include <vector>

#include "kernels/cuda/cuda_backend.h"
#include "tests/kernels/kernel_test_util.h"

namespace ds::test {

// The backend for one test, or GTEST_SKIP when there is no usable device (kUnsupported). Any other
// failure (arena allocation, driver error) fails the test: the machine has a GPU then.
class CudaTest : public ::testing::Test {
 protected:
  static CudaOptions DefaultOptions() {
    CudaOptions o;
    o.arena_bytes = size_t{2} << 30;
    o.tuning_cache = "";  // tests read and write no cache in $HOME
    return o;
  }

  void SetUp() override {
    auto backend = CudaBackend::Create(DefaultOptions());
    if (!backend.ok()) {
      if (backend.status().code() == Code::kUnsupported) {
        GTEST_SKIP() << backend.status().message();
      }
      FAIL() << backend.status().message();
    }
    cuda_ = std::move(backend).value();
  }

  // A second backend with other options (f32 GEMMs, the naive attention kernel).
  std::unique_ptr<CudaBackend> Make(const CudaOptions& options) {
    auto backend = CudaBackend::Create(options);
    EXPECT_TRUE(backend.ok()) << backend.status().message();
    return backend.ok() ? std::move(backend).value() : nullptr;
  }

  // A backend with an arena of `bytes` (the smallest allowed is 64 MiB, half of it cuBLASLt's
  // workspace), for the paths that split work to fit the arena.
  static constexpr size_t kSmallArena = size_t{64} << 20;
  std::unique_ptr<CudaBackend> MakeWithArena(size_t bytes) {
    CudaOptions o = DefaultOptions();
    o.arena_bytes = bytes;
    return Make(o);
  }
  // What an op may still take from the arena of a backend made with `bytes`.
  static size_t ArenaFree(const CudaBackend& be, size_t bytes) { return bytes - be.arena_used(); }

  std::unique_ptr<CudaBackend> cuda_;
};

// A device copy of a host buffer. mirror(view) is the device twin of a view into the host buffer
// (same shape and strides); Fetch() copies the device bytes back over the host buffer.
class DeviceMirror {
 public:
  DeviceMirror(CudaBackend& be, const HostBuffer& host) : be_(be), host_(host) {
    auto t = be.Alloc(DType::kF32, {static_cast<int64_t>(host.size())});
    if (!t.ok()) {
      status_ = t.status();
      return;
    }
    dev_ = *t;
    status_ = be.Upload(host.view({static_cast<int64_t>(host.size())}), dev_);
  }

  const Status& status() const { return status_; }

  Tensor operator()(const Tensor& host_view) const {
    Tensor d = host_view;
    d.data =
        static_cast<char*>(dev_.data) + (static_cast<char*>(host_view.data) - reinterpret_cast<char*>(host_.data()));
    d.device = Device::kCuda;
    return d;
  }

  // Waits for the stream; also reports (and clears) any error an op left on the backend.
  Status Fetch() { return be_.Download(dev_, host_.view({static_cast<int64_t>(host_.size())})); }

 private:
  CudaBackend& be_;
  const HostBuffer& host_;
  Tensor dev_;
  Status status_;
};

// BF16 host data (values rounded to bf16) and its device copy, [rows, cols]; FetchBf16 reads a
// device BF16 [rows, cols] back as floats.
struct Bf16Matrix {
  std::vector<uint16_t> bits;
  HostBuffer widened;  // the bf16 values as floats
  BackendBuffer device;
};

inline Bf16Matrix RoundedToBf16(CudaBackend& be, const HostBuffer& values, int64_t rows, int64_t cols) {
  Bf16Matrix m;
  m.bits.resize(values.size());
  m.widened = HostBuffer(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    m.bits[i] = FloatToBFloat16(values.data()[i]);
    m.widened.data()[i] = BFloat16ToFloat(m.bits[i]);
  }
  auto buf = be.NewBuffer(DType::kBF16, {rows, cols});
  EXPECT_TRUE(buf.ok()) << buf.status().message();
  if (!buf.ok()) return m;
  m.device = *buf;
  EXPECT_TRUE(be.CopyToBackend(Tensor::View(m.bits.data(), DType::kBF16, {rows, cols}), m.device.tensor).ok());
  return m;
}

inline HostBuffer FetchBf16(CudaBackend& be, const Tensor& device, int64_t rows, int64_t cols) {
  std::vector<uint16_t> bits(static_cast<size_t>(rows * cols));
  EXPECT_TRUE(be.CopyToHost(device, Tensor::View(bits.data(), DType::kBF16, {rows, cols})).ok());
  HostBuffer out(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) out.data()[i] = BFloat16ToFloat(bits[i]);
  return out;
}

}  // namespace ds::test

// Declares DeviceMirror `name` of host buffer `host` on backend `be`, failing the test if it
// cannot be made.
#define DS_MIRROR(name, be, host)              \
  ::ds::test::DeviceMirror name((be), (host)); \
  ASSERT_TRUE(name.status().ok()) << name.status().message()
