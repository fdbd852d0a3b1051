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
  if (auto n = narrowed_.find(name); n != narrowed_.end() && n->second.shape == expected_shape) {
    return Contiguous(n->second.bits.data(), n->second.dtype, n->second.shape);
  }
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
  if (auto n = narrowed_.find(name); n != narrowed_.end()) {  // the changed values, not the file's
    WidenToF32(n->second.bits.data(), n->second.dtype, loaded->buffer.data(), 0, n->second.bits.size());
  }
  return Contiguous(loaded->buffer.data(), DType::kF32, loaded->shape);
}

Result<Tensor> Weights::Narrow(std::string_view name, DType dtype) {
  if (auto n = narrowed_.find(name); n != narrowed_.end()) {
    // Narrowed once already: views of it are out, so it stays (a float32 copy made since goes).
    if (auto f = loaded_.find(name); f != loaded_.end()) loaded_.erase(f);
    return Contiguous(n->second.bits.data(), n->second.dtype, n->second.shape);
  }
  auto it = loaded_.find(name);
  if (it == loaded_.end() || (dtype != DType::kBF16 && dtype != DType::kF16)) {
    return Error(Code::kInternal, "{}: cannot narrow tensor '{}' to {}", checkpoint_->path(), name, DTypeName(dtype));
  }
  const Loaded& f32 = it->second;
  Narrowed n{std::vector<uint16_t>(f32.buffer.size()), dtype, f32.shape};
  const float* src = f32.buffer.data();
  for (size_t i = 0; i < n.bits.size(); ++i) {
    n.bits[i] = dtype == DType::kBF16 ? FloatToBFloat16(src[i]) : FloatToHalf(src[i]);
  }
  std::string key = it->first;
  loaded_.erase(it);
  viewed_.insert(key);  // used, for Unused()
  Narrowed& slot = narrowed_.insert_or_assign(std::move(key), std::move(n)).first->second;
  return Contiguous(slot.bits.data(), slot.dtype, slot.shape);
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
