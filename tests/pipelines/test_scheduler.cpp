#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "pipelines/noise.h"
#include "pipelines/scheduler.h"

namespace ds {
namespace {

TEST(FlowSigmas, EndpointsAndShiftFormula) {
  const std::vector<float> s = FlowSigmas(4, 3.0);
  ASSERT_EQ(s.size(), 5u);
  EXPECT_FLOAT_EQ(s.front(), 1.0f);
  EXPECT_FLOAT_EQ(s.back(), 0.0f);
  // s = 0.5 → 3·0.5 / (1 + 2·0.5) = 0.75; s = 0.25 → 0.75 / 1.5 = 0.5
  EXPECT_NEAR(s[2], 0.75f, 1e-7);
  EXPECT_NEAR(s[3], 0.5f, 1e-7);
  for (size_t i = 1; i < s.size(); ++i) EXPECT_LT(s[i], s[i - 1]);
}

TEST(FlowSigmas, ShiftOneIsLinear) {
  const std::vector<float> s = FlowSigmas(10, 1.0);
  for (int i = 0; i <= 10; ++i) EXPECT_NEAR(s[i], 1.0f - i / 10.0f, 1e-6);
}

// Expected values from a numpy/torch transcription of diffusers' FlowMatchEulerDiscreteScheduler
// (__init__ + set_timesteps, no dynamic shifting), float32 as it stores them.
TEST(FlowMatchEulerSigmas, MatchDiffusers) {
  const std::vector<float> s3 = FlowMatchEulerSigmas(4, 3.0);
  const std::vector<float> want3 = {1.0f, 0.857692301273346f, 0.602150559425354f, 0.008928571827709675f, 0.0f};
  ASSERT_EQ(s3.size(), want3.size());
  for (size_t i = 0; i < want3.size(); ++i) EXPECT_FLOAT_EQ(s3[i], want3[i]) << i;
  const std::vector<float> s1 = FlowMatchEulerSigmas(6, 1.0);
  const std::vector<float> want1 = {1.0f,
                                    0.8001999855041504f,
                                    0.6003999710083008f,
                                    0.40059998631477356f,
                                    0.20080000162124634f,
                                    0.0010000000474974513f,
                                    0.0f};
  ASSERT_EQ(s1.size(), want1.size());
  for (size_t i = 0; i < want1.size(); ++i) EXPECT_FLOAT_EQ(s1[i], want1[i]) << i;
  EXPECT_EQ(FlowMatchEulerSigmas(1, 5.0), (std::vector<float>{1.0f, 0.0f}));
}

TEST(EulerStep, StraightFlowLandsOnData) {
  // x_σ = (1 − σ)·x0 + σ·ε has the constant velocity ε − x0: Euler is exact for any schedule.
  const std::vector<float> x0 = {0.3f, -1.2f, 2.5f}, eps = {1.0f, 0.5f, -0.7f};
  std::vector<float> x = eps, v(3);
  for (size_t i = 0; i < 3; ++i) v[i] = eps[i] - x0[i];
  const std::vector<float> s = FlowSigmas(7, 2.5);
  for (int i = 0; i < 7; ++i) EulerStep(x, v, s[i], s[i + 1]);
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(x[i], x0[i], 1e-5);
}

TEST(EulerStep, ConvergesOnLinearField) {
  // dx/dσ = x from σ = 1 to 0 has the solution x(0) = x(1)·e^−1; Euler's error shrinks as 1/steps.
  auto run = [](int steps) {
    std::vector<float> x = {2.0f}, v(1);
    const std::vector<float> s = FlowSigmas(steps, 1.0);
    for (int i = 0; i < steps; ++i) {
      v[0] = x[0];
      EulerStep(x, v, s[i], s[i + 1]);
    }
    return std::abs(x[0] - 2.0 * std::exp(-1.0));
  };
  const double e100 = run(100), e1000 = run(1000);
  EXPECT_LT(e1000, 2e-3);
  EXPECT_NEAR(e100 / e1000, 10.0, 1.0);
}

TEST(Guidance, Formula) {
  std::vector<float> c = {1.0f, 2.0f, -3.0f};
  const std::vector<float> u = {0.5f, 2.0f, 1.0f};
  ApplyGuidance(c, u, 4.0f);
  EXPECT_FLOAT_EQ(c[0], 0.5f + 4.0f * 0.5f);
  EXPECT_FLOAT_EQ(c[1], 2.0f);
  EXPECT_FLOAT_EQ(c[2], 1.0f + 4.0f * -4.0f);
  std::vector<float> c1 = {1.0f, 2.0f};
  ApplyGuidance(c1, std::vector<float>{7.0f, 9.0f}, 1.0f);  // guidance 1 = the conditional prediction
  EXPECT_FLOAT_EQ(c1[0], 1.0f);
  EXPECT_FLOAT_EQ(c1[1], 2.0f);
}

TEST(Noise, SeededAndStandardNormal) {
  std::vector<float> a(100001), b(100001), c(100001);
  NoiseGenerator(42).FillNormal(a);
  NoiseGenerator(42).FillNormal(b);
  NoiseGenerator(43).FillNormal(c);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  double sum = 0, sq = 0;
  for (float v : a) {
    sum += v;
    sq += static_cast<double>(v) * v;
  }
  const double mean = sum / a.size(), var = sq / a.size() - mean * mean;
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(var, 1.0, 0.02);
}

TEST(Noise, XoshiroMatchesPublishedSplitMixSeeding) {
  // SplitMix64 from state 0 yields 0xe220a8397b1dcdaf first (the published test value); xoshiro256**
  // output = rotl(s1·5, 7)·9 with s1 the second SplitMix64 output 0x6e789e6aa1b965f4.
  const uint64_t s1 = 0x6e789e6aa1b965f4ULL;
  const uint64_t m = s1 * 5;
  const uint64_t expect = ((m << 7) | (m >> 57)) * 9;
  EXPECT_EQ(NoiseGenerator(0).NextU64(), expect);
}

}  // namespace
}  // namespace ds
