// The first-block cache (core/first_block_cache.h) in the Wan transformer, on the tiny fixture (two
// blocks: the first, and a rest of one). What a reused forward must give is known without the cache:
// for inputs it has already seen, the full forward's output; and a forward that reuses nothing is
// the uncached forward, bit for bit.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/wan/wan_transformer.h"
#include "tests/wan/wan_test_util.h"

namespace ds {
namespace {

using wan_test::FixtureDir;
using wan_test::RelError;

constexpr int kT = 2, kH = 4, kW = 6, kL = 8;

struct Inputs {
  std::vector<float> latent, context;
  float timestep = 0;
};

Inputs MakeInputs(const WanTransformerConfig& c, unsigned seed, float timestep) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  Inputs in;
  in.latent.resize(static_cast<size_t>(c.in_channels) * kT * kH * kW);
  in.context.resize(static_cast<size_t>(kL) * c.text_dim);
  for (float& v : in.latent) v = nd(rng);
  for (float& v : in.context) v = nd(rng);
  in.timestep = timestep;
  return in;
}

// The inputs of a next denoising step: the latent moved a little, the timestep on.
Inputs NextStep(Inputs in, float amount) {
  for (size_t i = 0; i < in.latent.size(); ++i) in.latent[i] += amount * (static_cast<float>(i % 7) - 3.0f);
  in.timestep -= 1.0f;
  return in;
}

class WanBlockCache : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = WanTransformer::Load(FixtureDir() + "/tiny/transformer");
    ASSERT_TRUE(m.ok()) << m.status().message();
    model_ = std::make_unique<WanTransformer>(std::move(*m));
    be_ = wan_test::MakeBackend("cpu");
    ASSERT_NE(be_, nullptr);
    a_ = MakeInputs(model_->config(), 3, 900.0f);
    b_ = MakeInputs(model_->config(), 4, 700.0f);
  }

  std::vector<float> Run(const Inputs& in, BlockCacheUse use = {}) {
    std::vector<float> out(in.latent.size(), std::nanf(""));
    const Status s =
        model_->Forward(*be_, in.latent.data(), kT, kH, kW, in.timestep, in.context.data(), kL, out.data(), use);
    EXPECT_TRUE(s.ok()) << s.message();
    return out;
  }

  std::unique_ptr<WanTransformer> model_;
  std::unique_ptr<Backend> be_;
  Inputs a_, b_;
};

// Under a threshold no change passes, every forward runs every block, in the uncached order: the
// cache's own ops only read the residual stream.
TEST_F(WanBlockCache, AForwardThatReusesNothingIsTheUncachedForward) {
  const BlockCacheUse tiny{1e-30f, 0};
  Inputs in = a_;
  for (int step = 0; step < 3; ++step) {
    SCOPED_TRACE(step);
    const std::vector<float> cached = Run(in, tiny);
    EXPECT_EQ(cached, Run(in)) << "bit for bit";
    in = NextStep(in, 0.05f);
  }
  const FirstBlockCache::Stats st = model_->block_cache_stats(0);
  EXPECT_EQ(st.forwards, 3);
  EXPECT_EQ(st.reused, 0);
  EXPECT_GT(st.last_change, 0.0);
}

// The same inputs again: the first block's residual has not changed at all, so the forward reuses
// the rest, and the rest's kept residual is what the rest adds to these very inputs.
TEST_F(WanBlockCache, SeenInputsReuseTheRestAndGiveTheFullOutput) {
  const std::vector<float> full = Run(a_);
  const BlockCacheUse use{0.05f, 0};
  EXPECT_EQ(Run(a_, use), full);
  const std::vector<float> reused = Run(a_, use);
  const FirstBlockCache::Stats st = model_->block_cache_stats(0);
  EXPECT_EQ(st.forwards, 2);
  EXPECT_EQ(st.reused, 1);
  EXPECT_EQ(st.last_change, 0.0);
  EXPECT_LE(RelError(reused, full), 1e-6);
}

// The conditional and unconditional passes alternate; each compares with and reuses its own.
TEST_F(WanBlockCache, EachSlotKeepsItsOwnReference) {
  const std::vector<float> full_a = Run(a_), full_b = Run(b_);
  ASSERT_GT(RelError(full_a, full_b), 1e-2);
  const BlockCacheUse slot0{0.05f, 0}, slot1{0.05f, 1};
  Run(a_, slot0);
  Run(b_, slot1);
  EXPECT_LE(RelError(Run(a_, slot0), full_a), 1e-6);
  EXPECT_LE(RelError(Run(b_, slot1), full_b), 1e-6);
  EXPECT_EQ(model_->block_cache_stats(0).reused, 1);
  EXPECT_EQ(model_->block_cache_stats(1).reused, 1);
}

// A run of reused steps is measured against the last full forward, not the previous step: after a
// reused step on moved inputs, the first inputs again show no change at all. The reused step
// really skipped the rest: it differs from that step's full forward.
TEST_F(WanBlockCache, ChangeIsMeasuredFromTheLastFullForward) {
  const Inputs moved = NextStep(a_, 1e-3f);
  const std::vector<float> full_a = Run(a_), full_moved = Run(moved);
  const BlockCacheUse use{0.5f, 0};
  Run(a_, use);
  const std::vector<float> reused_moved = Run(moved, use);
  FirstBlockCache::Stats st = model_->block_cache_stats(0);
  ASSERT_EQ(st.reused, 1) << "change " << st.last_change;
  EXPECT_GT(st.last_change, 0.0);
  EXPECT_GT(RelError(reused_moved, full_moved), 1e-6);
  EXPECT_LE(RelError(Run(a_, use), full_a), 1e-6);
  st = model_->block_cache_stats(0);
  EXPECT_EQ(st.reused, 2);
  EXPECT_EQ(st.last_change, 0.0);
}

// A new clip starts from fresh noise: after ResetBlockCache nothing is reused until a full forward.
TEST_F(WanBlockCache, ResetForgetsTheReference) {
  const BlockCacheUse use{0.05f, 0};
  Run(a_, use);
  model_->ResetBlockCache();
  EXPECT_EQ(model_->block_cache_stats(0).forwards, 0);
  Run(a_, use);
  EXPECT_EQ(model_->block_cache_stats(0).reused, 0);
  Run(a_, use);
  EXPECT_EQ(model_->block_cache_stats(0).reused, 1);
}

TEST_F(WanBlockCache, ASlotPastTheLastIsAnError) {
  std::vector<float> out(a_.latent.size());
  const Status s = model_->Forward(*be_, a_.latent.data(), kT, kH, kW, a_.timestep, a_.context.data(), kL, out.data(),
                                   BlockCacheUse{0.05f, FirstBlockCache::kSlots});
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_TRUE(wan_test::Contains(s.message(), "slot"));
}

}  // namespace
}  // namespace ds
