// LoRA adapters on the Wan transformer (core/wan/wan_lora.h). The tiny fixture loaded with LoRA
// files in each spelling Wan LoRAs ship in must compute what the same model computes from a
// checkpoint into which this test baked the deltas itself (in double: W + strength·alpha/rank·up·down,
// W + strength·diff); bad LoRA files fail with errors naming the file and key.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <random>

#include "core/wan/wan_lora.h"
#include "core/wan/wan_transformer.h"
#include "pipelines/options.h"
#include "pipelines/text_to_video.h"
#include "tests/core/test_files.h"
#include "tests/wan/wan_test_util.h"

namespace ds {
namespace {

namespace fs = std::filesystem;
using test::TensorSpec;
using wan_test::Contains;
using wan_test::FixtureDir;
using wan_test::Rewrite;

float Bf16ToFloat(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

uint16_t FloatToBf16Nearest(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest, ties to even (no NaN here)
  return static_cast<uint16_t>(bits >> 16);
}

// The LoRA files a test writes, and the deltas it expects them to make, by diffusers tensor name.
class LoraBuilder {
 public:
  explicit LoraBuilder(unsigned seed) : rng_(seed) {}

  // A low-rank pair under `module` (down, up suffixes as spelled), for target [rows, cols] (the
  // down's shape may be a convolution's: down_shape), scaled by strength · alpha / rank.
  void Pair(std::vector<TensorSpec>& file, const std::string& module, const char* down_suffix, const char* up_suffix,
            const std::string& target, int64_t rows, std::vector<int64_t> down_shape, std::vector<int64_t> up_tail,
            double strength, std::optional<float> alpha) {
    const int64_t rank = down_shape[0];
    int64_t cols = 1;
    for (size_t i = 1; i < down_shape.size(); ++i) cols *= down_shape[i];
    const std::vector<float> down = Random(rank * cols, 0.3f), up = Random(rows * rank, 0.3f);
    std::vector<int64_t> up_shape = {rows, rank};
    up_shape.insert(up_shape.end(), up_tail.begin(), up_tail.end());
    file.push_back({module + down_suffix, "F32", down_shape, test::ToBytes(down)});
    file.push_back({module + up_suffix, "F32", up_shape, test::ToBytes(up)});
    double scale = strength;
    if (alpha) {
      file.push_back({module + ".alpha", "F32", {}, test::ToBytes(std::vector<float>{*alpha})});
      scale *= *alpha / static_cast<double>(rank);
    }
    std::vector<double>& d = Delta(target, rows * cols);
    for (int64_t o = 0; o < rows; ++o) {
      for (int64_t i = 0; i < cols; ++i) {
        double sum = 0;
        for (int64_t k = 0; k < rank; ++k) sum += static_cast<double>(up[o * rank + k]) * down[k * cols + i];
        d[o * cols + i] += scale * sum;
      }
    }
  }

  // A full delta under `key` for target of `shape`.
  void Full(std::vector<TensorSpec>& file, const std::string& key, const std::string& target,
            std::vector<int64_t> shape, double strength) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    const std::vector<float> v = Random(n, 0.5f);
    file.push_back({key, "F32", shape, test::ToBytes(v)});
    std::vector<double>& d = Delta(target, n);
    for (int64_t i = 0; i < n; ++i) d[i] += strength * v[i];
  }

  const std::map<std::string, std::vector<double>>& deltas() const { return deltas_; }

 private:
  std::vector<float> Random(int64_t n, float sd) {
    std::normal_distribution<float> nd(0.0f, sd);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = nd(rng_);
    return v;
  }
  std::vector<double>& Delta(const std::string& target, int64_t n) {
    std::vector<double>& d = deltas_[target];
    d.resize(static_cast<size_t>(n), 0.0);
    return d;
  }

  std::mt19937 rng_;
  std::map<std::string, std::vector<double>> deltas_;
};

// The block matrices, which the model keeps at the checkpoint's width (BF16 here) when a LoRA
// changes them; every other tensor it computes with in float32.
bool KeptAsStored(const std::string& name) {
  if (!name.starts_with("blocks.") || !name.ends_with(".weight")) return false;
  for (const char* m : {".to_q.", ".to_k.", ".to_v.", ".to_out.0.", ".ffn.net.0.proj.", ".ffn.net.2."}) {
    if (name.find(m) != std::string::npos) return true;
  }
  return false;
}

class WanLoraTest : public test::TempDirTest {
 protected:
  std::string Base() const { return FixtureDir() + "/tiny/transformer"; }

  std::string WriteLora(const std::string& name, const std::vector<TensorSpec>& tensors) {
    const std::string path = Path(name);
    test::WriteSafetensors(path, tensors);
    return path;
  }

  // The base checkpoint with the builder's deltas added in double: block matrices rounded to BF16
  // as the model keeps them, the rest written as float32.
  std::string Baked(const LoraBuilder& b) {
    const std::string dir = Path("baked");
    fs::create_directory(dir);
    fs::copy_file(Base() + "/config.json", dir + "/config.json");
    size_t applied = 0;
    Rewrite(Base(), dir + "/model.safetensors", [&](TensorSpec s) {
      auto it = b.deltas().find(s.name);
      if (it == b.deltas().end()) return std::optional<TensorSpec>(std::move(s));
      EXPECT_EQ(s.dtype, "BF16") << s.name;
      const size_t n = s.bytes.size() / 2;
      EXPECT_EQ(n, it->second.size()) << s.name;
      std::vector<float> merged(n);
      for (size_t i = 0; i < n; ++i) {
        uint16_t bits;
        std::memcpy(&bits, s.bytes.data() + 2 * i, 2);
        merged[i] = static_cast<float>(static_cast<double>(Bf16ToFloat(bits)) + it->second[i]);
      }
      ++applied;
      if (KeptAsStored(s.name)) {
        std::vector<uint16_t> bf(n);
        for (size_t i = 0; i < n; ++i) bf[i] = FloatToBf16Nearest(merged[i]);
        s.bytes = test::ToBytes(bf);
      } else {
        s.dtype = "F32";
        s.bytes = test::ToBytes(merged);
      }
      return std::optional<TensorSpec>(std::move(s));
    });
    EXPECT_EQ(applied, b.deltas().size()) << "a delta's target is not in the fixture";
    return dir;
  }

  static std::vector<float> Forward(const std::string& path, const std::vector<LoraSpec>& loras = {}) {
    auto m = WanTransformer::Load(path, loras);
    EXPECT_TRUE(m.ok()) << m.status().message();
    if (!m.ok()) return {};
    auto be = wan_test::MakeBackend("cpu");
    return wan_test::SmallForward(*m, *be);
  }

  Status LoadWith(const std::vector<TensorSpec>& tensors) {
    const std::string f = WriteLora("bad.safetensors", tensors);
    auto m = WanTransformer::Load(Base(), {{f, 1.0}});
    return m.ok() ? Status::Ok() : m.status();
  }
};

TensorSpec F32(const std::string& key, std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return {key, "F32", shape, test::ToBytes(std::vector<float>(static_cast<size_t>(n), 0.25f))};
}

// Three files in the three spellings, one at strength 0.5: kohya's (original names with underscores,
// lora_down/lora_up, alpha), PEFT's (diffusers names under "transformer.", lora_A/lora_B, no alpha;
// a convolution's pair), ComfyUI's full deltas (original names under "diffusion_model.": a bias,
// a norm, modulation tables as .diff and as LightX2V's .diff_m, the head's and time projection's biases).
TEST_F(WanLoraTest, LorasInEverySpellingMatchTheDeltasBakedIn) {
  const int64_t d = 64, ffn = 96, r = 2;
  LoraBuilder b(11);
  std::vector<TensorSpec> kohya, peft, comfy;
  b.Pair(kohya, "lora_unet_blocks_0_self_attn_q", ".lora_down.weight", ".lora_up.weight", "blocks.0.attn1.to_q.weight",
         d, {r, d}, {}, 1.0, 4.0f);
  b.Pair(kohya, "lora_unet_blocks_1_ffn_2", ".lora_down.weight", ".lora_up.weight", "blocks.1.ffn.net.2.weight", d,
         {r, ffn}, {}, 1.0, 1.0f);
  b.Pair(kohya, "lora_unet_blocks_0_cross_attn_o", ".lora_down.weight", ".lora_up.weight",
         "blocks.0.attn2.to_out.0.weight", d, {r, d}, {}, 1.0, 2.0f);
  b.Pair(peft, "transformer.blocks.1.attn1.to_v", ".lora_A.weight", ".lora_B.weight", "blocks.1.attn1.to_v.weight", d,
         {r, d}, {}, 0.5, std::nullopt);
  b.Pair(peft, "transformer.proj_out", ".lora_A.weight", ".lora_B.weight", "proj_out.weight", 64, {r, d}, {}, 0.5,
         std::nullopt);
  b.Pair(peft, "transformer.patch_embedding", ".lora_A.weight", ".lora_B.weight", "patch_embedding.weight", d,
         {r, 16, 1, 2, 2}, {1, 1, 1}, 0.5, std::nullopt);
  b.Full(comfy, "diffusion_model.blocks.0.ffn.0.diff_b", "blocks.0.ffn.net.0.proj.bias", {ffn}, 1.0);
  b.Full(comfy, "diffusion_model.blocks.1.norm3.diff", "blocks.1.norm2.weight", {d}, 1.0);
  b.Full(comfy, "diffusion_model.blocks.0.modulation.diff", "blocks.0.scale_shift_table", {1, 6, d}, 1.0);
  b.Full(comfy, "diffusion_model.blocks.0.self_attn.norm_q.diff", "blocks.0.attn1.norm_q.weight", {d}, 1.0);
  b.Full(comfy, "diffusion_model.head.head.diff_b", "proj_out.bias", {64}, 1.0);
  b.Full(comfy, "diffusion_model.blocks.1.diff_m", "blocks.1.scale_shift_table", {1, 6, d}, 1.0);
  b.Full(comfy, "diffusion_model.time_projection.1.diff_b", "condition_embedder.time_proj.bias", {6 * d}, 1.0);
  const std::vector<LoraSpec> loras = {{WriteLora("kohya.safetensors", kohya), 1.0},
                                       {WriteLora("peft.safetensors", peft), 0.5},
                                       {WriteLora("comfy.safetensors", comfy), 1.0}};
  const std::vector<float> base = Forward(Base());
  const std::vector<float> with_lora = Forward(Base(), loras);
  const std::vector<float> baked = Forward(Baked(b));
  ASSERT_FALSE(base.empty());
  ASSERT_FALSE(with_lora.empty());
  EXPECT_GT(wan_test::RelError(with_lora, base), 0.05) << "the LoRAs should change the output";
  EXPECT_LE(wan_test::RelError(with_lora, baked), 1e-5);
}

TEST_F(WanLoraTest, StrengthScalesTheDelta) {
  LoraBuilder half(3);
  std::vector<TensorSpec> a;
  half.Pair(a, "diffusion_model.blocks.0.ffn.0", ".lora_down.weight", ".lora_up.weight",
            "blocks.0.ffn.net.0.proj.weight", 96, {4, 64}, {}, -0.75, 8.0f);
  const std::string f = WriteLora("a.safetensors", a);
  EXPECT_LE(wan_test::RelError(Forward(Base(), {{f, -0.75}}), Forward(Baked(half))), 1e-5);
  EXPECT_GT(wan_test::RelError(Forward(Base(), {{f, 1.0}}), Forward(Base(), {{f, -0.75}})), 0.01);
}

TEST_F(WanLoraTest, BadFilesAreRefusedByName) {
  struct Case {
    const char* what;
    std::vector<TensorSpec> tensors;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"a block the model lacks",
       {F32("diffusion_model.blocks.7.self_attn.q.lora_down.weight", {2, 64}),
        F32("diffusion_model.blocks.7.self_attn.q.lora_up.weight", {64, 2})},
       "'diffusion_model.blocks.7.self_attn.q.lora_down.weight' matches no tensor"},
      {"an image-to-video module",
       {F32("diffusion_model.blocks.0.cross_attn.k_img.diff", {64, 64})},
       "'diffusion_model.blocks.0.cross_attn.k_img.diff' matches no tensor"},
      {"another width",
       {F32("diffusion_model.blocks.0.self_attn.q.lora_down.weight", {2, 128}),
        F32("diffusion_model.blocks.0.self_attn.q.lora_up.weight", {128, 2})},
       "do not fit the model's 'blocks.0.self_attn.q.weight' [64, 64]"},
      {"half a pair", {F32("diffusion_model.blocks.0.self_attn.q.lora_down.weight", {2, 64})}, "has no up (B) half"},
      {"ranks that differ",
       {F32("blocks.0.self_attn.q.lora_A.weight", {2, 64}), F32("blocks.0.self_attn.q.lora_B.weight", {64, 3})},
       "are not a low-rank pair"},
      {"an alpha per row",
       {F32("m.lora_down.weight", {2, 64}), F32("m.lora_up.weight", {64, 2}), F32("m.alpha", {2})},
       "an alpha is one number"},
      {"a diff of another shape", {F32("blocks.0.self_attn.q.diff", {64, 32})}, "has shape [64, 32]"},
      {"a LoHa", {F32("lora_unet_blocks_0_self_attn_q.hada_w1_a", {64, 2})}, "a LoHa adapter"},
      {"not a LoRA tensor", {F32("blocks.0.self_attn.q.weight", {64, 64})}, "is not a LoRA tensor"},
      {"nothing", {}, "holds no tensor"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const Status s = LoadWith(c.tensors);
    ASSERT_FALSE(s.ok());
    EXPECT_TRUE(Contains(s.message(), "bad.safetensors"));
    EXPECT_TRUE(Contains(s.message(), c.message));
  }
  auto missing = WanTransformer::Load(Base(), {{Path("none.safetensors"), 1.0}});
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(Contains(missing.status().message(), "none.safetensors"));
}

TEST(LoraOption, ParsesFilesAndStrengths) {
  auto l = ParseLoras("a.safetensors, /x/b=c.safetensors=0.5 ,d=e=-1.25e0");
  ASSERT_TRUE(l.ok()) << l.status().message();
  ASSERT_EQ(l->size(), 3u);
  EXPECT_EQ((*l)[0].path, "a.safetensors");
  EXPECT_EQ((*l)[0].strength, 1.0);
  EXPECT_EQ((*l)[1].path, "/x/b=c.safetensors");
  EXPECT_EQ((*l)[1].strength, 0.5);
  EXPECT_EQ((*l)[2].path, "d=e");
  EXPECT_EQ((*l)[2].strength, -1.25);
  auto plain = ParseLoras("x=y.safetensors");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ((*plain)[0].path, "x=y.safetensors");
  EXPECT_TRUE(ParseLoras("")->empty());
  for (const char* bad : {"a,,b", "a,", "=0.5", "a=inf"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(ParseLoras(bad).ok());
  }
  Options o = DefaultOptions();
  const Status s = SetOption(o, "lora", "a,");
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s.message(), "option 'lora'"));
}

TEST(LoraOption, TheDemoModelTakesNone) {
  for (const char* option : {"lora", "lora-2"}) {
    Options o = DefaultOptions();
    ASSERT_TRUE(SetOption(o, option, "style.safetensors").ok());
    auto t = TextToVideo::Load(o);
    ASSERT_FALSE(t.ok());
    EXPECT_TRUE(Contains(t.status().message(), "LoRA files apply to Wan models")) << option;
    EXPECT_TRUE(Contains(t.status().message(), std::string("option '") + option + "'"));
  }
}

}  // namespace
}  // namespace ds
