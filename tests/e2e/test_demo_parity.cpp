// Parity of the C++ forward with the PyTorch training code on the exported demo weights: text
// encoder, DiT at several timesteps (one with a continuation prefix) and the frame decoder, against
// fixtures written by tools/demo_model/make_fixtures.py. fp32, relative error ≤ 1e-4.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/model.h"
#include "core/safetensors.h"
#include "kernels/registry.h"

namespace ds {
namespace {

std::string Root() { return std::getenv("DS_SOURCE_ROOT") ? std::getenv("DS_SOURCE_ROOT") : "."; }

class DemoParity : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = Model::Load(Root() + "/models/demo");
    ASSERT_TRUE(m.ok()) << m.status().message();
    model_ = std::move(*m);
    auto f = SafetensorsFile::Open(Root() + "/tests/fixtures/demo_parity/fixtures.safetensors");
    ASSERT_TRUE(f.ok()) << f.status().message();
    fixtures_ = std::move(*f);
    auto be = CreateBackend("cpu", 2);
    ASSERT_TRUE(be.ok());
    be_ = std::move(*be);
  }
  std::vector<float> Floats(const std::string& name) {
    const SafetensorsEntry* e = fixtures_->find(name);
    EXPECT_NE(e, nullptr) << name;
    if (e == nullptr) return {};
    std::vector<float> out(e->numel());
    EXPECT_TRUE(ConvertToF32(*e, out.data()).ok());
    return out;
  }
  std::vector<int> Ids(const std::string& name) {
    const SafetensorsEntry* e = fixtures_->find(name);
    EXPECT_NE(e, nullptr) << name;
    if (e == nullptr) return {};
    EXPECT_EQ(e->dtype, StDType::kI32);
    std::vector<int> ids(e->numel());
    std::memcpy(ids.data(), e->data, ids.size() * 4);
    return ids;
  }
  static double RelError(const std::vector<float>& got, const std::vector<float>& want) {
    EXPECT_EQ(got.size(), want.size());
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
      num = std::max(num, static_cast<double>(std::abs(got[i] - want[i])));
      den = std::max(den, static_cast<double>(std::abs(want[i])));
    }
    return num / den;
  }
  std::unique_ptr<Model> model_;
  std::unique_ptr<SafetensorsFile> fixtures_;
  std::unique_ptr<Backend> be_;
};

TEST_F(DemoParity, TokenizerAndTextEncoder) {
  std::ifstream in(Root() + "/tests/fixtures/demo_parity/fixtures.json");
  const nlohmann::json meta = nlohmann::json::parse(in);
  const std::vector<int> ids = Ids("prompt_ids");
  EXPECT_EQ(model_->tokenizer().Encode(meta["prompt"].get<std::string>(), 16, nullptr), ids);
  auto e = model_->text_encoder().Encode(*be_, ids);
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_LT(RelError(e->tokens, Floats("text_tokens")), 1e-4);
  EXPECT_LT(RelError(e->pooled, Floats("text_pooled")), 1e-4);
}

TEST_F(DemoParity, DitAtSeveralTimesteps) {
  std::ifstream in(Root() + "/tests/fixtures/demo_parity/fixtures.json");
  const nlohmann::json meta = nlohmann::json::parse(in);
  auto e = model_->text_encoder().Encode(*be_, Ids("prompt_ids"));
  ASSERT_TRUE(e.ok());
  const auto& cases = meta["cases"];
  ASSERT_GE(cases.size(), 3u);
  const DitConfig& c = model_->config().dit;
  int with_prefix = 0;
  for (const auto& tc : cases) {
    const float t = tc["t"].get<float>();
    with_prefix += tc["prefix_mask_frames"].get<int>() > 0;
    const std::vector<float> x = Floats(tc["x_in"]), want = Floats(tc["v_out"]);
    const int T = model_->config().video.frames, H = model_->config().video.height / model_->config().downsample;
    const int W = model_->config().video.width / model_->config().downsample;
    ASSERT_EQ(x.size(), static_cast<size_t>(c.in_channels) * T * H * W);
    std::vector<float> v(want.size(), std::nanf(""));
    DitItem item{x.data(), e->tokens.data(), e->len, e->pooled.data(), v.data()};
    ASSERT_TRUE(model_->dit().Forward(*be_, std::span<const DitItem>(&item, 1), t, T, H, W).ok());
    EXPECT_LT(RelError(v, want), 1e-4) << "t = " << t;
  }
  EXPECT_GE(with_prefix, 1) << "one case must exercise the continuation mask channel";
}

TEST_F(DemoParity, FrameDecoder) {
  const std::vector<float> z = Floats("dec_in"), want = Floats("dec_out");
  std::vector<float> rgb;
  const int h = model_->config().video.height / model_->config().downsample;
  const int w = model_->config().video.width / model_->config().downsample;
  model_->decoder().Decode(*be_, z.data(), h, w, rgb);
  EXPECT_LT(RelError(rgb, want), 1e-4);
}

}  // namespace
}  // namespace ds
