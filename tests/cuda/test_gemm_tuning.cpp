// The choice among timed cuBLASLt candidates (kernels/cuda/gemm_tuning.h): the heuristic's first
// stays unless another is clearly faster; candidates that could not run are never chosen.
#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "kernels/cuda/gemm_tuning.h"

namespace ds::cuda {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

int Choose(const std::vector<double>& ms) { return ChooseAlgorithm(ms); }

TEST(GemmTuning, KeepsTheHeuristicsFirstWhenItIsFastest) {
  EXPECT_EQ(Choose({1.0}), 0);
  EXPECT_EQ(Choose({1.0, 1.5, 2.0}), 0);
  EXPECT_EQ(Choose({1.0, 1.0, 1.0}), 0);
}

TEST(GemmTuning, TakesTheFastestWhenClearlyFaster) {
  EXPECT_EQ(Choose({1.0, 0.9, 0.8, 0.95}), 2);
  EXPECT_EQ(Choose({2.0, 1.5, 1.5}), 1);  // of equal times, the heuristic's earlier one
  EXPECT_EQ(Choose({1.0, 1.2, 0.5}), 2);
}

TEST(GemmTuning, DifferencesWithinTheMarginAreNoise) {
  const double just_inside = 1.0 - GemmTuning::kMargin * 0.5, just_outside = 1.0 - GemmTuning::kMargin * 1.5;
  EXPECT_EQ(Choose({1.0, just_inside}), 0);
  EXPECT_EQ(Choose({1.0, just_outside}), 1);
  EXPECT_EQ(Choose({1.0, just_inside, just_outside}), 2);
}

TEST(GemmTuning, CandidatesThatDidNotRunAreNeverChosen) {
  EXPECT_EQ(Choose({1.0, -1.0, 0.0, kNaN}), 0);
  EXPECT_EQ(Choose({1.0, kInf}), 0);
  EXPECT_EQ(Choose({-1.0, 2.0, 1.5}), 2);  // the first could not run: the fastest that could
  EXPECT_EQ(Choose({kNaN, 3.0}), 1);
  EXPECT_EQ(Choose({-1.0, kNaN, 0.0}), -1);
  EXPECT_EQ(Choose({}), -1);
}

}  // namespace
}  // namespace ds::cuda
