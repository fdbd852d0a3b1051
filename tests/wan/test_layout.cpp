// Bad Wan model folders and checkpoints fail with errors that name the file, the component or
// tensor, and the expected and actual values; never a crash. Also the original-name variants a
// real user meets (prefixed single files).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "core/wan/umt5.h"
#include "core/wan/wan_model.h"
#include "tests/core/test_files.h"
#include "tests/wan/wan_test_util.h"

namespace ds {
namespace {

namespace fs = std::filesystem;
using test::TensorSpec;
using wan_test::Contains;
using wan_test::FixtureDir;
using wan_test::Rewrite;

class WanLayout : public test::TempDirTest {
 protected:
  std::string CopyTiny() {
    const std::string dst = Path("model");
    fs::copy(FixtureDir() + "/tiny", dst, fs::copy_options::recursive);
    return dst;
  }
};

TEST_F(WanLayout, FolderWithoutModelIndexIsAnUnknownLayout) {
  auto m = WanModel::Load(dir_.string());
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(Contains(m.status().message(), "unknown model layout"));
  EXPECT_TRUE(Contains(m.status().message(), dir_.string()));
  EXPECT_FALSE(WanModel::IsWanFolder(dir_.string()));
  EXPECT_TRUE(WanModel::IsWanFolder(FixtureDir() + "/tiny"));
}

TEST_F(WanLayout, MissingComponentFolderIsNamed) {
  const std::string m = CopyTiny();
  fs::remove_all(m + "/vae");
  auto r = WanModel::Load(m);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Contains(r.status().message(), "component 'vae' (AutoencoderKLWan) does not exist"));
}

TEST_F(WanLayout, ComponentMissingFromModelIndexIsNamed) {
  const std::string m = CopyTiny();
  test::WriteFile(m + "/model_index.json",
                  R"({"_class_name": "WanPipeline", "scheduler": ["diffusers", "UniPCMultistepScheduler"],
                      "text_encoder": ["transformers", "UMT5EncoderModel"], "tokenizer": ["transformers", "T5Tokenizer"],
                      "transformer": ["diffusers", "WanTransformer3DModel"]})");
  auto r = WanModel::Load(m);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Contains(r.status().message(), "model_index.json: component 'vae' is missing"));
}

TEST_F(WanLayout, OtherPipelinesAreUnsupported) {
  const std::string m = CopyTiny();
  test::WriteFile(m + "/model_index.json", R"({"_class_name": "WanImageToVideoPipeline"})");
  auto r = WanModel::Load(m);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnsupported);
  EXPECT_TRUE(Contains(r.status().message(), "WanImageToVideoPipeline"));
}

TEST_F(WanLayout, WrongShapeNamesFileTensorAndShapes) {
  const std::string t = Path("transformer");
  fs::create_directory(t);
  fs::copy_file(FixtureDir() + "/tiny/transformer/config.json", t + "/config.json");
  Rewrite(FixtureDir() + "/tiny/transformer", t + "/model.safetensors", [](TensorSpec s) {
    if (s.name == "blocks.1.attn1.to_q.weight") s.shape = {64 * 64};
    return std::optional<TensorSpec>(std::move(s));
  });
  auto r = WanTransformer::Load(t);
  ASSERT_FALSE(r.ok());
  const std::string& msg = r.status().message();
  EXPECT_TRUE(Contains(msg, t + "/model.safetensors"));
  EXPECT_TRUE(Contains(msg, "'blocks.1.attn1.to_q.weight' has shape [4096] but the model expects [64, 64]"));
}

TEST_F(WanLayout, MissingTensorIsNamed) {
  const std::string t = Path("transformer");
  fs::create_directory(t);
  fs::copy_file(FixtureDir() + "/tiny/transformer/config.json", t + "/config.json");
  Rewrite(FixtureDir() + "/tiny/transformer", t + "/model.safetensors", [](TensorSpec s) {
    return s.name == "proj_out.bias" ? std::nullopt : std::optional<TensorSpec>(std::move(s));
  });
  auto r = WanTransformer::Load(t);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Contains(r.status().message(), "missing tensor 'proj_out.bias' (expected shape [64])"));
}

TEST_F(WanLayout, UnknownTensorNamesAreAnUnknownLayout) {
  const std::string f = Path("other.safetensors");
  test::WriteSafetensors(f, {{"model.layers.0.weight", "F32", {2}, test::ToBytes(std::vector<float>{1, 2})}});
  auto t = WanTransformer::Load(f);
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(Contains(t.status().message(), "unknown transformer layout"));
  auto v = WanVaeDecoder::Load(f);
  ASSERT_FALSE(v.ok());
  EXPECT_TRUE(Contains(v.status().message(), "unknown VAE layout"));
}

TEST_F(WanLayout, ImageToVideoConfigIsUnsupported) {
  const std::string t = Path("transformer");
  fs::copy(FixtureDir() + "/tiny/transformer", t, fs::copy_options::recursive);
  auto cfg = nlohmann::json::parse(std::ifstream(t + "/config.json"));
  cfg["image_dim"] = 1280;
  test::WriteFile(t + "/config.json", cfg.dump());
  auto r = WanTransformer::Load(t);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnsupported);
  EXPECT_TRUE(Contains(r.status().message(), "'image_dim' is 1280"));
}

TEST_F(WanLayout, TextEncoderMissingTensorIsNamed) {
  const std::string t = Path("text_encoder");
  fs::create_directory(t);
  fs::copy_file(FixtureDir() + "/tiny/text_encoder/config.json", t + "/config.json");
  Rewrite(FixtureDir() + "/tiny/text_encoder", t + "/model.safetensors", [](TensorSpec s) {
    if (s.name == "encoder.block.1.layer.1.DenseReluDense.wo.weight") s.shape = {48, 32};
    return std::optional<TensorSpec>(std::move(s));
  });
  auto r = Umt5Encoder::Load(t);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Contains(r.status().message(),
                       "'encoder.block.1.layer.1.DenseReluDense.wo.weight' has shape [48, 32] but the model expects "
                       "[32, 48]"));
}

TEST_F(WanLayout, PrefixedOriginalNamesLoad) {
  // Some single-file checkpoints carry every key under "model.diffusion_model.".
  const std::string t = Path("transformer");
  fs::create_directory(t);
  fs::copy_file(FixtureDir() + "/original/transformer/config.json", t + "/config.json");
  Rewrite(FixtureDir() + "/original/transformer", t + "/wan.safetensors", [](TensorSpec s) {
    s.name = "model.diffusion_model." + s.name;
    return std::optional<TensorSpec>(std::move(s));
  });
  auto r = WanTransformer::Load(t);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->config().dim(), 64);
}

TEST_F(WanLayout, OriginalNamesWithoutConfigNeed128WideHeads) {
  const std::string f = Path("wan.safetensors");
  fs::copy_file(FixtureDir() + "/original/transformer/diffusion_pytorch_model.safetensors", f);
  auto r = WanTransformer::Load(f);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Contains(r.status().message(), "model width 64 (patch_embedding.weight) does not split into 0 heads"));
}

// config.json values no model can be built from (found by the wan_config fuzz target's properties,
// from inputs written after reading the code): widths past int, a negative epsilon, a latent std
// of zero or beyond float. Each is a model error naming the file, not an overflow or NaNs later.
TEST_F(WanLayout, ConfigValuesNoModelCanHaveAreRefused) {
  struct Case {
    const char* component;
    const char* key;
    nlohmann::json value;
    const char* message;
  };
  const Case cases[] = {
      {"transformer", "num_attention_heads", 65536, "the width (num_attention_heads x attention_head_dim)"},
      {"transformer", "patch_size", {2000, 2000, 2000}, "a patch's values"},
      {"transformer", "eps", -1.0, "'eps' must be a finite epsilon"},
      {"vae", "base_dim", 1 << 30, "a decoder width (base_dim x dim_mult)"},
      {"vae", "latents_std", std::vector<double>(16, 0.0), "'latents_std' holds 0"},
      {"vae", "latents_mean", std::vector<double>(16, 1e300), "must be a finite float"},
      // A z_dim other than Wan2.1's 16 with its means but no stds (the wan_config fuzz target, in CI).
      {"vae", "latents_mean", std::vector<double>(17, 0.5), "of 17 values each are needed for z_dim 17"},
      {"text_encoder", "d_kv", 1 << 30, "the attention width (num_heads x d_kv)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.component) + " " + c.key);
    const std::string m = CopyTiny();
    const std::string file = m + "/" + c.component + "/config.json";
    nlohmann::json doc;
    {
      std::ifstream in(file);
      doc = nlohmann::json::parse(in);
    }
    doc[c.key] = c.value;
    if (std::string(c.key) == "num_attention_heads") doc["attention_head_dim"] = 65536;
    if (c.value.is_array() && c.value.size() == 17) {
      doc["z_dim"] = 17;
      doc.erase("latents_std");
    }
    test::WriteFile(file, doc.dump());
    auto r = WanModel::Load(m);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kModel) << r.status().message();
    EXPECT_TRUE(Contains(r.status().message(), c.message)) << r.status().message();
    EXPECT_TRUE(Contains(r.status().message(), "config.json")) << r.status().message();
    fs::remove_all(m);
  }
}

size_t ElementBytes(const std::string& dtype) { return dtype == "F32" ? 4 : dtype.rfind("F8", 0) == 0 ? 1 : 2; }

// Shapes that would build no model (found by the wan_shapes fuzz target: a zero-size patch
// divided by zero, a scalar VAE tensor was indexed past its end, an odd time-embedding width was
// accepted) are model errors naming the file and the tensor.
TEST_F(WanLayout, OriginalNamesWithImpossibleShapesAreRefusedByName) {
  struct Case {
    const char* tensor;
    std::vector<int64_t> shape;
    const char* message;
  };
  const std::string transformer = FixtureDir() + "/original/transformer";
  for (const Case& c : {Case{"patch_embedding.weight", {64, 16, 0, 2, 2}, "'patch_embedding.weight' has shape"},
                        Case{"time_embedding.0.weight", {64, 255}, "must be even"}}) {
    SCOPED_TRACE(c.tensor);
    const std::string t = Path(std::string("t_") + c.message[1]);
    fs::create_directory(t);
    fs::copy_file(transformer + "/config.json", t + "/config.json");
    Rewrite(transformer, t + "/wan.safetensors", [&](TensorSpec s) {
      if (s.name == c.tensor) {
        s.shape = c.shape;
        int64_t n = 1;
        for (int64_t d : c.shape) n *= d;
        s.bytes.resize(static_cast<size_t>(n) * ElementBytes(s.dtype));
      }
      return std::optional<TensorSpec>(std::move(s));
    });
    auto r = WanTransformer::Load(t);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kModel) << r.status().message();
    EXPECT_TRUE(Contains(r.status().message(), c.message)) << r.status().message();
    EXPECT_TRUE(Contains(r.status().message(), "wan.safetensors")) << r.status().message();
  }
  const std::string f = Path("scalar_vae.safetensors");
  Rewrite(FixtureDir() + "/original/wan_2.1_vae_tiny.safetensors", f, [](TensorSpec s) {
    if (s.name == "decoder.head.0.gamma") {
      s.shape = {};
      s.bytes.resize(ElementBytes(s.dtype));
    }
    return std::optional<TensorSpec>(std::move(s));
  });
  auto v = WanVaeDecoder::Load(f);
  ASSERT_FALSE(v.ok());
  EXPECT_TRUE(Contains(v.status().message(), "'decoder.head.0.gamma' has shape []")) << v.status().message();
}

TEST_F(WanLayout, VaeErrorsNameTheStoredOriginalName) {
  const std::string f = Path("vae.safetensors");
  Rewrite(FixtureDir() + "/original/wan_2.1_vae_tiny.safetensors", f, [](TensorSpec s) {
    if (s.name == "decoder.head.2.weight") {  // a 2D conv where a 3D one belongs
      s.shape = {3, 4, 3, 3};
      s.bytes.resize(3 * 4 * 3 * 3 * 2);
    }
    return std::optional<TensorSpec>(std::move(s));
  });
  auto r = WanVaeDecoder::Load(f);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Contains(r.status().message(),
                       "'decoder.head.2.weight' has shape [3, 4, 3, 3] but the model expects [3, 4, 3, 3, 3]"));
}

}  // namespace
}  // namespace ds
