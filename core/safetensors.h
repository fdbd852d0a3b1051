// Reading safetensors checkpoints: one file, a sharded set behind a *.safetensors.index.json, or a
// folder holding either. Files are memory-mapped and validated completely on open, so every later
// access stays inside checked byte ranges and a bad model file yields a Status, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace ds {

// Every dtype the safetensors format defines. Only the float ones (F32, F16, BF16, F8) convert; the
// others are still readable as raw bytes, so a checkpoint carrying e.g. an I64 step counter still
// opens.
enum class StDType : uint8_t {
  kBool,
  kU8,
  kI8,
  kF8E5M2,
  kF8E4M3,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kF64,
  kI64,
  kU64,
};

size_t StDTypeSize(StDType t);
const char* StDTypeName(StDType t);  // the spelling used in the file: "F32", "BF16", ...

struct SafetensorsEntry {
  std::string_view file;  // path of the file holding it, for error messages
  std::string_view name;
  StDType dtype = StDType::kF32;
  std::vector<int64_t> shape;     // 0 dims = scalar
  const uint8_t* data = nullptr;  // inside the mapping, validated to hold nbytes
  size_t nbytes = 0;

  int64_t numel() const;
  std::string shape_string() const;  // "[192, 144]"
};

// Converts e's values to float32 into out[0 .. e.numel()). kUnsupported for non-float dtypes.
Status ConvertToF32(const SafetensorsEntry& e, float* out);
// The engine's DType of a float dtype (F32, F16, BF16, F8_E4M3, F8_E5M2); nullopt for the others.
std::optional<DType> FloatDType(StDType t);

class SafetensorsFile {
 public:
  static Result<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;                     // sorted
  const SafetensorsEntry* find(std::string_view name) const;  // null when absent
  const std::map<std::string, std::string, std::less<>>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;

  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::map<std::string, SafetensorsEntry, std::less<>> entries_;
  std::map<std::string, std::string, std::less<>> metadata_;
};

// A checkpoint: path is a .safetensors file, a *.safetensors.index.json (shards resolved relative
// to its folder), or a folder holding exactly one of either.
class Checkpoint {
 public:
  static Result<std::unique_ptr<Checkpoint>> Open(const std::string& path);

  const std::string& path() const { return path_; }           // the file or index actually opened
  std::vector<std::string> names() const;                     // sorted, across all shards
  const SafetensorsEntry* find(std::string_view name) const;  // null when absent
  const std::vector<std::unique_ptr<SafetensorsFile>>& shards() const { return shards_; }

 private:
  Checkpoint() = default;
  Status OpenSingle(const std::string& file);
  Status OpenIndex(const std::string& index);

  std::string path_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, const SafetensorsEntry*, std::less<>> tensors_;
};

}  // namespace ds
