// A bump allocator over one device allocation made up front (DESIGN.md §3: no hidden allocation in
// hot loops). Pure bookkeeping on addresses, so it is tested on the CPU (tests/cuda).
//
// Two lifetimes share the arena as a stack: tensors the engine allocates (weights, activations)
// stay until Reset(); an op's scratch (staging copies, im2col, bf16 attention inputs) is taken
// above them and given back with Release(mark) when the op has been enqueued. Reusing released
// scratch is safe without a sync because every op runs on the backend's one stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace ds::cuda {

class Arena {
 public:
  static constexpr size_t kAlign = 256;  // cuBLASLt's preferred operand alignment

  Arena() = default;
  Arena(void* base, size_t capacity) : base_(reinterpret_cast<uintptr_t>(base)), capacity_(capacity) {}

  Result<void*> Allocate(size_t bytes, const char* what) {
    const size_t start = (used_ + kAlign - 1) / kAlign * kAlign;
    if (start > capacity_ || bytes > capacity_ - start) {
      return Status(Code::kOutOfMemory, std::string("CUDA arena: ") + what + " needs " + std::to_string(bytes) +
                                            " bytes, " + std::to_string(capacity_ - used_) + " of " +
                                            std::to_string(capacity_) + " are free");
    }
    used_ = start + bytes;
    peak_ = used_ > peak_ ? used_ : peak_;
    return reinterpret_cast<void*>(base_ + start);
  }

  size_t Mark() const { return used_; }
  void Release(size_t mark) { used_ = mark < used_ ? mark : used_; }
  void Reset() { used_ = 0; }

  size_t used() const { return used_; }
  size_t peak() const { return peak_; }
  size_t capacity() const { return capacity_; }

 private:
  uintptr_t base_ = 0;
  size_t capacity_ = 0;
  size_t used_ = 0;
  size_t peak_ = 0;
};

}  // namespace ds::cuda
