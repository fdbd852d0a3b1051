// The spatially tiled VAE decode against diffusers' tiled_decode (tests/fixtures/wan/vae_tiled.*,
// tools/wan/make_vae_tiling_fixture.py), the tile grid, and the memory it is there to save.
#include <gtest/gtest.h>

#include "core/wan/wan_vae.h"
#include "core/wan/wan_vae_tiling.h"
#include "tests/wan/wan_test_util.h"

namespace ds {
namespace {

using wan_test::FixtureDir;
using wan_test::RelError;

struct TiledCase {
  VaeTiles tiles;
  wan_test::Expected z, video;  // z [16, T, h, w]; video [3, F, H, W] as diffusers returns it
};

TiledCase LoadCase() {
  TiledCase c;
  std::ifstream in(FixtureDir() + "/vae_tiled.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  c.tiles = {j.at("tile_sample_min_height"), j.at("tile_sample_stride_height"), j.at("tile_sample_min_width"),
             j.at("tile_sample_stride_width")};
  auto file = SafetensorsFile::Open(FixtureDir() + "/vae_tiled.safetensors");
  EXPECT_TRUE(file.ok()) << file.status().message();
  if (!file.ok()) return c;
  c.z = wan_test::LoadFrom(**file, "z");
  c.video = wan_test::LoadFrom(**file, "video");
  return c;
}

// Frames as the decoder hands them out ([3, H, W] each), in diffusers' [3, F, H, W] layout.
struct Collected {
  std::vector<std::vector<float>> frames;
  std::vector<float> Video() const {
    const size_t plane = frames.empty() ? 0 : frames[0].size() / 3, n = frames.size();
    std::vector<float> v(3 * n * plane);
    for (size_t f = 0; f < n; ++f)
      for (size_t c = 0; c < 3; ++c)
        std::copy_n(frames[f].begin() + static_cast<ptrdiff_t>(c * plane), plane,
                    v.begin() + static_cast<ptrdiff_t>((c * n + f) * plane));
    return v;
  }
};

TEST(VaeTileSpans, CoverTheAxisFromEveryStrideStart) {
  EXPECT_EQ(TileSpans(9, 4, 3), (std::vector<TileSpan>{{0, 4}, {3, 4}, {6, 3}}));
  EXPECT_EQ(TileSpans(11, 6, 4), (std::vector<TileSpan>{{0, 6}, {4, 6}, {8, 3}}));
  // A start is made wherever one is left, even if the previous tile already reached the end.
  EXPECT_EQ(TileSpans(10, 8, 2), (std::vector<TileSpan>{{0, 8}, {2, 8}, {4, 6}, {6, 4}, {8, 2}}));
  EXPECT_EQ(TileSpans(3, 32, 24), (std::vector<TileSpan>{{0, 3}}));
  // 720p latent (90 x 160) with diffusers' default 32-latent tiles, stride 24.
  EXPECT_EQ(TileSpans(90, 32, 24).size(), 4u);
  EXPECT_EQ(TileSpans(160, 32, 24).size(), 7u);
  EXPECT_TRUE(TileSpans(0, 4, 3).empty());
}

TEST(VaeTileSpans, BadTileSizesAreNamed) {
  EXPECT_TRUE(CheckVaeTiles({}, 8).ok());
  Status s = CheckVaeTiles({256, 190, 256, 192}, 8);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(wan_test::Contains(s.message(), "stride_height = 190"));
  s = CheckVaeTiles({256, 192, 0, 192}, 8);
  EXPECT_TRUE(wan_test::Contains(s.message(), "min_width = 0"));
  s = CheckVaeTiles({128, 192, 256, 192}, 8);
  EXPECT_TRUE(wan_test::Contains(s.message(), "exceeds its tile"));
  // diffusers tiles only a latent with a side beyond one tile.
  EXPECT_FALSE(VaeTilingApplies({}, 8, 32, 32));
  EXPECT_TRUE(VaeTilingApplies({}, 8, 32, 33));
  EXPECT_TRUE(VaeTilingApplies({}, 8, 60, 104));
}

TEST(VaeTiledDecode, MatchesDiffusersTiledDecode) {
  auto vae = WanVaeDecoder::Load(FixtureDir() + "/tiny/vae");
  ASSERT_TRUE(vae.ok()) << vae.status().message();
  auto be = wan_test::MakeBackend();
  const TiledCase c = LoadCase();
  ASSERT_EQ(c.z.shape.size(), 4u);
  const int T = static_cast<int>(c.z.shape[1]), h = static_cast<int>(c.z.shape[2]), w = static_cast<int>(c.z.shape[3]);
  ASSERT_TRUE(VaeTilingApplies(c.tiles, 8, h, w));
  Collected out;
  int ticks = 0, last_total = 0;
  std::vector<int> frames_at_tick;  // frames delivered when each tile frame was done
  Status s = DecodeTiled(
      *vae, *be, c.tiles, c.z.values.data(), T, h, w,
      [&](int done, int total) {
        EXPECT_EQ(done, ++ticks);
        last_total = total;
        frames_at_tick.push_back(static_cast<int>(out.frames.size()));
        return Status::Ok();
      },
      [&](const float* rgb) {
        out.frames.emplace_back(rgb, rgb + 3 * 64 * h * w);
        return Status::Ok();
      });
  ASSERT_TRUE(s.ok()) << s.message();
  const int F = vae->OutputFrames(T);
  ASSERT_EQ(static_cast<int64_t>(out.frames.size()), c.video.shape[1]);
  // 3 x 3 tiles, every one through every frame; frames come out during the last tile only.
  EXPECT_EQ(last_total, 9 * F);
  EXPECT_EQ(ticks, 9 * F);
  EXPECT_EQ(frames_at_tick[8 * F - 1], 0);
  EXPECT_EQ(frames_at_tick.back(), F - 1);  // the tick comes before its frame is handed out
  const std::vector<float> got = out.Video();
  EXPECT_LE(RelError(got, c.video.values), 1e-4);

  // The seams really are blends: the streamed (untiled) decode differs from diffusers' tiled one.
  ASSERT_TRUE(vae->Begin(*be, h, w).ok());
  Collected plain;
  const size_t plane = static_cast<size_t>(h) * w;
  std::vector<float> zf(16 * plane);
  for (int t = 0; t < T; ++t) {
    for (int ch = 0; ch < 16; ++ch)
      std::copy_n(c.z.values.begin() + static_cast<ptrdiff_t>((ch * T + t) * plane), plane,
                  zf.begin() + static_cast<ptrdiff_t>(ch * plane));
    ASSERT_TRUE(vae->Push(*be, zf.data(),
                          [&](const float* rgb) {
                            plain.frames.emplace_back(rgb, rgb + 3 * 64 * plane);
                            return Status::Ok();
                          })
                    .ok());
  }
  vae->End();
  EXPECT_GT(RelError(plain.Video(), c.video.values), 1e-2);
}

TEST(VaeTiledDecode, ErrorsFromTheCallbacksStopIt) {
  auto vae = WanVaeDecoder::Load(FixtureDir() + "/tiny/vae");
  ASSERT_TRUE(vae.ok());
  auto be = wan_test::MakeBackend();
  const TiledCase c = LoadCase();
  const int T = static_cast<int>(c.z.shape[1]), h = static_cast<int>(c.z.shape[2]), w = static_cast<int>(c.z.shape[3]);
  int ticks = 0;
  Status s = DecodeTiled(
      *vae, *be, c.tiles, c.z.values.data(), T, h, w,
      [&](int, int) { return ++ticks == 3 ? Status(Code::kCancelled, "stop") : Status::Ok(); },
      [](const float*) { return Status::Ok(); });
  EXPECT_EQ(s.code(), Code::kCancelled);
  EXPECT_EQ(ticks, 3);
  EXPECT_EQ(vae->AllocatedBytes(), 0u) << "the caches are freed on the way out";
  int frames = 0;
  s = DecodeTiled(
      *vae, *be, c.tiles, c.z.values.data(), T, h, w, [](int, int) { return Status::Ok(); },
      [&](const float*) { return ++frames == 2 ? Status(Code::kIo, "disk full") : Status::Ok(); });
  EXPECT_EQ(s.code(), Code::kIo);
  EXPECT_EQ(frames, 2);
  s = DecodeTiled(
      *vae, *be, {32, 40, 48, 32}, c.z.values.data(), T, h, w, [](int, int) { return Status::Ok(); },
      [](const float*) { return Status::Ok(); });
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
}

TEST(VaeMemory, WorkingSetIsWhatStreamingAllocates) {
  auto vae = WanVaeDecoder::Load(FixtureDir() + "/tiny/vae");
  ASSERT_TRUE(vae.ok());
  auto be = wan_test::MakeBackend();
  for (auto [h, w] : {std::pair{4, 6}, std::pair{9, 11}}) {
    std::vector<float> z(16 * h * w, 0.25f);
    ASSERT_TRUE(vae->Begin(*be, h, w).ok());
    for (int t = 0; t < 2; ++t) ASSERT_TRUE(vae->Push(*be, z.data(), [](const float*) { return Status::Ok(); }).ok());
    EXPECT_EQ(vae->AllocatedBytes(), vae->WorkingSetBytes(h, w)) << h << "x" << w;
    vae->End();
    EXPECT_EQ(vae->AllocatedBytes(), 0u);
  }
}

// Begin on another backend lets the first one's buffers go (they may be device memory) instead of
// reusing them; the decode there is the same decode.
TEST(VaeMemory, BeginOnAnotherBackendStartsFromFreshBuffers) {
  auto vae = WanVaeDecoder::Load(FixtureDir() + "/tiny/vae");
  ASSERT_TRUE(vae.ok());
  auto cpu = wan_test::MakeBackend("cpu"), ref = wan_test::MakeBackend("reference");
  std::vector<float> z(16 * 4 * 6);
  for (size_t i = 0; i < z.size(); ++i) z[i] = std::sin(0.37f * static_cast<float>(i));
  std::vector<std::vector<float>> frames;
  auto keep = [&](const float* rgb) {
    frames.emplace_back(rgb, rgb + 3 * 32 * 48);
    return Status::Ok();
  };
  ASSERT_TRUE(vae->Begin(*cpu, 4, 6).ok());
  ASSERT_TRUE(vae->Push(*cpu, z.data(), keep).ok());
  EXPECT_EQ(vae->Push(*ref, z.data(), keep).code(), Code::kState) << "Push must use Begin's backend";
  ASSERT_TRUE(vae->Begin(*ref, 4, 6).ok());  // no End in between
  EXPECT_EQ(vae->AllocatedBytes(), vae->WorkingSetBytes(4, 6) - 6 * 4 * 6 * 16 * sizeof(float))
      << "fresh buffers, the attention's not yet allocated";
  ASSERT_TRUE(vae->Push(*ref, z.data(), keep).ok());
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_LE(RelError(frames[1], frames[0]), 1e-4);
  vae->End();
}

TEST(VaeMemory, TilesBoundTheDecodersWorkingSet) {
  auto vae = WanVaeDecoder::Load(FixtureDir() + "/tiny/vae");
  ASSERT_TRUE(vae.ok());
  auto be = wan_test::MakeBackend();
  const TiledCase c = LoadCase();
  const int T = static_cast<int>(c.z.shape[1]), h = static_cast<int>(c.z.shape[2]), w = static_cast<int>(c.z.shape[3]);
  size_t peak = 0;
  ASSERT_TRUE(DecodeTiled(
                  *vae, *be, c.tiles, c.z.values.data(), T, h, w,
                  [&](int, int) {
                    peak = std::max(peak, vae->AllocatedBytes());
                    return Status::Ok();
                  },
                  [](const float*) { return Status::Ok(); })
                  .ok());
  // The largest tile is 4 x 6 latent pixels (32 x 48 video pixels) of the 9 x 11 frame.
  EXPECT_EQ(peak, vae->WorkingSetBytes(4, 6));
  EXPECT_LT(peak, vae->WorkingSetBytes(h, w) / 3);
  EXPECT_EQ(vae->WorkingSetBytes(90, 160), 4 * vae->WorkingSetBytes(45, 80));  // linear in the area
  const size_t video = size_t{9} * 3 * 72 * 88 * sizeof(float);
  EXPECT_GT(VaeTiledWorkingSetBytes(*vae, c.tiles, T, h, w), peak + video);
}

}  // namespace
}  // namespace ds
