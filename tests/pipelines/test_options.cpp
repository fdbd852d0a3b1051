#include <gtest/gtest.h>

#include <set>
#include <string>

#include "pipelines/options.h"

namespace ds {
namespace {

TEST(Options, TableIsWellFormed) {
  std::set<std::string> names;
  for (const ds_option_info& o : OptionTable()) {
    ASSERT_NE(o.name, nullptr);
    EXPECT_TRUE(names.insert(o.name).second) << o.name;
    EXPECT_GT(std::string(o.help).size(), 10u) << o.name;
    Options opts;
    EXPECT_TRUE(SetOption(opts, o.name, o.default_value).ok()) << o.name << " default " << o.default_value;
    if (o.type != DS_OPT_STRING) {
      EXPECT_LE(o.min, o.max) << o.name;
    }
  }
  for (const char* required : {"model", "prompt", "negative-prompt", "width", "height", "frames", "fps", "steps",
                               "guidance", "shift", "seed", "device", "threads", "vae-tiling", "sampler"}) {
    EXPECT_TRUE(names.count(required)) << required;
  }
}

TEST(Options, DefaultsComeFromTheTable) {
  const Options o = DefaultOptions();
  for (const ds_option_info& info : OptionTable()) {
    Options fresh;
    ASSERT_TRUE(SetOption(fresh, info.name, info.default_value).ok());
    EXPECT_EQ(*GetOption(o, info.name), *GetOption(fresh, info.name)) << info.name;
  }
  EXPECT_EQ(o.model, "demo");
  EXPECT_FALSE(o.prompt.empty());
}

TEST(Options, NumbersIgnoreTheLocale) {
  // A host application may run under a comma-decimal locale; parsing must not follow it.
  Options o;
  ASSERT_TRUE(SetOption(o, "guidance", "4.5").ok());
  EXPECT_EQ(o.guidance, 4.5);
  EXPECT_FALSE(SetOption(o, "guidance", "4,5").ok());
  ASSERT_TRUE(SetOption(o, "steps", "+7").ok());
  EXPECT_EQ(o.steps, 7);
}

TEST(Options, RoundTripAndUnderscoreAlias) {
  Options o;
  ASSERT_TRUE(SetOption(o, "negative_prompt", "blurry").ok());
  EXPECT_EQ(*GetOption(o, "negative-prompt"), "blurry");
  ASSERT_TRUE(SetOption(o, "steps", "12").ok());
  EXPECT_EQ(o.steps, 12);
  ASSERT_TRUE(SetOption(o, "guidance", "4.5").ok());
  EXPECT_EQ(*GetOption(o, "guidance"), "4.5");
  ASSERT_TRUE(SetOption(o, "seed", "123456789").ok());
  EXPECT_EQ(o.seed, 123456789);
}

TEST(Options, RejectsBadValuesNamingThem) {
  Options o;
  Status s = SetOption(o, "steps", "-3");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("steps"), std::string::npos);
  EXPECT_NE(s.message().find("-3"), std::string::npos);
  EXPECT_FALSE(SetOption(o, "steps", "2.5").ok());
  // Counts are written in decimal digits: an exponent or a fraction is refused, even a whole one.
  s = SetOption(o, "seed", "1e3");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("not an integer"), std::string::npos) << s.message();
  EXPECT_FALSE(SetOption(o, "steps", "20.0").ok());
  EXPECT_FALSE(SetOption(o, "steps", "0x10").ok());
  EXPECT_FALSE(SetOption(o, "steps", "+").ok());
  s = SetOption(o, "seed", "99999999999999999999999");  // past int64: out of range, not "no integer"
  EXPECT_NE(s.message().find("outside"), std::string::npos) << s.message();
  EXPECT_TRUE(SetOption(o, "steps", "+7").ok());
  EXPECT_EQ(o.steps, 7);
  EXPECT_TRUE(SetOption(o, "seed", "9007199254740991").ok()) << "the largest seed, 2^53 - 1";
  EXPECT_EQ(o.seed, 9007199254740991LL);
  EXPECT_FALSE(SetOption(o, "seed", "9007199254740992").ok());
  ASSERT_TRUE(SetOption(o, "steps", "0").ok());
  ASSERT_TRUE(SetOption(o, "seed", "0").ok());
  EXPECT_FALSE(SetOption(o, "steps", "abc").ok());
  EXPECT_FALSE(SetOption(o, "steps", "").ok());
  EXPECT_FALSE(SetOption(o, "guidance", "nan").ok());
  EXPECT_FALSE(SetOption(o, "shift", "0").ok());
  s = SetOption(o, "guidance", "-0.5");  // not the sentinel, not a scale
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("guidance"), std::string::npos);
  EXPECT_TRUE(SetOption(o, "guidance", "0").ok()) << "0: the unconditional pass alone";
  EXPECT_TRUE(SetOption(o, "guidance", "-1").ok());
  EXPECT_FALSE(SetOption(o, "device", "tpu").ok());
  EXPECT_FALSE(SetOption(o, "device", "cuda:").ok());
  EXPECT_FALSE(SetOption(o, "device", "cuda:-1").ok());
  EXPECT_TRUE(SetOption(o, "device", "cuda:1").ok()) << "PyTorch's spelling of the second GPU";
  EXPECT_EQ(o.device, "cuda:1");
  EXPECT_TRUE(SetOption(o, "device", "auto").ok());
  EXPECT_FALSE(SetOption(o, "vae-tiling", "true").ok());
  EXPECT_TRUE(SetOption(o, "vae_tiling", "on").ok());
  EXPECT_EQ(o.vae_tiling, "on");
  EXPECT_FALSE(SetOption(o, "sampler", "dpm++").ok());
  EXPECT_TRUE(SetOption(o, "sampler", "unipc").ok());
  EXPECT_EQ(o.sampler, "unipc");
  EXPECT_FALSE(SetOption(o, "model", "").ok());
  EXPECT_FALSE(SetOption(o, "prompt", "").ok());
  EXPECT_FALSE(SetOption(o, "prompt", "  \n").ok());
  EXPECT_TRUE(SetOption(o, "negative-prompt", "").ok()) << "an empty negative prompt is the usual one";
  Status u = SetOption(o, "stpes", "3");
  EXPECT_NE(u.message().find("stpes"), std::string::npos);
  EXPECT_EQ(o.steps, 0) << "a rejected value must not change the option";
}

// Prompts are UTF-8 text: each malformed form is refused naming its byte; every well-formed one,
// the longest sequences and the last code point included, is taken as given.
TEST(Options, PromptsMustBeUtf8) {
  Options o = DefaultOptions();
  const struct {
    const char* text;
    size_t byte;
  } bad[] = {
      {"a \xff fox", 2},        // no such lead byte
      {"fox \xc3", 4},          // cut short
      {"\xc3(", 0},             // no continuation byte
      {"ab\xc0\xaf", 2},        // overlong '/'
      {"\xe0\x80\xaf", 0},      // overlong, three bytes
      {"x\xed\xa0\x80", 1},     // a UTF-16 surrogate
      {"\xf4\x90\x80\x80", 0},  // past U+10FFFF
      {"ok \x80", 3},           // a lone continuation byte
  };
  for (const auto& b : bad) {
    SCOPED_TRACE(b.text);
    for (const char* name : {"prompt", "negative-prompt"}) {
      const Status s = SetOption(o, name, b.text);
      EXPECT_EQ(s.code(), Code::kInvalidArgument);
      EXPECT_NE(s.message().find(std::string("option '") + name + "'"), std::string::npos) << s.message();
      EXPECT_NE(s.message().find("at byte " + std::to_string(b.byte)), std::string::npos) << s.message();
    }
  }
  EXPECT_EQ(o.prompt, DefaultOptions().prompt) << "a refused prompt must not change the option";
  // A mebibyte of prompt at most.
  EXPECT_TRUE(SetOption(o, "prompt", std::string(size_t{1} << 20, 'a')).ok());
  const Status big = SetOption(o, "negative-prompt", std::string((size_t{1} << 20) + 1, 'a'));
  EXPECT_NE(big.message().find("1048577 bytes, at most 1048576"), std::string::npos) << big.message();
  const char* good = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\xa6\x8a \xf4\x8f\xbf\xbf \xef\xbf\xbd";
  ASSERT_TRUE(SetOption(o, "prompt", good).ok());
  EXPECT_EQ(o.prompt, good);
}

}  // namespace
}  // namespace ds
