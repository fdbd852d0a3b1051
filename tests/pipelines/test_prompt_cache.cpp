// pipelines/prompt_cache.h: bounded, and an entry a caller holds survives additions.
#include <gtest/gtest.h>

#include <string>

#include "pipelines/prompt_cache.h"

namespace ds {
namespace {

TEST(PromptCache, KeepsTheEntryTheCallerHoldsWhenFull) {
  PromptCache<std::string> cache(3);
  const std::string prompt = "prompt";
  const std::string* held = cache.Add(prompt, "the prompt's embedding", nullptr);
  cache.Add("b", "b's", nullptr);
  cache.Add("c", "c's", nullptr);
  ASSERT_EQ(cache.size(), 3u);
  const std::string* added = cache.Add("negative", "the negative's", &prompt);
  EXPECT_EQ(cache.size(), 2u) << "full: all but the held entry dropped";
  EXPECT_EQ(cache.Find(prompt), held) << "the held entry stays where it is";
  EXPECT_EQ(*held, "the prompt's embedding");
  EXPECT_EQ(*added, "the negative's");
  EXPECT_EQ(cache.Find("b"), nullptr);
}

TEST(PromptCache, StaysBounded) {
  PromptCache<int> cache(4);
  for (int i = 0; i < 100; ++i) {
    cache.Add(std::to_string(i), i, nullptr);
    EXPECT_LE(cache.size(), 4u);
    ASSERT_NE(cache.Find(std::to_string(i)), nullptr);
    EXPECT_EQ(*cache.Find(std::to_string(i)), i);
  }
  cache.Add("99", -1, nullptr);  // an existing prompt is replaced, nothing dropped
  EXPECT_EQ(*cache.Find("99"), -1);
  EXPECT_NE(cache.Find("98"), nullptr);
}

}  // namespace
}  // namespace ds
