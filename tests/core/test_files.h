// Helpers that build safetensors files (good and deliberately broken) in a per-test temporary
// folder, so the tests need no committed binary fixtures.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ds::test {

using Bytes = std::vector<uint8_t>;

// gmock is optional in this build, so substring checks use a plain gtest predicate that prints
// the whole message on failure.
inline ::testing::AssertionResult HasSubstr(std::string_view text, std::string_view part) {
  if (text.find(part) != std::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\"\n  lacks \"" << part << "\"";
}

template <typename T>
Bytes ToBytes(const std::vector<T>& values) {
  Bytes b(values.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), values.data(), b.size());
  return b;
}

inline void WriteFile(const std::string& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  ASSERT_TRUE(out.good()) << path;
}

// header_len overrides the length field, to build files that lie about it.
inline void WriteRaw(const std::string& path, std::string_view header, const Bytes& data = {},
                     std::optional<uint64_t> header_len = std::nullopt) {
  uint64_t n = header_len.value_or(header.size());
  std::string content(8, '\0');
  for (int i = 0; i < 8; ++i)
    content[static_cast<size_t>(i)] = static_cast<char>(n >> (8 * i) & 0xff);
  content += header;
  content.append(data.begin(), data.end());
  WriteFile(path, content);
}

struct TensorSpec {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  Bytes bytes;
};

// A well-formed file: tensors laid out back to back in the given order, header padded with spaces
// to a multiple of 8 bytes as the reference writer does.
inline void WriteSafetensors(const std::string& path, const std::vector<TensorSpec>& tensors,
                             const std::map<std::string, std::string>& metadata = {}) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  Bytes data;
  for (const TensorSpec& t : tensors) {
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data.insert(data.end(), t.bytes.begin(), t.bytes.end());
  }
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');
  WriteRaw(path, text, data);
}

// Each test gets a fresh folder, removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ds_core_test_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string Path(std::string_view name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
};

}  // namespace ds::test
