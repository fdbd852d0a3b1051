// The patchify kernels' index function (kernels/cuda/patch_index.h) against core's Patchify and
// Unpatchify, the host oracle, on latents whose values are their own offsets: every token value
// must name the latent element the host functions put there.
#include <gtest/gtest.h>

#include <array>
#include <numeric>
#include <string>
#include <vector>

#include "core/patchify.h"
#include "kernels/cuda/patch_index.h"

namespace ds {
namespace {

struct Case {
  int c, t, h, w;
  std::array<int, 3> p;
};

constexpr Case kCases[] = {
    {16, 21, 6, 8, {1, 2, 2}},  // Wan's patch, a small grid
    {4, 4, 4, 6, {2, 2, 3}},    // every patch side different
    {3, 1, 2, 2, {1, 1, 1}},    // patch of one value
    {1, 2, 4, 4, {2, 4, 4}},    // one token
};

cuda::PatchGeometry Geometry(const Case& c, bool channels_last) {
  return {c.c, c.t, c.h, c.w, c.p[0], c.p[1], c.p[2], channels_last};
}

TEST(PatchIndex, PatchifyGathersWhatCorePatchifyDoes) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(std::to_string(c.c) + "x" + std::to_string(c.t) + "x" + std::to_string(c.h) + "x" +
                 std::to_string(c.w));
    const cuda::PatchGeometry g = Geometry(c, false);
    std::vector<float> latent(static_cast<size_t>(g.Elements())), tokens(latent.size(), -1.0f);
    std::iota(latent.begin(), latent.end(), 0.0f);
    Patchify(latent.data(), c.c, c.t, c.h, c.w, c.p, tokens.data());
    for (int64_t e = 0; e < g.Elements(); ++e) {
      ASSERT_EQ(static_cast<int64_t>(tokens[static_cast<size_t>(e)]), cuda::PatchLatentOffset(g, e)) << "value " << e;
    }
  }
}

TEST(PatchIndex, UnpatchifyScattersWhatCoreUnpatchifyDoes) {
  for (const bool channels_last : {false, true}) {
    for (const Case& c : kCases) {
      SCOPED_TRACE(std::string(channels_last ? "channels last, " : "") + std::to_string(c.c) + "x" +
                   std::to_string(c.t) + "x" + std::to_string(c.h) + "x" + std::to_string(c.w));
      const cuda::PatchGeometry g = Geometry(c, channels_last);
      std::vector<float> tokens(static_cast<size_t>(g.Elements())), latent(tokens.size(), -1.0f);
      std::iota(tokens.begin(), tokens.end(), 0.0f);
      Unpatchify(tokens.data(), c.c, c.t, c.h, c.w, c.p, latent.data(), channels_last);
      for (int64_t e = 0; e < g.Elements(); ++e) {
        const int64_t at = cuda::PatchLatentOffset(g, e);
        ASSERT_GE(at, 0);
        ASSERT_LT(at, g.Elements());
        ASSERT_EQ(static_cast<int64_t>(latent[static_cast<size_t>(at)]), e) << "value " << e;
      }
    }
  }
}

// The two orders differ wherever a patch holds more than one value and more than one channel:
// a kernel that ignored channels_last would not pass both tests above.
TEST(PatchIndex, ChannelsLastIsAnotherOrder) {
  const cuda::PatchGeometry first = Geometry(kCases[0], false), last = Geometry(kCases[0], true);
  int differ = 0;
  for (int64_t e = 0; e < first.Elements(); ++e)
    differ += cuda::PatchLatentOffset(first, e) != cuda::PatchLatentOffset(last, e);
  EXPECT_GT(differ, first.Elements() / 2);
}

}  // namespace
}  // namespace ds
