// DiT forward: every block kind and position encoding, on the optimized CPU backend against the
// naive reference backend, plus determinism and sensitivity to each input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "core/model.h"
#include "kernels/registry.h"
#include "tests/support/random_model.h"

namespace ds {
namespace {

struct Case {
  const char* kind;
  const char* pos;
};

class DitForward : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ds_dit_" + std::string(GetParam().kind) + "_" + GetParam().pos + "_" + std::to_string(::getpid()));
    testing::RandomModelSpec spec;
    spec.block_kind = GetParam().kind;
    spec.pos = GetParam().pos;
    ASSERT_EQ(testing::WriteRandomModel(dir_.string(), spec, 7), "");
    auto m = Model::Load(dir_.string());
    ASSERT_TRUE(m.ok()) << m.status().message();
    model_ = std::move(*m);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs a CFG-batched forward of two items (different texts) on the named backend.
  std::vector<float> Run(const char* device, const std::vector<float>& latent, float t, int text_shift = 0) {
    auto be = CreateBackend(device, 2);
    EXPECT_TRUE(be.ok());
    const DitConfig& c = model_->config().dit;
    const int L0 = 5, L1 = 1;
    std::vector<float> text(static_cast<size_t>(L0 + L1) * c.text_dim), pooled(2 * c.text_dim);
    std::mt19937 rng(11 + text_shift);
    std::normal_distribution<float> nd;
    for (float& v : text) v = nd(rng);
    for (float& v : pooled) v = nd(rng);
    const size_t n = latent.size() / c.in_channels * c.out_channels;
    std::vector<float> out(2 * n, std::nanf(""));
    DitItem items[2] = {{latent.data(), text.data(), L0, pooled.data(), out.data()},
                        {latent.data(), text.data() + L0 * c.text_dim, L1, pooled.data() + c.text_dim, out.data() + n}};
    Status s = model_->dit().Forward(**be, items, t, T_, H_, W_);
    EXPECT_TRUE(s.ok()) << s.message();
    return out;
  }

  std::vector<float> Latent(uint32_t seed) const {
    const DitConfig& c = model_->config().dit;
    std::vector<float> x(static_cast<size_t>(c.in_channels) * T_ * H_ * W_);
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd;
    for (float& v : x) v = nd(rng);
    return x;
  }

  const int T_ = 4, H_ = 4, W_ = 6;  // a non-square grid catches h/w mix-ups
  std::filesystem::path dir_;
  std::unique_ptr<Model> model_;
};

double MaxRelError(const std::vector<float>& a, const std::vector<float>& b) {
  double max_abs = 0, max_ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_abs = std::max(max_abs, static_cast<double>(std::abs(a[i] - b[i])));
    max_ref = std::max(max_ref, static_cast<double>(std::abs(b[i])));
  }
  return max_abs / max_ref;
}

TEST_P(DitForward, OptimizedMatchesReference) {
  const std::vector<float> x = Latent(3);
  for (float t : {1.0f, 0.5f, 0.02f}) {
    const std::vector<float> ref = Run("reference", x, t), cpu = Run("cpu", x, t);
    for (float v : cpu) ASSERT_TRUE(std::isfinite(v));
    double norm = 0;
    for (float v : ref) norm += std::abs(v);
    ASSERT_GT(norm / ref.size(), 1e-3) << "output must be non-trivial";
    EXPECT_LT(MaxRelError(cpu, ref), 1e-4) << "t=" << t;
  }
}

TEST_P(DitForward, DeterministicAndSensitiveToInputs) {
  const std::vector<float> x = Latent(3);
  const std::vector<float> a = Run("cpu", x, 0.7f), b = Run("cpu", x, 0.7f);
  EXPECT_EQ(a, b);
  EXPECT_NE(Run("cpu", x, 0.3f), a) << "timestep must matter";
  EXPECT_NE(Run("cpu", Latent(4), 0.7f), a) << "latent must matter";
  const size_t half = a.size() / 2;
  std::vector<float> other = Run("cpu", x, 0.7f, 1);
  EXPECT_NE(std::vector<float>(other.begin(), other.begin() + half), std::vector<float>(a.begin(), a.begin() + half))
      << "text must matter";
}

TEST_P(DitForward, BatchedItemsEqualSeparateForwards) {
  // Item 0 of a two-item forward equals a one-item forward: batching must not mix items.
  const std::vector<float> x = Latent(5);
  const std::vector<float> both = Run("cpu", x, 0.4f);
  auto be = CreateBackend("cpu", 1);
  ASSERT_TRUE(be.ok());
  const DitConfig& c = model_->config().dit;
  std::vector<float> text(5 * c.text_dim), pooled(2 * c.text_dim);
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  for (float& v : text) {
    v = nd(rng);
  }
  // Regenerate exactly as Run did: text of both items first, then pooled.
  std::vector<float> all_text(6 * c.text_dim);
  std::mt19937 rng2(11);
  for (float& v : all_text) v = nd(rng2);
  for (float& v : pooled) v = nd(rng2);
  const size_t n = both.size() / 2;
  std::vector<float> out(n);
  DitItem item{x.data(), all_text.data(), 5, pooled.data(), out.data()};
  ASSERT_TRUE(model_->dit().Forward(**be, std::span<const DitItem>(&item, 1), 0.4f, T_, H_, W_).ok());
  EXPECT_LT(MaxRelError(out, std::vector<float>(both.begin(), both.begin() + n)), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Kinds, DitForward,
                         ::testing::Values(Case{"mmdit", "rope3d"}, Case{"mmdit", "sincos3d"}, Case{"cross", "rope3d"},
                                           Case{"dit", "rope3d"}, Case{"dit", "sincos3d"}),
                         [](const auto& info) { return std::string(info.param.kind) + "_" + info.param.pos; });

TEST(DitLoad, RejectsGridNotDivisibleByPatch) {
  const auto dir = std::filesystem::temp_directory_path() / ("ds_dit_grid_" + std::to_string(::getpid()));
  ASSERT_EQ(testing::WriteRandomModel(dir.string(), {}, 1), "");
  auto m = Model::Load(dir.string());
  ASSERT_TRUE(m.ok()) << m.status().message();
  auto be = CreateBackend("cpu", 1);
  std::vector<float> x(5 * 3 * 4 * 4), out(4 * 3 * 4 * 4), pooled(32);
  DitItem item{x.data(), nullptr, 0, pooled.data(), out.data()};
  Status s = (*m)->dit().Forward(**be, std::span<const DitItem>(&item, 1), 0.5f, 3, 4, 4);
  EXPECT_EQ(s.code(), Code::kUnsupported);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ds
