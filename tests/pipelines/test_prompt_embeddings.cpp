// pipelines/prompt_embeddings.h: a file written by WritePromptEmbeddings reads back exactly, and one
// whose values are not finite (a corrupt or hand-made file) is refused naming the file, the tensor
// and where, instead of turning every frame into NaNs.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <filesystem>
#include <limits>
#include <string>

#include "pipelines/prompt_embeddings.h"

namespace ds {
namespace {

namespace fs = std::filesystem;

PromptEmbeddings Example() {
  PromptEmbeddings e;
  e.family = "wan2.1";
  e.prompt = "a red fox";
  e.negative_prompt = "blurry";
  e.rows = 3;
  e.cols = 4;
  for (int i = 0; i < 12; ++i) {
    e.cond.push_back(0.25f * static_cast<float>(i) - 1.0f);
    e.uncond.push_back(-0.5f * static_cast<float>(i));
  }
  return e;
}

std::string TempPath(const char* tag) {
  return (fs::temp_directory_path() /
          ("ds_embeds_" + std::string(tag) + "_" + std::to_string(::getpid()) + ".safetensors"))
      .string();
}

TEST(PromptEmbeddings, RoundTripsExactly) {
  const std::string path = TempPath("ok");
  const PromptEmbeddings e = Example();
  ASSERT_TRUE(WritePromptEmbeddings(path, e).ok());
  auto r = ReadPromptEmbeddings(path, "wan2.1", 3, 4);
  fs::remove(path);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->prompt, e.prompt);
  EXPECT_EQ(r->negative_prompt, e.negative_prompt);
  EXPECT_EQ(r->cond, e.cond);
  EXPECT_EQ(r->uncond, e.uncond);
}

TEST(PromptEmbeddings, NonFiniteValuesAreRefusedByPlace) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    SCOPED_TRACE(bad);
    const std::string path = TempPath("bad");
    PromptEmbeddings e = Example();
    e.uncond[7] = bad;  // row 1, column 3 of the negative prompt's
    ASSERT_TRUE(WritePromptEmbeddings(path, e).ok());
    auto r = ReadPromptEmbeddings(path, "wan2.1", 3, 4);
    fs::remove(path);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    const std::string& m = r.status().message();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find("\"negative_prompt\""), std::string::npos) << m;
    EXPECT_NE(m.find("row 1, column 3"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace ds
