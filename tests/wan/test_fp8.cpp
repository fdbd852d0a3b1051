// FP8 transformer checkpoints as ComfyUI ships the 14B (wan2.1_t2v_14B_fp8_scaled.safetensors, and
// the unscaled fp8_e4m3fn variants): block matrices stored as F8_E4M3 with a per-tensor
// `scale_weight`, a `scaled_fp8` marker and input scales the engine does not need. The tiny original-
// name transformer is quantised here, and the model loaded from it must compute exactly what the
// same model computes from a float32 checkpoint holding the dequantised values (decoded by this
// test's own E4M3 table, times the scale).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <random>

#include "core/log.h"
#include "core/wan/umt5.h"
#include "core/wan/wan_transformer.h"
#include "kernels/cpu/reference_backend.h"
#include "tests/wan/bf16_linear_backend.h"
#include "tests/wan/wan_test_util.h"

namespace ds {
namespace {

namespace fs = std::filesystem;
using test::TensorSpec;
using wan_test::Contains;
using wan_test::FixtureDir;
using wan_test::Rewrite;

// E4M3 ("fn") by its definition: bias 7, subnormals at exponent 0, 0x7F/0xFF NaN.
float E4M3(uint8_t b) {
  const int e = (b >> 3) & 15, m = b & 7;
  if (e == 15 && m == 7) return std::numeric_limits<float>::quiet_NaN();
  const float v = e == 0 ? std::ldexp(static_cast<float>(m), -9) : std::ldexp(static_cast<float>(8 + m), e - 10);
  return (b & 0x80) ? -v : v;
}

// E5M2 likewise: bias 15, subnormals at exponent 0, exponent 31 infinities and NaNs.
float E5M2(uint8_t b) {
  const int e = (b >> 2) & 31, m = b & 3;
  if (e == 31) return m ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  const float v = e == 0 ? std::ldexp(static_cast<float>(m), -16) : std::ldexp(static_cast<float>(4 + m), e - 17);
  return (b & 0x80) ? -v : v;
}

uint8_t Nearest(float x, float (*decode)(uint8_t)) {
  uint8_t best = 0;
  for (int b = 0; b < 256; ++b) {
    const float v = decode(static_cast<uint8_t>(b));
    if (std::isfinite(v) && std::abs(v - x) < std::abs(decode(best) - x)) best = static_cast<uint8_t>(b);
  }
  return best;
}

uint8_t NearestE4M3(float x) { return Nearest(x, E4M3); }

bool IsBlockMatrix(const std::string& name) {
  if (!name.starts_with("blocks.") || !name.ends_with(".weight")) return false;
  for (const char* part : {".self_attn.", ".cross_attn.", ".ffn."}) {
    if (name.find(part) != std::string::npos) return name.find("norm") == std::string::npos;
  }
  return false;
}

float Bf16(const uint8_t* p) {
  uint16_t b;
  std::memcpy(&b, p, 2);
  return BFloat16ToFloat(b);
}

class WanFp8 : public test::TempDirTest {
 protected:
  // Writes dir/config.json and dir/wan.safetensors from the tiny original-name transformer, with
  // every block matrix quantised to E4M3 (or E5M2): as F8 plus scales (fp8 = true) or as the
  // dequantised float32 values (fp8 = false). scaled = false stores unscaled F8 (scale 1) like the
  // plain files. Scaled files alternate between ComfyUI's two namings: the legacy `scale_weight` +
  // `scale_input`, and `weight_scale` + `input_scale` + a `comfy_quant` note.
  std::string Write(const std::string& name, bool fp8, bool scaled, int* quantised = nullptr, bool e5m2 = false) {
    const std::string dir = Path(name);
    fs::create_directory(dir);
    fs::copy_file(FixtureDir() + "/original/transformer/config.json", dir + "/config.json");
    std::vector<TensorSpec> extra;
    int count = 0;
    Rewrite(FixtureDir() + "/original/transformer", dir + "/wan.safetensors",
            [&](TensorSpec s) {
              if (!IsBlockMatrix(s.name)) return std::optional<TensorSpec>(std::move(s));
              EXPECT_EQ(s.dtype, "BF16") << s.name;
              const size_t n = s.bytes.size() / 2;
              float amax = 0;
              for (size_t i = 0; i < n; ++i) amax = std::max(amax, std::abs(Bf16(&s.bytes[2 * i])));
              float (*decode)(uint8_t) = e5m2 ? E5M2 : E4M3;
              const float scale = scaled ? amax / (e5m2 ? 57344.0f : 448.0f) : 1.0f;
              test::Bytes q(n), f32(4 * n);
              for (size_t i = 0; i < n; ++i) {
                q[i] = Nearest(Bf16(&s.bytes[2 * i]) / scale, decode);
                const float v = decode(q[i]) * scale;
                std::memcpy(&f32[4 * i], &v, 4);
              }
              const std::string base = s.name.substr(0, s.name.size() - std::string(".weight").size());
              if (fp8 && scaled) {
                const auto one = test::ToBytes(std::vector<float>{1.0f});
                if (count % 2 == 0) {
                  extra.push_back({base + ".scale_weight", "F32", {}, test::ToBytes(std::vector<float>{scale})});
                  extra.push_back({base + ".scale_input", "F32", {}, one});
                } else {
                  extra.push_back({base + ".weight_scale", "F32", {1}, test::ToBytes(std::vector<float>{scale})});
                  extra.push_back({base + ".input_scale", "F32", {}, one});
                  const std::string note = R"({"format": "float8_e4m3fn"})";
                  extra.push_back({base + ".comfy_quant",
                                   "U8",
                                   {static_cast<int64_t>(note.size())},
                                   test::Bytes(note.begin(), note.end())});
                }
              }
              ++count;
              s.dtype = fp8 ? (e5m2 ? "F8_E5M2" : "F8_E4M3") : "F32";
              s.bytes = fp8 ? q : f32;
              return std::optional<TensorSpec>(std::move(s));
            },
            {});
    if (fp8 && scaled) extra.push_back({"scaled_fp8", "F8_E4M3", {0}, {}});
    wan_test::AppendTensors(dir + "/wan.safetensors", std::move(extra));  // the side data gathered above
    if (quantised) *quantised = count;
    return dir;
  }

  // The transformers of two folders compute the same forward, bit for bit, on the CPU backend.
  static void ExpectSameForward(const std::string& dir_a, const std::string& dir_b) {
    auto a = WanTransformer::Load(dir_a);
    auto b = WanTransformer::Load(dir_b);
    ASSERT_TRUE(a.ok()) << a.status().message();
    ASSERT_TRUE(b.ok()) << b.status().message();
    auto be = wan_test::MakeBackend("cpu");
    EXPECT_EQ(Forward(*a, *be), Forward(*b, *be));
  }

  static std::vector<float> Forward(WanTransformer& m, Backend& be) { return wan_test::SmallForward(m, be); }
};

TEST_F(WanFp8, ScaledFp8ComputesWhatItsDequantisedWeightsCompute) {
  int quantised = 0;
  const std::string fp8 = Write("fp8", true, true, &quantised), f32 = Write("f32", false, true);
  EXPECT_EQ(quantised, 2 * 10);  // 2 blocks x (4 self-attention, 4 cross-attention, 2 FFN)
  std::vector<std::string> warnings;
  SetLogSink([&](LogLevel level, std::string_view text) {
    if (level <= LogLevel::kWarning) warnings.emplace_back(text);
  });
  auto a = WanTransformer::Load(fp8);
  auto b = WanTransformer::Load(f32);
  SetLogSink({});
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_TRUE(warnings.empty()) << "the marker and input scales are expected side data: " << warnings[0];
  for (const char* device : {"cpu", "reference"}) {
    auto be = wan_test::MakeBackend(device);
    const std::vector<float> got = Forward(*a, *be), want = Forward(*b, *be);
    EXPECT_EQ(got, want) << device;
  }
  // Quantisation is lossy: the bf16 original computes something else (the test is not vacuous).
  auto original = WanTransformer::Load(FixtureDir() + "/original/transformer");
  ASSERT_TRUE(original.ok());
  auto be = wan_test::MakeBackend("cpu");
  EXPECT_GT(wan_test::RelError(Forward(*original, *be), Forward(*b, *be)), 1e-3);
}

// On a backend whose linear takes BF16 (a GPU), scaled FP8 matrices are widened to BF16, not
// float32 (half the memory, bf16 GEMMs), and the FFN's hidden rows are BF16 too; the result stays
// within bf16 rounding of the float32 path on the same checkpoint. Bf16LinearBackend stands in for
// the GPU (tests/wan/bf16_linear_backend.h).
TEST_F(WanFp8, ScaledFp8OnABf16BackendIsWidenedToBf16) {
  auto model = WanTransformer::Load(Write("fp8", true, true));
  ASSERT_TRUE(model.ok()) << model.status().message();
  const int64_t blocks = model->config().layers;
  wan_test::Bf16LinearBackend bf16(Device::kCuda);  // the model's GPU branches, in host memory
  EXPECT_EQ(bf16.WidenedWeightDType(), DType::kBF16);
  ReferenceBackend reference;
  EXPECT_EQ(reference.WidenedWeightDType(), DType::kF32);
  const std::vector<float> got = wan_test::SmallForward(*model, bf16);
  const std::vector<float> want = wan_test::SmallForward(*model, reference);
  EXPECT_FALSE(bf16.misuse);
  EXPECT_EQ(bf16.bf16_weight_calls, blocks * 8);  // q, k, v widened into one fused matrix
  EXPECT_EQ(bf16.bf16_three_way_calls, blocks);
  EXPECT_EQ(bf16.bf16_y_calls, blocks * 3);  // q/k/v, cross q, fc1's hidden rows
  EXPECT_EQ(bf16.bf16_x_calls, blocks * 6);  // q/k/v, cross q, fc1 (norm rows); o, cross o; fc2
  EXPECT_EQ(bf16.bf16_norm_calls, blocks * 3);
  EXPECT_EQ(bf16.bf16_attention_calls, blocks * 2);
  const double err = wan_test::RelError(got, want);
  EXPECT_LT(err, 2e-2);
  EXPECT_GT(err, 1e-5);
}

TEST_F(WanFp8, UnscaledFp8Loads) { ExpectSameForward(Write("fp8", true, false), Write("f32", false, false)); }

TEST_F(WanFp8, ScaledE5M2ComputesWhatItsDequantisedWeightsCompute) {
  ExpectSameForward(Write("e5m2", true, true, nullptr, true), Write("f32", false, true, nullptr, true));
}

TEST_F(WanFp8, PerChannelScalesAreRefusedByName) {
  const std::string dir = Path("bad");
  fs::create_directory(dir);
  fs::copy_file(FixtureDir() + "/original/transformer/config.json", dir + "/config.json");
  Rewrite(FixtureDir() + "/original/transformer", dir + "/wan.safetensors",
          [](TensorSpec s) { return std::optional<TensorSpec>(std::move(s)); },
          {{"blocks.0.self_attn.q.scale_weight", "F32", {64}, test::Bytes(64 * 4, 0)}});
  auto r = WanTransformer::Load(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Contains(r.status().message(), "'blocks.0.self_attn.q.scale_weight' has shape [64]"));
  EXPECT_TRUE(Contains(r.status().message(), "one scale per tensor"));
}

// The text encoder keeps its matrices as stored too: a BF16 copy of the tiny encoder (values rounded
// by this test) and a scaled-F8 copy encode exactly what float32 copies of the same values encode.
TEST_F(WanFp8, TextEncoderMatricesAsStoredEncodeTheirValues) {
  auto round_bf16 = [](float x) {
    uint32_t b;
    std::memcpy(&b, &x, 4);
    b += 0x7fffu + ((b >> 16) & 1u);
    return static_cast<uint16_t>(b >> 16);
  };
  auto is_matrix = [](const std::string& n) {
    return n.find("SelfAttention.") != std::string::npos || n.find("DenseReluDense.") != std::string::npos
               ? n.find("relative_attention_bias") == std::string::npos
               : false;
  };
  // kind 0: BF16, 1: F8_E4M3 + scale_weight, 2: float32 of the BF16 values, 3: float32 of the F8 ones.
  auto write = [&](const std::string& name, int kind) {
    const std::string dir = Path(name);
    fs::create_directory(dir);
    fs::copy_file(FixtureDir() + "/tiny/text_encoder/config.json", dir + "/config.json");
    std::vector<TensorSpec> extra;
    Rewrite(FixtureDir() + "/tiny/text_encoder", dir + "/model.safetensors", [&](TensorSpec s) {
      if (!is_matrix(s.name)) return std::optional<TensorSpec>(std::move(s));
      EXPECT_EQ(s.dtype, "F32") << s.name;
      const size_t n = s.bytes.size() / 4;
      std::vector<float> v(n);
      std::memcpy(v.data(), s.bytes.data(), 4 * n);
      float amax = 0;
      for (float x : v) amax = std::max(amax, std::abs(x));
      const float scale = amax / 448.0f;
      test::Bytes out;
      for (size_t i = 0; i < n; ++i) {
        if (kind == 0 || kind == 2) {
          const uint16_t b = round_bf16(v[i]);
          if (kind == 0) {
            out.push_back(static_cast<uint8_t>(b & 0xff));
            out.push_back(static_cast<uint8_t>(b >> 8));
          } else {
            const uint32_t bits = static_cast<uint32_t>(b) << 16;
            out.insert(out.end(), reinterpret_cast<const uint8_t*>(&bits), reinterpret_cast<const uint8_t*>(&bits) + 4);
          }
        } else {
          const uint8_t q = NearestE4M3(v[i] / scale);
          if (kind == 1) {
            out.push_back(q);
          } else {
            const float f = E4M3(q) * scale;
            out.insert(out.end(), reinterpret_cast<const uint8_t*>(&f), reinterpret_cast<const uint8_t*>(&f) + 4);
          }
        }
      }
      if (kind == 1) {
        extra.push_back({s.name.substr(0, s.name.size() - 7) + ".scale_weight",
                         "F32",
                         {},
                         test::ToBytes(std::vector<float>{scale})});
      }
      s.dtype = kind == 0 ? "BF16" : kind == 1 ? "F8_E4M3" : "F32";
      s.bytes = std::move(out);
      return std::optional<TensorSpec>(std::move(s));
    });
    wan_test::AppendTensors(dir + "/model.safetensors", std::move(extra));
    return dir;
  };
  const std::vector<int> ids = {5, 17, 3, 42, 1};
  auto encode = [&](const std::string& dir, Backend* backend = nullptr) {
    auto e = Umt5Encoder::Load(dir);
    EXPECT_TRUE(e.ok()) << e.status().message();
    std::vector<float> out;
    if (!e.ok()) return out;
    auto cpu = wan_test::MakeBackend("cpu");
    const Status s = e->Encode(backend ? *backend : *cpu, ids, out);
    EXPECT_TRUE(s.ok()) << s.message();
    return out;
  };
  const std::string bf16_dir = write("bf16", 0), fp8_dir = write("fp8", 1);
  const std::vector<float> bf16 = encode(bf16_dir), f32_of_bf16 = encode(write("f32_bf16", 2));
  const std::vector<float> fp8 = encode(fp8_dir), f32_of_fp8 = encode(write("f32_fp8", 3));
  ASSERT_FALSE(bf16.empty());
  EXPECT_EQ(bf16, f32_of_bf16);
  EXPECT_EQ(fp8, f32_of_fp8);
  EXPECT_NE(bf16, fp8);

  // Where linear takes BF16 (a GPU; Bf16LinearBackend here), the BF16 matrices go in as stored and
  // the scaled F8 ones are widened to BF16: 7 matrices a layer either way, within bf16 rounding of
  // the float32 encodings.
  const int layers = static_cast<int>(nlohmann::json::parse(std::ifstream(bf16_dir + "/config.json"))["num_layers"]);
  for (const auto& [dir, want] : {std::pair{bf16_dir, &f32_of_bf16}, std::pair{fp8_dir, &f32_of_fp8}}) {
    SCOPED_TRACE(dir);
    wan_test::Bf16LinearBackend double_backend(Device::kCuda);  // with UMT5's staged uploads
    const std::vector<float> got = encode(dir, &double_backend);
    EXPECT_FALSE(double_backend.misuse);
    EXPECT_EQ(double_backend.bf16_weight_calls, 7 * layers);
    const double err = wan_test::RelError(got, *want);
    EXPECT_LT(err, 2e-2);
    EXPECT_GT(err, 1e-6);
  }
}

}  // namespace
}  // namespace ds
