// The whole tiny Wan2.1 pipeline against diffusers' WanPipeline from the same initial latents:
// prompt + empty negative prompt → UMT5 → 3 UniPC steps with CFG 5 → streamed VAE decode.
// MatchesDiffusers composes the components by hand; ProductPipelineMatchesDiffusers runs the same
// case through WanPipeline, the code ds_generate runs, from the reference's initial noise.
#include <gtest/gtest.h>

#include "core/wan/wan_model.h"
#include "pipelines/options.h"
#include "pipelines/scheduler.h"
#include "pipelines/unipc.h"
#include "pipelines/wan_pipeline.h"
#include "tests/wan/wan_test_util.h"

namespace ds {
namespace {

using wan_test::Cases;
using wan_test::FixtureDir;
using wan_test::Load;
using wan_test::RelError;

TEST(WanPipeline, MatchesDiffusers) {
  DS_REQUIRE_SENTENCEPIECE();
  const auto pc = Cases()["pipeline"];
  const int text_len = Cases()["text_len"];
  auto loaded = WanModel::Load(FixtureDir() + "/tiny");
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  WanModel& m = **loaded;
  auto be = wan_test::MakeBackend();
  auto shape = m.LatentShape(pc["width"], pc["height"], pc["num_frames"]);
  ASSERT_TRUE(shape.ok()) << shape.status().message();
  const auto [C, T, H, W] = *shape;
  EXPECT_EQ(m.scheduler().kind, WanSchedulerConfig::Kind::kUniPc);
  EXPECT_EQ(m.scheduler().shift, pc["shift"].get<double>());

  std::vector<float> cond, uncond;
  ASSERT_TRUE(m.EncodePrompt(*be, pc["prompt"].get<std::string>(), text_len, cond).ok());
  ASSERT_TRUE(m.EncodePrompt(*be, pc["negative_prompt"].get<std::string>(), text_len, uncond).ok());

  std::vector<float> x = Load("pipeline.latents").values;
  ASSERT_EQ(x.size(), static_cast<size_t>(C) * T * H * W);
  const auto step_latents = Load("pipeline.step_latents").values;
  std::vector<float> v(x.size()), vu(x.size());
  const float guidance = pc["guidance"];
  UniPcSampler sampler(pc["steps"], m.scheduler().shift, m.scheduler().train_timesteps);
  for (int i = 0; i < sampler.steps(); ++i) {
    const float t = static_cast<float>(sampler.schedule().timesteps[i]);
    ASSERT_TRUE(m.transformer().Forward(*be, x.data(), T, H, W, t, cond.data(), text_len, v.data()).ok());
    ASSERT_TRUE(m.transformer().Forward(*be, x.data(), T, H, W, t, uncond.data(), text_len, vu.data()).ok());
    ApplyGuidance(v, vu, guidance);
    sampler.Step(v, x);
    const std::vector<float> want(step_latents.begin() + static_cast<ptrdiff_t>(i * x.size()),
                                  step_latents.begin() + static_cast<ptrdiff_t>((i + 1) * x.size()));
    EXPECT_LE(RelError(x, want), 1e-4) << "latents after step " << i;
  }

  // Decode latent frame by latent frame; frames come out as soon as each exists.
  const auto want = Load("pipeline.frames");  // [frames, height, width, 3] in [0, 1]
  const int frames = static_cast<int>(want.shape[0]), oh = static_cast<int>(want.shape[1]),
            ow = static_cast<int>(want.shape[2]);
  ASSERT_EQ(m.vae().OutputFrames(T), frames);
  ASSERT_TRUE(m.vae().Begin(*be, H, W).ok());
  const size_t plane = static_cast<size_t>(H) * W, out_plane = static_cast<size_t>(oh) * ow;
  std::vector<float> zf(C * plane), got;
  for (int t = 0; t < T; ++t) {
    for (int c = 0; c < C; ++c)
      std::copy_n(x.begin() + static_cast<ptrdiff_t>((static_cast<size_t>(c) * T + t) * plane), plane,
                  zf.begin() + static_cast<ptrdiff_t>(c * plane));
    m.vae().Denormalize(zf.data(), static_cast<int64_t>(plane));
    Status s = m.vae().Push(*be, zf.data(), [&](const float* rgb) {
      for (size_t p = 0; p < out_plane; ++p)
        for (int c = 0; c < 3; ++c) got.push_back(std::clamp(rgb[c * out_plane + p] * 0.5f + 0.5f, 0.0f, 1.0f));
      return Status::Ok();
    });
    ASSERT_TRUE(s.ok()) << s.message();
  }
  EXPECT_LE(RelError(got, want.values), 1e-4);
}

TEST(WanPipeline, ProductPipelineMatchesDiffusers) {
  DS_REQUIRE_SENTENCEPIECE();
  const auto pc = Cases()["pipeline"];
  auto be = wan_test::MakeBackend();
  auto loaded = WanPipeline::Load(FixtureDir() + "/tiny", *be, Cases()["text_len"].get<int>());
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  WanPipeline& p = **loaded;
  Options opts = DefaultOptions();
  opts.prompt = pc["prompt"].get<std::string>();
  opts.negative_prompt = pc["negative_prompt"].get<std::string>();
  opts.width = pc["width"];
  opts.height = pc["height"];
  opts.frames = pc["num_frames"];
  opts.steps = pc["steps"];
  opts.guidance = pc["guidance"];
  opts.shift = pc["shift"];
  auto shape = p.Shape(opts);
  ASSERT_TRUE(shape.ok()) << shape.status().message();

  std::vector<float> x = Load("pipeline.latents").values;
  const std::atomic<bool> cancel{false};
  int steps_seen = 0;
  auto progress = [&](const Progress& pr) { steps_seen += pr.stage == DS_STAGE_DENOISE; };
  Status s = p.Denoise(opts, x, *shape, 0, progress, cancel);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(steps_seen, opts.steps);
  const auto step_latents = Load("pipeline.step_latents").values;
  const std::vector<float> want_x(step_latents.end() - static_cast<ptrdiff_t>(x.size()), step_latents.end());
  EXPECT_LE(RelError(x, want_x), 1e-4) << "sampled latents";

  const auto want = Load("pipeline.frames");  // [frames, height, width, 3] in [0, 1]
  const size_t out_plane = static_cast<size_t>(shape->width) * shape->height;
  std::vector<float> got;
  s = p.Decode(
      x, *shape, 0, "off",
      [&](const float* rgb) {
        for (size_t px = 0; px < out_plane; ++px)
          for (int c = 0; c < 3; ++c) got.push_back(std::clamp(rgb[c * out_plane + px] * 0.5f + 0.5f, 0.0f, 1.0f));
        return Status::Ok();
      },
      [](const Progress&) {}, cancel);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(static_cast<int64_t>(got.size() / (out_plane * 3)), want.shape[0]);
  EXPECT_LE(RelError(got, want.values), 1e-4) << "decoded frames";
}

}  // namespace
}  // namespace ds
