// Wan prompt handling: prompt_clean against Python's html.unescape/str.isspace behaviour, token ids
// against the transformers tokenizer, and the UMT5 encoder's zero-padded prompt embeddings.
#include <gtest/gtest.h>

#include "core/wan/umt5.h"
#include "core/wan/wan_model.h"
#include "core/wan/wan_tokenizer.h"
#include "tests/wan/wan_test_util.h"

namespace ds {
namespace {

using wan_test::Cases;
using wan_test::FixtureDir;
using wan_test::Load;
using wan_test::RelError;

TEST(WanPromptClean, MatchesPython) {
  // Expected values printed by CPython 3.11 for whitespace_clean(basic_clean(text)) without ftfy.
  const std::pair<const char*, const char*> cases[] = {
      {"  a \t b\n", "a b"},
      {"&amp;amp;", "&"},
      {"&lt;b&gt;", "<b>"},
      {"&#233;t&#xE9;", "\u00e9t\u00e9"},
      {"&#x1F600;", "\U0001F600"},
      {"&ampfoo", "&foo"},
      {"a\u3000b\u00a0c", "a b c"},
      {"&hellip", "&hellip"},
      {"&hellip;", "\u2026"},
      {"&#128;", "\u20ac"},
      {"&#0;", "\ufffd"},
      {"&#x;", "&#x;"},
      {"&#12abc", "abc"},
      {"&amp", "&"},
      {"x&;y", "x&;y"},
      {"&#xD800;", "\ufffd"},
      {"&#1114112;", "\ufffd"},
      {"caf&eacute", "caf\u00e9"},
      {"a&#11;b", "ab"},
      {"tab\u2028end ", "tab end"},
      {"&AMP;", "&"},
      {"&nosuch;", "&nosuch;"},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(WanPromptClean(in), want) << in;
}

TEST(WanTokenizerTest, IdsMatchTransformers) {
  DS_REQUIRE_SENTENCEPIECE();
  auto tok = WanTokenizer::Load(FixtureDir() + "/tiny/tokenizer");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  const auto cases = Cases()["tokenizer"];
  for (const auto& c : cases) {
    const std::string prompt = c["prompt"];
    auto ids = tok->Encode(prompt, 512);
    ASSERT_TRUE(ids.ok()) << ids.status().message();
    EXPECT_EQ(*ids, c["ids"].get<std::vector<int>>()) << prompt;
  }
}

TEST(WanTokenizerTest, TruncatesKeepingEos) {
  DS_REQUIRE_SENTENCEPIECE();
  auto tok = WanTokenizer::Load(FixtureDir() + "/tiny/tokenizer");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  const auto c = Cases()["tokenizer"][0];
  const std::vector<int> full = c["ids"];
  auto ids = tok->Encode(c["prompt"].get<std::string>(), 4);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int>{full[0], full[1], full[2], 1}));
  EXPECT_FALSE(tok->Encode("a", 0).ok());
}

TEST(WanTokenizerTest, MissingModelIsAnError) {
  DS_REQUIRE_SENTENCEPIECE();
  auto tok = WanTokenizer::Load(FixtureDir());
  ASSERT_FALSE(tok.ok());
  EXPECT_TRUE(wan_test::Contains(tok.status().message(), "spiece.model"));
}

TEST(Umt5, RelativePositionBucketsMatchTheSpecTable) {
  // g(n) for n = |key − query|: n below 8, then logarithmic bins up to 15 (spec §1.3).
  const std::pair<int, int> g[] = {{0, 0},   {7, 7},   {8, 8},   {11, 8},  {12, 9},  {15, 9},
                                   {16, 10}, {22, 10}, {23, 11}, {31, 11}, {32, 12}, {45, 12},
                                   {46, 13}, {63, 13}, {64, 14}, {90, 14}, {91, 15}, {500, 15}};
  for (auto [n, want] : g) {
    EXPECT_EQ(Umt5Encoder::Bucket(-n, 32, 128), want) << "key " << n << " before the query";
    if (n > 0) {
      EXPECT_EQ(Umt5Encoder::Bucket(n, 32, 128), 16 + want) << "key " << n << " after the query";
    }
  }
}

TEST(Umt5, PromptEmbeddingsMatchDiffusers) {
  DS_REQUIRE_SENTENCEPIECE();
  auto model = WanModel::Load(FixtureDir() + "/tiny");
  ASSERT_TRUE(model.ok()) << model.status().message();
  auto be = wan_test::MakeBackend();
  const int text_len = Cases()["text_len"];
  const auto want = Load("text_encoder.embeds");
  ASSERT_EQ(want.shape, (std::vector<int64_t>{text_len, 32}));
  std::vector<float> got(want.values.size(), std::nanf(""));
  Status s = (*model)->EncodePrompt(*be, Cases()["text_encoder"]["prompt"].get<std::string>(), text_len, got);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_LE(RelError(got, want.values), 1e-4);
  const size_t real = Cases()["tokenizer"][0]["ids"].size() * 32;
  for (size_t i = real; i < got.size(); ++i) ASSERT_EQ(got[i], 0.0f) << "padding row element " << i;
}

TEST(Umt5, EncodesTheSameAfterReleasingItsMemory) {
  DS_REQUIRE_SENTENCEPIECE();
  auto model = WanModel::Load(FixtureDir() + "/tiny");
  ASSERT_TRUE(model.ok()) << model.status().message();
  auto be = wan_test::MakeBackend();
  std::vector<float> before, after;
  ASSERT_TRUE((*model)->EncodePrompt(*be, "a cat on a wall", 16, before).ok());
  (*model)->text_encoder().ReleaseMemory();
  ASSERT_TRUE((*model)->EncodePrompt(*be, "a cat on a wall", 16, after).ok());
  EXPECT_EQ(before, after);
}

}  // namespace
}  // namespace ds
