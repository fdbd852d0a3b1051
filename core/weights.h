// Model weights as float32 host tensors (the dtype the CPU backend computes in), converted from a
// checkpoint's F32/F16/BF16 data on first use, or (GetStored) as the checkpoint stores them. Model code asks for each
// tensor with the shape it expects, so every shape error surfaces at load time with the file and tensor named.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/safetensors.h"
#include "core/status.h"
#include "core/tensor.h"

namespace ds {

class Weights {
 public:
  // path: anything Checkpoint::Open accepts.
  static Result<Weights> Open(const std::string& path);
  explicit Weights(std::unique_ptr<Checkpoint> checkpoint);

  bool Has(std::string_view name) const;
  // The tensor's shape as stored, for model code that derives dimensions from the weights.
  Result<std::vector<int64_t>> Shape(std::string_view name) const;
  // A contiguous float32 view that stays valid for the lifetime of this object (also across moves).
  // Fails unless the stored shape equals expected_shape. Repeated calls return the same storage.
  Result<Tensor> Get(std::string_view name, const std::vector<int64_t>& expected_shape);
  // The tensor in the dtype the checkpoint stores: for F16, BF16 and F8 a view of the mapped file
  // (no copy, a half or a quarter of float32's memory; not necessarily aligned), otherwise Get's.
  // kMapped: an F32 tensor is a view of the mapping too (read-only, maybe unaligned), for code that
  // only ever widens it (Backend::widen); kCopy: Get's aligned, writable float32.
  enum class StoredF32 { kCopy, kMapped };
  Result<Tensor> GetStored(std::string_view name, const std::vector<int64_t>& expected_shape,
                           StoredF32 f32 = StoredF32::kCopy);
  // Replaces Get's float32 copy of `name` (fetched with Get, maybe changed in place since: a LoRA
  // merged in) by a copy in `dtype` (BF16 or F16), which GetStored returns from then on (and Get
  // widens again): a changed weight kept at the checkpoint's width. Frees the float32 copy. A
  // tensor is narrowed once: later calls return that copy.
  Result<Tensor> Narrow(std::string_view name, DType dtype);
  // Checkpoint tensors never fetched with Get or GetStored, sorted: a model warns about them, since they usually
  // mean a naming mismatch between the checkpoint and the model family.
  std::vector<std::string> Unused() const;

  const Checkpoint& checkpoint() const { return *checkpoint_; }

 private:
  struct Loaded {
    HostBuffer buffer;
    std::vector<int64_t> shape;
  };

  Result<const Loaded*> Load(const SafetensorsEntry& e);

  std::unique_ptr<Checkpoint> checkpoint_;
  struct Narrowed {
    std::vector<uint16_t> bits;
    DType dtype;
    std::vector<int64_t> shape;
  };

  std::map<std::string, Loaded, std::less<>> loaded_;
  std::map<std::string, Narrowed, std::less<>> narrowed_;
  std::set<std::string, std::less<>> viewed_;  // read through GetStored without a copy
};

}  // namespace ds
