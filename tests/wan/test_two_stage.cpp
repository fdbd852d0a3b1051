// Wan2.2's two-stage text-to-video models (T2V-A14B): the tiny two-stage folder (tiny_a14b: tiny's
// components and a second random transformer as the low-noise expert, boundary_ratio 0.875) through
// WanPipeline against diffusers' WanPipeline from the same initial latents (4 UniPC steps, the
// boundary between the second and the third; guidance 5 then guidance_2 3; written by
// tools/wan/make_two_stage_fixture.py), and the folders a two-stage model must not load from.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "core/wan/wan_model.h"
#include "pipelines/options.h"
#include "pipelines/wan_pipeline.h"
#include "tests/core/test_files.h"
#include "tests/wan/wan_test_util.h"

namespace ds {
namespace {

namespace fs = std::filesystem;
using wan_test::Contains;
using wan_test::FixtureDir;
using wan_test::LoadFrom;
using wan_test::RelError;

nlohmann::json TwoStageCase() {
  std::ifstream in(FixtureDir() + "/two_stage.json");
  std::stringstream text;
  text << in.rdbuf();
  return nlohmann::json::parse(text.str());
}

wan_test::Expected TwoStageTensor(const std::string& name) {
  auto file = SafetensorsFile::Open(FixtureDir() + "/two_stage.safetensors");
  EXPECT_TRUE(file.ok()) << file.status().message();
  return file.ok() ? LoadFrom(**file, name) : wan_test::Expected{};
}

// Denoises the case's initial latents through WanPipeline with `guidance_2`; the final latents.
std::vector<float> Denoise(WanPipeline& p, const nlohmann::json& c, double guidance_2) {
  Options opts = DefaultOptions();
  opts.prompt = c["prompt"].get<std::string>();
  opts.negative_prompt = c["negative_prompt"].get<std::string>();
  opts.width = c["width"];
  opts.height = c["height"];
  opts.frames = c["num_frames"];
  opts.steps = c["steps"];
  opts.guidance = c["guidance"];
  opts.guidance_2 = guidance_2;
  auto shape = p.Shape(opts);
  EXPECT_TRUE(shape.ok()) << shape.status().message();
  std::vector<float> x = TwoStageTensor("two_stage.latents").values;
  if (!shape.ok()) return x;
  const std::atomic<bool> cancel{false};
  const Status s = p.Denoise(
      opts, x, *shape, 0, [](const Progress&) {}, cancel);
  EXPECT_TRUE(s.ok()) << s.message();
  return x;
}

TEST(WanTwoStage, MatchesDiffusersWithTheLowNoiseExpertAndItsGuidance) {
  DS_REQUIRE_SENTENCEPIECE();
  const nlohmann::json c = TwoStageCase();
  auto be = wan_test::MakeBackend();
  auto loaded = WanPipeline::Load(FixtureDir() + "/tiny_a14b", *be, wan_test::Cases()["text_len"].get<int>());
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  WanPipeline& p = **loaded;
  ASSERT_NE(p.model().transformer_2(), nullptr);
  EXPECT_EQ(p.model().boundary_timestep(), 875.0);

  const std::vector<float> step_latents = TwoStageTensor("two_stage.step_latents").values;
  const std::vector<float> got = Denoise(p, c, c["guidance_2"].get<double>());
  ASSERT_FALSE(got.empty());
  const std::vector<float> want(step_latents.end() - static_cast<ptrdiff_t>(got.size()), step_latents.end());
  EXPECT_LE(RelError(got, want), 1e-4) << "sampled latents";
  // guidance-2 reaches the low-noise steps: the first stage's guidance there gives other latents.
  EXPECT_GT(RelError(Denoise(p, c, c["guidance"].get<double>()), want), 1e-3);
}

class WanTwoStageLayout : public test::TempDirTest {
 protected:
  // tiny_a14b as real folders (its components are links into tiny/), with model_index.json edited.
  std::string CopyWithIndex(const std::function<void(nlohmann::json&)>& edit) {
    const std::string dst = Path("model");
    fs::copy(FixtureDir() + "/tiny_a14b", dst, fs::copy_options::recursive);
    std::ifstream in(dst + "/model_index.json");
    nlohmann::json index = nlohmann::json::parse(in);
    edit(index);
    test::WriteFile(dst + "/model_index.json", index.dump());
    return dst;
  }
};

TEST_F(WanTwoStageLayout, ABoundaryWithoutASecondTransformerIsAModelError) {
  const std::string m = CopyWithIndex([](nlohmann::json& j) { j["transformer_2"] = {nullptr, nullptr}; });
  auto r = WanModel::Load(m);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kModel);
  EXPECT_TRUE(Contains(r.status().message(), "'boundary_ratio' is set without 'transformer_2'"));
}

TEST_F(WanTwoStageLayout, ABoundaryOutsideZeroToOneIsNamed) {
  for (const nlohmann::json& ratio : {nlohmann::json(1.5), nlohmann::json(0), nlohmann::json("0.9")}) {
    const std::string m = CopyWithIndex([&](nlohmann::json& j) { j["boundary_ratio"] = ratio; });
    auto r = WanModel::Load(m);
    ASSERT_FALSE(r.ok()) << ratio;
    EXPECT_TRUE(Contains(r.status().message(), "'boundary_ratio' must be a number between 0 and 1"));
    fs::remove_all(m);
  }
}

TEST_F(WanTwoStageLayout, AMissingSecondTransformerFolderIsNamed) {
  const std::string m = CopyWithIndex([](nlohmann::json&) {});
  fs::remove_all(m + "/transformer_2");
  auto r = WanModel::Load(m);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Contains(r.status().message(), "component 'transformer_2'"));
}

// LoRAs for the second transformer need one; the files are not even opened for a model without.
TEST_F(WanTwoStageLayout, SecondLorasNeedASecondTransformer) {
  auto r = WanModel::Load(FixtureDir() + "/tiny", {}, {LoraSpec{Path("low.safetensors"), 1.0}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(r.status().message(), "'lora-2'"));
  EXPECT_TRUE(Contains(r.status().message(), "does not have"));
}

}  // namespace
}  // namespace ds
