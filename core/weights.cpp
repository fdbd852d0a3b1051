#include "core/weights.h"

#include <fmt/format.h>

#include <new>
#include <optional>
#include <utility>

namespace ds {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

Tensor Contiguous(void* data, DType dtype, const std::vector<int64_t>& shape) {
  Tensor t;
  t.dtype = dtype;
  t.data = data;
  t.ndim = static_cast<int>(shape.size());
  int64_t stride = static_cast<int64_t>(DTypeSize(dtype));
  for (int i = t.ndim - 1; i >= 0; --i) {
    t.shape[i] = shape[static_cast<size_t>(i)];
    t.strides[i] = stride;
    stride *= t.shape[i];
  }
  return t;
}

}  // namespace

Result<Weights> Weights::Open(const std::string& path) {
  DS_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> checkpoint, Checkpoint::Open(path));
  return Weights(std::move(checkpoint));
}

Weights::Weights(std::unique_ptr<Checkpoint> checkpoint) : checkpoint_(std::move(checkpoint)) {}

bool Weights::Has(std::string_view name) const { return checkpoint_->find(name) != nullptr; }

Result<std::vector<int64_t>> Weights::Shape(std::string_view name) const {
  const SafetensorsEntry* e = checkpoint_->find(name);
  if (e == nullptr) return Error(Code::kModel, "{}: no tensor '{}'", checkpoint_->path(), name);
  return e->shape;
}

Result<Tensor> Weights::GetStored(std::string_view name, const std::vector<int64_t>& expected_shape, StoredF32 f32) {
  const SafetensorsEntry* e = checkpoint_->find(name);
  const std::optional<DType> stored = e != nullptr ? FloatDType(e->dtype) : std::nullopt;
  // Get: float32 copies by request, non-float dtypes and wrong shapes (its errors name them).
  if (!stored || e->shape != expected_shape || (*stored == DType::kF32 && f32 == StoredF32::kCopy)) {
    return Get(name, expected_shape);
  }
  Tensor t = Contiguous(const_cast<uint8_t*>(e->data), *stored, e->shape);
  viewed_.emplace(name);
  return t;
}

Result<Tensor> Weights::Get(std::string_view name, const std::vector<int64_t>& expected_shape) {
  const SafetensorsEntry* e = checkpoint_->find(name);
  if (e == nullptr) {
    return Error(Code::kModel, "{}: missing tensor '{}' (expected shape {})", checkpoint_->path(), name,
                 ShapeString(expected_shape));
  }
  if (e->shape != expected_shape) {
    return Error(Code::kModel, "{}: tensor '{}' has shape {} but the model expects {}", e->file, name,
                 e->shape_string(), ShapeString(expected_shape));
  }
  auto it = loaded_.find(name);
  if (it != loaded_.end()) return Contiguous(it->second.buffer.data(), DType::kF32, it->second.shape);
  DS_ASSIGN_OR_RETURN(const Loaded* loaded, Load(*e));
  return Contiguous(loaded->buffer.data(), DType::kF32, loaded->shape);
}

Result<const Weights::Loaded*> Weights::Load(const SafetensorsEntry& e) {
  Loaded loaded;
  const size_t count = static_cast<size_t>(e.numel());
  try {
    loaded.buffer = HostBuffer(count);
  } catch (const std::bad_alloc&) {
    return Error(Code::kOutOfMemory, "{}: tensor '{}': cannot allocate {} bytes of float32", e.file, e.name,
                 count * sizeof(float));
  }
  DS_TRY(ConvertToF32(e, loaded.buffer.data()));
  loaded.shape = e.shape;
  auto [slot, inserted] = loaded_.emplace(std::string(e.name), std::move(loaded));
  (void)inserted;  // Get only loads names not loaded yet
  return &slot->second;
}

std::vector<std::string> Weights::Unused() const {
  std::vector<std::string> out;
  for (const std::string& name : checkpoint_->names()) {
    if (!loaded_.contains(name) && !viewed_.contains(name)) out.push_back(name);
  }
  return out;
}

}  // namespace ds
