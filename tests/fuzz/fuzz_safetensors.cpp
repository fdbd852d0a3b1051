// Fuzz target: a safetensors file (the whole input) opened as a model file. Checks beyond "no
// crash": every error names the file; every tensor SafetensorsFile::Open accepts lies inside the file
// where its header says, with shape × dtype bytes; Weights::Get converts F32/F16/BF16 to the values
// an independent decoder gets, refuses other dtypes and wrong shapes, and returns stable storage.
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "core/weights.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using ds::StDType;

float HalfReference(uint16_t h) {
  const int exponent = (h >> 10) & 31, mantissa = h & 1023;
  float v;
  if (exponent == 0)
    v = std::ldexp(static_cast<float>(mantissa), -24);
  else if (exponent == 31)
    v = mantissa ? std::nanf("") : INFINITY;
  else
    v = std::ldexp(static_cast<float>(mantissa + 1024), exponent - 25);
  return (h & 0x8000) ? -v : v;
}

float BFloat16Reference(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

// OCP E4M3 ("fn"): bias 7, subnormals at exponent 0, S.1111.111 the only NaN, no infinities.
float E4M3Reference(uint8_t b) {
  const int exponent = (b >> 3) & 15, mantissa = b & 7;
  float v;
  if (exponent == 15 && mantissa == 7)
    v = std::nanf("");
  else if (exponent == 0)
    v = std::ldexp(static_cast<float>(mantissa), -9);
  else
    v = std::ldexp(static_cast<float>(mantissa + 8), exponent - 10);
  return (b & 0x80) ? -v : v;
}

bool SameFloat(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return a == b && std::signbit(a) == std::signbit(b);
}

void CheckConversion(const ds::SafetensorsEntry& e, const float* got) {
  const size_t n = static_cast<size_t>(e.numel());
  for (size_t i = 0; i < n; ++i) {
    float want;
    if (e.dtype == StDType::kF32) {
      std::memcpy(&want, e.data + 4 * i, 4);
      uint32_t a, b;
      std::memcpy(&a, &want, 4);
      std::memcpy(&b, got + i, 4);
      FUZZ_CHECK(a == b, "tensor '%.*s' element %zu: F32 bits changed", int(e.name.size()), e.name.data(), i);
      continue;
    }
    if (e.dtype == StDType::kF8E4M3 || e.dtype == StDType::kF8E5M2) {
      const uint8_t b = e.data[i];
      want = e.dtype == StDType::kF8E5M2 ? HalfReference(static_cast<uint16_t>(b << 8)) : E4M3Reference(b);
      FUZZ_CHECK(SameFloat(want, got[i]), "tensor '%.*s' element %zu: byte 0x%02x gave %g, want %g", int(e.name.size()),
                 e.name.data(), i, b, double(got[i]), double(want));
      continue;
    }
    uint16_t bits;
    std::memcpy(&bits, e.data + 2 * i, 2);
    want = e.dtype == StDType::kF16 ? HalfReference(bits) : BFloat16Reference(bits);
    FUZZ_CHECK(SameFloat(want, got[i]), "tensor '%.*s' element %zu: bits 0x%04x gave %g, want %g", int(e.name.size()),
               e.name.data(), i, bits, double(got[i]), double(want));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ds::fuzz::MemFile file;
  file.Set(data, size);
  auto opened = ds::SafetensorsFile::Open(file.path());
  if (!opened.ok()) {
    FUZZ_CHECK(ds::fuzz::Contains(opened.status().message(), file.path()), "error does not name the file: %s",
               opened.status().message().c_str());
    return 0;
  }
  const ds::SafetensorsFile& st = **opened;

  // The oracle for where each tensor lies: the header as plain JSON.
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | data[i];
  const nlohmann::json header = nlohmann::json::parse(data + 8, data + 8 + header_len);
  const uint64_t data_start = 8 + header_len;
  for (const std::string& name : st.names()) {
    const ds::SafetensorsEntry* e = st.find(name);
    FUZZ_CHECK(e != nullptr && e->name == name, "names() lists '%s' but find() disagrees", name.c_str());
    const uint64_t begin = header.at(name).at("data_offsets").at(0).get<uint64_t>();
    uint64_t want_bytes = ds::StDTypeSize(e->dtype);
    for (int64_t d : e->shape) want_bytes *= static_cast<uint64_t>(d);
    FUZZ_CHECK(e->nbytes == want_bytes, "tensor '%s': %zu bytes for shape %s", name.c_str(), e->nbytes,
               e->shape_string().c_str());
    FUZZ_CHECK(data_start + begin + e->nbytes <= size, "tensor '%s' runs past the file", name.c_str());
    FUZZ_CHECK(e->nbytes == 0 || std::memcmp(e->data, data + data_start + begin, e->nbytes) == 0,
               "tensor '%s' does not read the bytes its data_offsets name", name.c_str());
  }

  // The same file through Checkpoint and Weights, as Model::Load reads it.
  auto checkpoint = ds::Checkpoint::Open(file.path());
  FUZZ_CHECK(checkpoint.ok(), "SafetensorsFile opens but Checkpoint fails: %s", checkpoint.status().message().c_str());
  ds::Weights weights(std::move(*checkpoint));
  std::vector<std::string> unconvertible;
  for (const std::string& name : st.names()) {
    const ds::SafetensorsEntry* e = weights.checkpoint().find(name);
    const bool is_float = e->dtype == StDType::kF32 || e->dtype == StDType::kF16 || e->dtype == StDType::kBF16 ||
                          e->dtype == StDType::kF8E4M3 || e->dtype == StDType::kF8E5M2;
    std::vector<int64_t> wrong = e->shape;
    wrong.push_back(1);
    auto mismatch = weights.Get(name, wrong);
    FUZZ_CHECK(!mismatch.ok() && mismatch.status().code() == ds::Code::kModel, "tensor '%s': a wrong shape is accepted",
               name.c_str());
    auto t = weights.Get(name, e->shape);
    if (!is_float) {
      FUZZ_CHECK(!t.ok() && t.status().code() == ds::Code::kUnsupported, "tensor '%s' of dtype %s converts",
                 name.c_str(), ds::StDTypeName(e->dtype));
      unconvertible.push_back(name);
      continue;
    }
    FUZZ_CHECK(t.ok(), "tensor '%s' does not load: %s", name.c_str(), t.status().message().c_str());
    FUZZ_CHECK(t->numel() == e->numel() && t->contiguous(), "tensor '%s': bad view", name.c_str());
    CheckConversion(*e, t->f32());
    auto again = weights.Get(name, e->shape);
    FUZZ_CHECK(again.ok() && again->data == t->data, "tensor '%s': a second Get moved the storage", name.c_str());
  }
  FUZZ_CHECK(weights.Unused() == unconvertible, "Unused() lists tensors that were loaded");
  return 0;
}
