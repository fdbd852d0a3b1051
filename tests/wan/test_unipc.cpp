// UniPC (pipelines/unipc.h) against diffusers' UniPCMultistepScheduler with Wan's configuration:
// timesteps and sigmas exactly, and a model-free trajectory step by step.
#include <gtest/gtest.h>

#include "pipelines/unipc.h"
#include "tests/wan/wan_test_util.h"

namespace ds {
namespace {

using wan_test::Cases;
using wan_test::Load;
using wan_test::RelError;

TEST(WanUniPc, SchedulesMatchDiffusersExactly) {
  const auto cases = Cases()["unipc"];
  ASSERT_GE(cases.size(), 5u);
  for (const auto& c : cases) {
    const int steps = c["steps"];
    const double shift = c["shift"];
    SCOPED_TRACE(testing::Message() << steps << " steps, shift " << shift);
    const FlowSchedule s = UniPcFlowSchedule(steps, shift);
    EXPECT_EQ(s.timesteps, c["timesteps"].get<std::vector<int64_t>>());
    std::vector<float> want;
    for (double v : c["sigmas"]) want.push_back(static_cast<float>(v));  // float32 values, exact in JSON
    EXPECT_EQ(s.sigmas, want);
  }
}

TEST(WanUniPc, PublishedDefaultScheduleStartsAndEndsAsTheSpecSays) {
  const FlowSchedule s = UniPcFlowSchedule(50, 3.0);
  ASSERT_EQ(s.timesteps.size(), 50u);
  ASSERT_EQ(s.sigmas.size(), 51u);
  EXPECT_EQ(s.timesteps.front(), 999);
  EXPECT_EQ(s.timesteps[1], 993);
  EXPECT_EQ(s.timesteps.back(), 60);
  EXPECT_FLOAT_EQ(s.sigmas.front(), 0.999999f);
  EXPECT_EQ(s.sigmas.back(), 0.0f);
}

TEST(WanUniPc, TrajectoryMatchesDiffusers) {
  const auto c = Cases()["unipc_trajectory"];
  const int steps = c["steps"];
  const auto x0 = Load("unipc.x0"), outs = Load("unipc.model_outputs"), samples = Load("unipc.samples");
  const size_t n = x0.values.size();
  ASSERT_EQ(outs.values.size(), n * steps);
  UniPcSampler sampler(steps, c["shift"].get<double>());
  std::vector<float> x = x0.values;
  for (int i = 0; i < steps; ++i) {
    ASSERT_EQ(sampler.step_index(), i);
    sampler.Step(std::span<const float>(outs.values.data() + i * n, n), x);
    const std::vector<float> want(samples.values.begin() + static_cast<ptrdiff_t>(i * n),
                                  samples.values.begin() + static_cast<ptrdiff_t>((i + 1) * n));
    EXPECT_LE(RelError(x, want), 1e-5) << "step " << i;
  }
}

TEST(WanUniPc, LastStepReturnsTheX0Prediction) {
  UniPcSampler sampler(1, 3.0);
  std::vector<float> x = {0.5f, -1.0f, 2.0f}, v = {1.0f, 2.0f, -3.0f};
  const float s0 = sampler.schedule().sigmas[0];
  std::vector<float> want;
  for (size_t i = 0; i < x.size(); ++i) want.push_back(x[i] - s0 * v[i]);
  sampler.Step(v, x);
  EXPECT_EQ(x, want);
}

}  // namespace
}  // namespace ds
