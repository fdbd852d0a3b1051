// The Wan transformer and VAE decoder against diffusers (fp32, relative error ≤ 1e-4), from the
// diffusers layout (sharded bf16 transformer, fp16 VAE) and from the original Wan names.
#include <gtest/gtest.h>

#include <string>

#include "core/wan/wan_transformer.h"
#include "core/wan/wan_vae.h"
#include "kernels/cpu/reference_backend.h"
#include "tests/wan/bf16_linear_backend.h"
#include "tests/wan/wan_test_util.h"

namespace ds {
namespace {

using wan_test::Cases;
using wan_test::FixtureDir;
using wan_test::Load;
using wan_test::RelError;

std::vector<float> RunTransformer(WanTransformer& m, Backend& be) {
  const auto latent = Load("transformer.latent"), ctx = Load("transformer.context");
  const auto& s = latent.shape;  // [16, T, H, W]
  std::vector<float> out(latent.values.size(), std::nanf(""));
  Status st = m.Forward(be, latent.values.data(), static_cast<int>(s[1]), static_cast<int>(s[2]),
                        static_cast<int>(s[3]), Cases()["transformer"]["timestep"].get<float>(), ctx.values.data(),
                        static_cast<int>(ctx.shape[0]), out.data());
  EXPECT_TRUE(st.ok()) << st.message();
  return out;
}

TEST(WanTransformerTest, MatchesDiffusers) {
  auto m = WanTransformer::Load(FixtureDir() + "/tiny/transformer");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->config().heads, 2);
  EXPECT_EQ(m->config().layers, 2);
  EXPECT_EQ(m->config().rope_axes(), (std::array<int, 3>{12, 10, 10}));
  const auto want = Load("transformer.out").values;
  for (const char* device : {"cpu", "reference"}) {
    auto be = wan_test::MakeBackend(device);
    const std::vector<float> got = RunTransformer(*m, *be);
    EXPECT_LE(RelError(got, want), 1e-4) << device;
    m->ReleaseWorkspace();
    EXPECT_EQ(RunTransformer(*m, *be), got) << device << ", after ReleaseWorkspace";
  }
}

TEST(WanTransformerTest, OriginalNamesGiveTheSameModel) {
  auto diffusers = WanTransformer::Load(FixtureDir() + "/tiny/transformer");
  auto original = WanTransformer::Load(FixtureDir() + "/original/transformer");
  ASSERT_TRUE(diffusers.ok()) << diffusers.status().message();
  ASSERT_TRUE(original.ok()) << original.status().message();
  EXPECT_EQ(original->config().heads, 2);  // from the WanModel config.json beside the weights
  EXPECT_EQ(original->config().ffn, 96);
  EXPECT_EQ(original->config().text_dim, 32);
  EXPECT_TRUE(original->config().cross_attn_norm);
  auto be = wan_test::MakeBackend();
  EXPECT_EQ(RunTransformer(*original, *be), RunTransformer(*diffusers, *be));
}

std::vector<float> DecodeAll(WanVaeDecoder& vae, Backend& be, const wan_test::Expected& z, std::vector<int>& per_push) {
  const int C = static_cast<int>(z.shape[0]), T = static_cast<int>(z.shape[1]), H = static_cast<int>(z.shape[2]),
            W = static_cast<int>(z.shape[3]);
  const size_t plane = static_cast<size_t>(H) * W;
  EXPECT_TRUE(vae.Begin(be, H, W).ok());
  std::vector<std::vector<float>> frames;
  std::vector<float> zf(C * plane);
  const size_t out_plane = plane * 64;
  for (int t = 0; t < T; ++t) {
    for (int c = 0; c < C; ++c)
      std::copy_n(z.values.begin() + static_cast<ptrdiff_t>((c * T + t) * plane), plane, zf.begin() + c * plane);
    const size_t before = frames.size();
    Status s = vae.Push(be, zf.data(), [&](const float* rgb) {
      frames.emplace_back(rgb, rgb + 3 * out_plane);
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.message();
    per_push.push_back(static_cast<int>(frames.size() - before));
  }
  // diffusers' layout: [3, frames, H, W].
  std::vector<float> video(3 * frames.size() * out_plane);
  for (size_t f = 0; f < frames.size(); ++f)
    for (int c = 0; c < 3; ++c)
      std::copy_n(frames[f].begin() + static_cast<ptrdiff_t>(c * out_plane), out_plane,
                  video.begin() + static_cast<ptrdiff_t>((c * frames.size() + f) * out_plane));
  return video;
}

TEST(WanVae, DecodesEveryFrameLikeDiffusers) {
  auto vae = WanVaeDecoder::Load(FixtureDir() + "/tiny/vae");
  ASSERT_TRUE(vae.ok()) << vae.status().message();
  auto be = wan_test::MakeBackend();
  const auto z = Load("vae.z"), want = Load("vae.video");
  ASSERT_EQ(vae->OutputFrames(static_cast<int>(z.shape[1])), want.shape[1]);
  std::vector<int> per_push;
  const std::vector<float> got = DecodeAll(*vae, *be, z, per_push);
  EXPECT_EQ(per_push, (std::vector<int>{1, 4, 4}));
  ASSERT_EQ(got.size(), want.values.size());
  const size_t frame = static_cast<size_t>(want.shape[2] * want.shape[3]);
  for (int f = 0; f < want.shape[1]; ++f) {  // every frame on its own, so a bad one is named
    std::vector<float> g, w;
    for (int c = 0; c < 3; ++c) {
      const size_t off = (c * want.shape[1] + f) * frame;
      g.insert(g.end(), got.begin() + off, got.begin() + off + frame);
      w.insert(w.end(), want.values.begin() + off, want.values.begin() + off + frame);
    }
    EXPECT_LE(RelError(g, w), 1e-4) << "frame " << f;
  }
  // A second video starts from clean caches, also after End() freed them.
  per_push.clear();
  EXPECT_EQ(DecodeAll(*vae, *be, z, per_push), got);
  vae->End();
  EXPECT_EQ(DecodeAll(*vae, *be, z, per_push), got);
}

// A backend that reports a GPU gets the decoder's weights copied into its own buffers (the
// placement only GPUs take); decoding must not change. Bf16LinearBackend (reported as kCuda) runs
// the reference ops on host memory, so CI covers that branch without a GPU.
TEST(WanVae, WeightsPlacedInBackendBuffersDecodeTheSame) {
  auto vae = WanVaeDecoder::Load(FixtureDir() + "/tiny/vae");
  ASSERT_TRUE(vae.ok()) << vae.status().message();
  const auto z = Load("vae.z");
  std::vector<int> per_push;
  ReferenceBackend reference;
  wan_test::Bf16LinearBackend gpu_like(Device::kCuda);
  const std::vector<float> want = DecodeAll(*vae, reference, z, per_push);
  const std::vector<float> got = DecodeAll(*vae, gpu_like, z, per_push);
  ASSERT_FALSE(want.empty());
  EXPECT_LE(RelError(got, want), 1e-6);
  // And back on the host backend: the host views are restored.
  EXPECT_EQ(DecodeAll(*vae, reference, z, per_push), want);
}

// PushPixels hands each frame over as bytes converted by the backend: exactly what core/frame.h
// makes of the float frame Push hands over, in every format, frame for frame.
TEST(WanVae, PushPixelsGivesTheBytesOfPushsFrames) {
  auto vae = WanVaeDecoder::Load(FixtureDir() + "/tiny/vae");
  ASSERT_TRUE(vae.ok()) << vae.status().message();
  auto be = wan_test::MakeBackend();
  const auto z = Load("vae.z");
  const int C = static_cast<int>(z.shape[0]), T = static_cast<int>(z.shape[1]), H = static_cast<int>(z.shape[2]),
            W = static_cast<int>(z.shape[3]);
  const size_t plane = static_cast<size_t>(H) * W;
  for (const FrameFormat format :
       {FrameFormat{PixelFormat::kRgb}, FrameFormat{PixelFormat::kRgba},
        FrameFormat{PixelFormat::kI420, YuvMatrix::kBt601}, FrameFormat{PixelFormat::kI420, YuvMatrix::kBt709},
        FrameFormat{PixelFormat::kNv12, YuvMatrix::kBt601}}) {
    SCOPED_TRACE(std::string(PixelFormatName(format.pixels)) + " " + YuvMatrixName(format.matrix));
    const FrameLayout l = LayoutOf(format.pixels, 8 * W, 8 * H);
    std::vector<std::vector<uint8_t>> want, got;
    for (const bool pixels : {false, true}) {
      ASSERT_TRUE(vae->Begin(*be, H, W).ok());
      std::vector<float> zf(C * plane);
      for (int t = 0; t < T; ++t) {
        for (int c = 0; c < C; ++c)
          std::copy_n(z.values.begin() + static_cast<ptrdiff_t>((c * T + t) * plane), plane, zf.begin() + c * plane);
        const Status s = pixels ? vae->PushPixels(*be, zf.data(), format,
                                                  [&](const uint8_t* p) {
                                                    got.emplace_back(p, p + l.bytes);
                                                    return Status::Ok();
                                                  })
                                : vae->Push(*be, zf.data(), [&](const float* rgb) {
                                    want.emplace_back(l.bytes);
                                    PlanarToPixels(rgb, 8 * W, 8 * H, format, want.back().data());
                                    return Status::Ok();
                                  });
        ASSERT_TRUE(s.ok()) << s.message();
      }
    }
    ASSERT_EQ(got.size(), want.size());
    for (size_t f = 0; f < want.size(); ++f) EXPECT_EQ(got[f], want[f]) << "frame " << f;
  }
  vae->End();
}

TEST(WanVae, OriginalNamesGiveTheSameDecoder) {
  auto diffusers = WanVaeDecoder::Load(FixtureDir() + "/tiny/vae");
  auto original = WanVaeDecoder::Load(FixtureDir() + "/original/wan_2.1_vae_tiny.safetensors");
  ASSERT_TRUE(diffusers.ok()) << diffusers.status().message();
  ASSERT_TRUE(original.ok()) << original.status().message();
  EXPECT_EQ(original->config().base_dim, 4);
  auto be = wan_test::MakeBackend();
  const auto z = Load("vae.z");
  std::vector<int> a, b;
  EXPECT_EQ(DecodeAll(*original, *be, z, a), DecodeAll(*diffusers, *be, z, b));
}

TEST(WanVae, PushOutsideBeginEndIsAnError) {
  auto vae = WanVaeDecoder::Load(FixtureDir() + "/tiny/vae");
  ASSERT_TRUE(vae.ok());
  auto be = wan_test::MakeBackend();
  std::vector<float> z(16 * 4, 0.5f);
  auto sink = [](const float*) { return Status::Ok(); };
  EXPECT_EQ(vae->Push(*be, z.data(), sink).code(), Code::kState);
  ASSERT_TRUE(vae->Begin(*be, 2, 2).ok());
  EXPECT_TRUE(vae->Push(*be, z.data(), sink).ok());
  vae->End();
  EXPECT_EQ(vae->Push(*be, z.data(), sink).code(), Code::kState);
}

TEST(WanVae, FrameCallbackErrorStopsDecoding) {
  auto vae = WanVaeDecoder::Load(FixtureDir() + "/tiny/vae");
  ASSERT_TRUE(vae.ok());
  auto be = wan_test::MakeBackend();
  std::vector<float> z(16 * 4, 0.5f);
  ASSERT_TRUE(vae->Begin(*be, 2, 2).ok());
  ASSERT_TRUE(vae->Push(*be, z.data(), [](const float*) { return Status::Ok(); }).ok());
  int calls = 0;
  Status s = vae->Push(*be, z.data(), [&](const float*) {
    ++calls;
    return Status(Code::kCancelled, "stop");
  });
  EXPECT_EQ(s.code(), Code::kCancelled);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace ds
