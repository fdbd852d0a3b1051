#include "core/safetensors.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/tensor.h"
#include "core/text_file.h"

namespace ds {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Tensor bytes are copied as they lie in the file, which is little-endian by specification.
static_assert(std::endian::native == std::endian::little, "safetensors loading assumes little-endian");

// The reference implementation's limit; it also keeps a corrupt length from driving a huge parse.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DTypeInfo {
  StDType type;
  const char* name;
  size_t size;
};

// Indexed by StDType.
constexpr DTypeInfo kDTypes[] = {
    {StDType::kBool, "BOOL", 1},      {StDType::kU8, "U8", 1},          {StDType::kI8, "I8", 1},
    {StDType::kF8E5M2, "F8_E5M2", 1}, {StDType::kF8E4M3, "F8_E4M3", 1}, {StDType::kI16, "I16", 2},
    {StDType::kU16, "U16", 2},        {StDType::kF16, "F16", 2},        {StDType::kBF16, "BF16", 2},
    {StDType::kI32, "I32", 4},        {StDType::kU32, "U32", 4},        {StDType::kF32, "F32", 4},
    {StDType::kF64, "F64", 8},        {StDType::kI64, "I64", 8},        {StDType::kU64, "U64", 8},
};

constexpr bool TableFollowsEnum() {
  for (size_t i = 0; i < std::size(kDTypes); ++i) {
    if (static_cast<size_t>(kDTypes[i].type) != i) return false;
  }
  return true;
}
static_assert(TableFollowsEnum());

const DTypeInfo* FindDType(std::string_view name) {
  for (const DTypeInfo& d : kDTypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

std::string ShapeString(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// A JSON integer that fits int64 and is not negative; `what` names it for the error.
Result<int64_t> NonNegativeInt(const json& v, std::string_view file, std::string_view tensor, std::string_view what,
                               const json& whole) {
  if (v.is_number_unsigned() && v.get<uint64_t>() <= uint64_t{std::numeric_limits<int64_t>::max()}) {
    return static_cast<int64_t>(v.get<uint64_t>());
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return v.get<int64_t>();
  return Error(Code::kModel, "{}: tensor '{}': {} {} must hold non-negative integers, got {}", file, tensor, what,
               DescribeJson(whole), DescribeJson(v));
}

const json* Member(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

Result<StDType> ParseDType(const json& entry, std::string_view file, std::string_view tensor) {
  const json* v = Member(entry, "dtype");
  if (v == nullptr) return Error(Code::kModel, "{}: tensor '{}' has no 'dtype'", file, tensor);
  if (!v->is_string()) {
    return Error(Code::kModel, "{}: tensor '{}': 'dtype' must be a string, got {}", file, tensor, DescribeJson(*v));
  }
  const DTypeInfo* d = FindDType(v->get_ref<const std::string&>());
  if (d == nullptr) {
    return Error(Code::kModel, "{}: tensor '{}' has unknown dtype {}", file, tensor, DescribeJson(*v));
  }
  return d->type;
}

Result<std::vector<int64_t>> ParseShape(const json& entry, std::string_view file, std::string_view tensor) {
  const json* v = Member(entry, "shape");
  if (v == nullptr) return Error(Code::kModel, "{}: tensor '{}' has no 'shape'", file, tensor);
  if (!v->is_array()) {
    return Error(Code::kModel, "{}: tensor '{}': 'shape' must be an array, got {}", file, tensor, DescribeJson(*v));
  }
  if (v->size() > static_cast<size_t>(kMaxDims)) {
    return Error(Code::kUnsupported, "{}: tensor '{}' has {} dims {}; at most {} are supported", file, tensor,
                 v->size(), DescribeJson(*v), kMaxDims);
  }
  std::vector<int64_t> shape;
  for (const json& d : *v) {
    DS_ASSIGN_OR_RETURN(int64_t n, NonNegativeInt(d, file, tensor, "shape", *v));
    shape.push_back(n);
  }
  return shape;
}

struct Range {
  uint64_t begin = 0;
  uint64_t end = 0;
};

Result<Range> ParseOffsets(const json& entry, std::string_view file, std::string_view tensor) {
  const json* v = Member(entry, "data_offsets");
  if (v == nullptr) return Error(Code::kModel, "{}: tensor '{}' has no 'data_offsets'", file, tensor);
  if (!v->is_array() || v->size() != 2) {
    return Error(Code::kModel, "{}: tensor '{}': 'data_offsets' must be [begin, end], got {}", file, tensor,
                 DescribeJson(*v));
  }
  DS_ASSIGN_OR_RETURN(int64_t begin, NonNegativeInt((*v)[0], file, tensor, "data_offsets", *v));
  DS_ASSIGN_OR_RETURN(int64_t end, NonNegativeInt((*v)[1], file, tensor, "data_offsets", *v));
  if (begin > end) {
    return Error(Code::kModel, "{}: tensor '{}': data_offsets [{}, {}] begin after end", file, tensor, begin, end);
  }
  return Range{static_cast<uint64_t>(begin), static_cast<uint64_t>(end)};
}

// Byte size of shape × dtype; false when the product of the non-zero dims times 8 (the widest
// element) leaves int64. Zero dims are skipped so that an empty tensor cannot carry huge other dims:
// numel(), the float32 conversion and every later stride computation are then safe whatever the
// dtype they use and however the dims are ordered.
bool ByteSize(const std::vector<int64_t>& shape, size_t elem, uint64_t* out) {
  int64_t bound = 8, n = static_cast<int64_t>(elem);
  for (int64_t d : shape) {
    if (d != 0 && __builtin_mul_overflow(bound, d, &bound)) return false;
    n *= d;  // |n| <= bound: cannot overflow
  }
  *out = static_cast<uint64_t>(n);
  return true;
}

struct ParsedEntry {
  SafetensorsEntry entry;
  Range range;
};

Result<ParsedEntry> ParseEntry(const json& v, std::string_view file, std::string_view name, const uint8_t* data,
                               uint64_t data_size) {
  if (!v.is_object()) {
    return Error(Code::kModel, "{}: tensor '{}' must be an object, got {}", file, name, DescribeJson(v));
  }
  ParsedEntry p;
  DS_ASSIGN_OR_RETURN(p.entry.dtype, ParseDType(v, file, name));
  DS_ASSIGN_OR_RETURN(p.entry.shape, ParseShape(v, file, name));
  DS_ASSIGN_OR_RETURN(p.range, ParseOffsets(v, file, name));
  const char* dtype = StDTypeName(p.entry.dtype);
  uint64_t need = 0;
  if (!ByteSize(p.entry.shape, StDTypeSize(p.entry.dtype), &need)) {
    return Error(Code::kModel, "{}: tensor '{}': shape {} × {} overflows 64-bit sizes", file, name,
                 ShapeString(p.entry.shape), dtype);
  }
  uint64_t span = p.range.end - p.range.begin;
  if (need != span) {
    return Error(Code::kModel, "{}: tensor '{}': shape {} × {} needs {} bytes but data_offsets span {}", file, name,
                 ShapeString(p.entry.shape), dtype, need, span);
  }
  if (p.range.end > data_size) {
    return Error(Code::kModel, "{}: tensor '{}': data_offsets [{}, {}] run past the {}-byte data section", file, name,
                 p.range.begin, p.range.end, data_size);
  }
  p.entry.file = file;
  p.entry.data = data + p.range.begin;
  p.entry.nbytes = static_cast<size_t>(span);
  return p;
}

Status ParseMetadata(const json& v, std::string_view file, std::map<std::string, std::string, std::less<>>* out) {
  if (!v.is_object()) {
    return Error(Code::kModel, "{}: '__metadata__' must be an object, got {}", file, DescribeJson(v));
  }
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it.value().is_string()) {
      return Error(Code::kModel, "{}: '__metadata__' entry '{}' must be a string, got {}", file, it.key(),
                   DescribeJson(it.value()));
    }
    (*out)[it.key()] = it.value().get<std::string>();
  }
  return Status::Ok();
}

struct NamedRange {
  Range range;
  std::string_view name;
};

// Overlapping tensors would alias each other's storage: a sign of a corrupt or hand-edited file.
// Empty ranges hold no bytes, so they cannot overlap anything.
Status CheckNoOverlap(std::vector<NamedRange> ranges, std::string_view file) {
  std::erase_if(ranges, [](const NamedRange& r) { return r.range.begin == r.range.end; });
  std::sort(ranges.begin(), ranges.end(),
            [](const NamedRange& a, const NamedRange& b) { return a.range.begin < b.range.begin; });
  for (size_t i = 1; i < ranges.size(); ++i) {
    const NamedRange& a = ranges[i - 1];
    const NamedRange& b = ranges[i];
    if (b.range.begin < a.range.end) {
      return Error(Code::kModel, "{}: tensors '{}' [{}, {}) and '{}' [{}, {}) overlap", file, a.name, a.range.begin,
                   a.range.end, b.name, b.range.begin, b.range.end);
    }
  }
  return Status::Ok();
}

Status ParseHeader(std::string_view file, std::string_view header, const uint8_t* data, uint64_t data_size,
                   std::map<std::string, SafetensorsEntry, std::less<>>* entries,
                   std::map<std::string, std::string, std::less<>>* metadata) {
  DS_ASSIGN_OR_RETURN(json root, ParseJsonText(header, file, "the header"));
  if (!root.is_object()) {
    return Error(Code::kModel, "{}: the header must be a JSON object, got {}", file, root.type_name());
  }
  std::vector<NamedRange> ranges;
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "__metadata__") {
      DS_TRY(ParseMetadata(it.value(), file, metadata));
      continue;
    }
    DS_ASSIGN_OR_RETURN(ParsedEntry p, ParseEntry(it.value(), file, it.key(), data, data_size));
    auto [slot, inserted] = entries->emplace(it.key(), std::move(p.entry));
    (void)inserted;  // JSON object keys are unique after parsing
    slot->second.name = slot->first;
    ranges.push_back({p.range, slot->first});
  }
  return CheckNoOverlap(std::move(ranges), file);
}

// Maps the whole file read-only. MAP_PRIVATE keeps our view a snapshot as far as the OS allows.
Status MapFile(const std::string& path, void** map, size_t* size) {
  // O_NONBLOCK: a FIFO in place of a model file must fail below, not block open() for ever.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return Error(Code::kIo, "{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  Status status;
  if (::fstat(fd, &st) != 0) {
    status = Error(Code::kIo, "{}: cannot stat: {}", path, std::strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    status = Error(Code::kIo, "{}: not a regular file", path);
  } else if (st.st_size < 8) {
    status = Error(Code::kModel, "{}: file is {} bytes, too short for the 8-byte header length", path, st.st_size);
  } else {
    *size = static_cast<size_t>(st.st_size);
    *map = ::mmap(nullptr, *size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (*map == MAP_FAILED) {
      *map = nullptr;
      status = Error(Code::kIo, "{}: cannot map {} bytes: {}", path, *size, std::strerror(errno));
    }
  }
  ::close(fd);
  return status;
}

uint64_t ReadLittleEndian64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

constexpr std::string_view kIndexSuffix = ".safetensors.index.json";

std::string JoinNames(const std::vector<std::string>& names) { return fmt::format("{}", fmt::join(names, ", ")); }

// A folder holds one checkpoint: a single index (with its shards beside it) or a single file.
Result<std::string> ResolveFolder(const std::string& dir) {
  std::vector<std::string> indexes, files;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (EndsWith(name, kIndexSuffix)) indexes.push_back(name);
    if (EndsWith(name, ".safetensors")) files.push_back(name);
  }
  if (ec) return Error(Code::kIo, "{}: cannot list the folder: {}", dir, ec.message());
  std::sort(indexes.begin(), indexes.end());
  std::sort(files.begin(), files.end());
  if (indexes.size() > 1) {
    return Error(Code::kModel, "{}: several checkpoint indexes ({}); keep one of them in the folder", dir,
                 JoinNames(indexes));
  }
  if (indexes.size() == 1) return (fs::path(dir) / indexes[0]).string();
  if (files.size() > 1) {
    return Error(Code::kModel, "{}: several .safetensors files ({}) and no *{} saying which holds what", dir,
                 JoinNames(files), kIndexSuffix);
  }
  if (files.empty()) {
    return Error(Code::kIo, "{}: no .safetensors file or *{} in the folder", dir, kIndexSuffix);
  }
  return (fs::path(dir) / files[0]).string();
}

// weight_map: tensor name → shard file name, read as shard → its tensors.
Result<std::map<std::string, std::vector<std::string>>> ReadWeightMap(const std::string& index) {
  DS_ASSIGN_OR_RETURN(std::string text, ReadTextFile(index));
  DS_ASSIGN_OR_RETURN(json root, ParseJsonText(text, index));
  const json* map = root.is_object() ? Member(root, "weight_map") : nullptr;
  if (map == nullptr || !map->is_object()) {
    return Error(Code::kModel, "{}: expected an object with a 'weight_map' object", index);
  }
  std::map<std::string, std::vector<std::string>> shards;
  for (auto it = map->begin(); it != map->end(); ++it) {
    if (!it.value().is_string()) {
      return Error(Code::kModel, "{}: weight_map entry '{}' must name a shard file, got {}", index, it.key(),
                   DescribeJson(it.value()));
    }
    // Shards live beside their index: a path that leaves the folder would let a downloaded index
    // make us open any file on the machine.
    const std::string shard = it.value().get<std::string>();
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..") {
      return Error(Code::kModel, "{}: weight_map entry '{}' names '{}', which is not a file name beside the index",
                   index, it.key(), shard);
    }
    shards[shard].push_back(it.key());
  }
  return shards;
}

}  // namespace

size_t StDTypeSize(StDType t) { return kDTypes[static_cast<size_t>(t)].size; }
const char* StDTypeName(StDType t) { return kDTypes[static_cast<size_t>(t)].name; }

int64_t SafetensorsEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string SafetensorsEntry::shape_string() const { return ShapeString(shape); }

std::optional<DType> FloatDType(StDType t) {
  switch (t) {
    case StDType::kF32:
      return DType::kF32;
    case StDType::kF16:
      return DType::kF16;
    case StDType::kBF16:
      return DType::kBF16;
    case StDType::kF8E4M3:
      return DType::kF8E4M3;
    case StDType::kF8E5M2:
      return DType::kF8E5M2;
    default:
      return std::nullopt;
  }
}

Status ConvertToF32(const SafetensorsEntry& e, float* out) {
  const std::optional<DType> dtype = FloatDType(e.dtype);
  if (!dtype) {
    return Error(Code::kUnsupported,
                 "{}: tensor '{}' has dtype {}; only F32, F16, BF16, F8_E4M3 and F8_E5M2 convert to float", e.file,
                 e.name, StDTypeName(e.dtype));
  }
  // The mapping gives no alignment guarantee: WidenToF32 reads through memcpy.
  WidenToF32(e.data, *dtype, out, 0, static_cast<size_t>(e.numel()));
  return Status::Ok();
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  DS_TRY(MapFile(path, &f->map_, &f->map_size_));
  const auto* base = static_cast<const uint8_t*>(f->map_);
  const uint64_t header_len = ReadLittleEndian64(base);
  const uint64_t rest = f->map_size_ - 8;
  if (header_len > kMaxHeaderBytes) {
    return Error(Code::kModel, "{}: header length {} exceeds the {}-byte limit", path, header_len, kMaxHeaderBytes);
  }
  if (header_len > rest) {
    return Error(Code::kModel, "{}: header length {} exceeds the {} bytes after the length field", path, header_len,
                 rest);
  }
  std::string_view header(reinterpret_cast<const char*>(base + 8), header_len);
  DS_TRY(ParseHeader(f->path_, header, base + 8 + header_len, rest - header_len, &f->entries_, &f->metadata_));
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& [name, entry] : entries_) out.push_back(name);
  return out;
}

const SafetensorsEntry* SafetensorsFile::find(std::string_view name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

Result<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& path) {
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) {
    return Error(Code::kIo, "{}: {}", path, ec ? ec.message() : "no such file or folder");
  }
  std::string target = path;
  if (fs::is_directory(st)) {
    DS_ASSIGN_OR_RETURN(target, ResolveFolder(path));
  }
  std::unique_ptr<Checkpoint> c(new Checkpoint());
  c->path_ = target;
  DS_TRY(EndsWith(target, ".json") ? c->OpenIndex(target) : c->OpenSingle(target));
  return c;
}

Status Checkpoint::OpenSingle(const std::string& file) {
  DS_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> shard, SafetensorsFile::Open(file));
  for (const std::string& name : shard->names()) tensors_[name] = shard->find(name);
  shards_.push_back(std::move(shard));
  return Status::Ok();
}

Status Checkpoint::OpenIndex(const std::string& index) {
  DS_ASSIGN_OR_RETURN(auto shard_tensors, ReadWeightMap(index));
  const fs::path dir = fs::path(index).parent_path();
  for (const auto& [shard_name, tensors] : shard_tensors) {
    const std::string shard_path = (dir / shard_name).string();
    std::error_code ec;
    if (!fs::exists(shard_path, ec)) {
      return Error(Code::kIo, "{}: shard '{}' (holding '{}'{}) does not exist at {}", index, shard_name, tensors[0],
                   tensors.size() > 1 ? fmt::format(" and {} more", tensors.size() - 1) : "", shard_path);
    }
    DS_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> shard, SafetensorsFile::Open(shard_path));
    for (const std::string& name : tensors) {
      const SafetensorsEntry* e = shard->find(name);
      if (e == nullptr) {
        return Error(Code::kModel, "{}: weight_map puts tensor '{}' in shard '{}', but {} lacks it", index, name,
                     shard_name, shard_path);
      }
      tensors_[name] = e;
    }
    shards_.push_back(std::move(shard));
  }
  return Status::Ok();
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [name, entry] : tensors_) out.push_back(name);
  return out;
}

const SafetensorsEntry* Checkpoint::find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second;
}

}  // namespace ds
