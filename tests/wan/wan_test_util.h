// Shared by the Wan suites: the fixtures written by tools/wan/make_fixtures.py (a tiny random
// Wan2.1 in the diffusers layout under tiny/, its transformer and VAE under the original names in
// original/, diffusers' outputs in expected.safetensors, the rest in cases.json).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "core/wan/wan_transformer.h"
#include "kernels/registry.h"
#include "tests/core/test_files.h"

namespace ds::wan_test {

inline std::string FixtureDir() {
  const char* root = std::getenv("DS_SOURCE_ROOT");
  return std::string(root ? root : ".") + "/tests/fixtures/wan";
}

inline nlohmann::json Cases() {
  std::ifstream in(FixtureDir() + "/cases.json");
  std::stringstream text;
  text << in.rdbuf();
  return nlohmann::json::parse(text.str());
}

// A tensor of expected.safetensors as float32, with its shape.
struct Expected {
  std::vector<float> values;
  std::vector<int64_t> shape;
};

// A tensor of a safetensors file as float32, with its shape.
inline Expected LoadFrom(const SafetensorsFile& file, const std::string& name) {
  Expected e;
  const SafetensorsEntry* entry = file.find(name);
  EXPECT_NE(entry, nullptr) << name;
  if (entry == nullptr) return e;
  e.shape = entry->shape;
  e.values.resize(static_cast<size_t>(entry->numel()));
  EXPECT_TRUE(ConvertToF32(*entry, e.values.data()).ok());
  return e;
}

inline Expected Load(const std::string& name) {
  static std::unique_ptr<SafetensorsFile> file = [] {
    auto f = SafetensorsFile::Open(FixtureDir() + "/expected.safetensors");
    EXPECT_TRUE(f.ok()) << f.status().message();
    return f.ok() ? std::move(*f) : nullptr;
  }();
  EXPECT_NE(file, nullptr);
  return file ? LoadFrom(*file, name) : Expected{};
}

// max |got − want| / max |want|.
inline double RelError(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num = std::max(num, static_cast<double>(std::abs(got[i] - want[i])));
    den = std::max(den, static_cast<double>(std::abs(want[i])));
  }
  return num / den;
}

inline std::unique_ptr<Backend> MakeBackend(const char* device = "cpu") {
  auto be = CreateBackend(device, 2);
  EXPECT_TRUE(be.ok()) << be.status().message();
  return be.ok() ? std::move(*be) : nullptr;
}

// The tokenizer needs libsentencepiece; a build without it skips what depends on it.
#ifdef DS_HAVE_SENTENCEPIECE
#define DS_REQUIRE_SENTENCEPIECE() (void)0
#else
#define DS_REQUIRE_SENTENCEPIECE() GTEST_SKIP() << "built without libsentencepiece"
#endif

// Rewrites a checkpoint as one safetensors file, each tensor passed through `edit` (which may
// rename it, change its shape or dtype, or drop it by returning nullopt); `extra` are appended.
inline void Rewrite(const std::string& src, const std::string& dst,
                    const std::function<std::optional<test::TensorSpec>(test::TensorSpec)>& edit,
                    std::vector<test::TensorSpec> extra = {}) {
  auto ck = Checkpoint::Open(src);
  ASSERT_TRUE(ck.ok()) << ck.status().message();
  std::vector<test::TensorSpec> out;
  for (const std::string& name : (*ck)->names()) {
    const SafetensorsEntry* e = (*ck)->find(name);
    test::TensorSpec t{name, StDTypeName(e->dtype), e->shape, test::Bytes(e->data, e->data + e->nbytes)};
    if (auto edited = edit(std::move(t))) out.push_back(std::move(*edited));
  }
  for (test::TensorSpec& t : extra) out.push_back(std::move(t));
  test::WriteSafetensors(dst, out);
}

// Appends tensors to a safetensors file (rewritten through a temporary: the file stays mapped while
// it is read).
inline void AppendTensors(const std::string& path, std::vector<test::TensorSpec> extra) {
  if (extra.empty()) return;
  const std::string tmp = path + ".tmp";
  std::filesystem::rename(path, tmp);
  Rewrite(
      tmp, path, [](test::TensorSpec s) { return std::optional<test::TensorSpec>(std::move(s)); }, std::move(extra));
  std::filesystem::remove(tmp);
}

inline ::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\"\n  lacks \"" << part << "\"";
}

// One forward of `m` on `be` at a small fixed geometry and random inputs (seeded).
inline std::vector<float> SmallForward(WanTransformer& m, Backend& be) {
  const WanTransformerConfig& c = m.config();
  const int T = 2, H = 4, W = 6, L = 8;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  std::vector<float> latent(static_cast<size_t>(c.in_channels) * T * H * W), ctx(static_cast<size_t>(L) * c.text_dim);
  for (float& v : latent) v = nd(rng);
  for (float& v : ctx) v = nd(rng);
  std::vector<float> out(latent.size(), std::nanf(""));
  const Status s = m.Forward(be, latent.data(), T, H, W, 640.0f, ctx.data(), L, out.data());
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

}  // namespace ds::wan_test
