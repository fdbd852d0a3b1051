#include "core/config.h"

#include <gtest/gtest.h>

#include "tests/core/test_files.h"

namespace ds {
namespace {

using test::HasSubstr;

constexpr const char* kConfig = R"({
  "family": "demo",
  "dit": {"dim": 192, "patch": [2, 2, 2], "rope_theta": 10000.0, "big": 5000000000,
          "prefix_mask_channel": true, "pos": "rope3d", "ratio": 0.5},
  "sampling": {"steps": 16}
})";

Config Parse(const char* text = kConfig) {
  auto c = Config::Parse(text, "config.json");
  EXPECT_TRUE(c.ok()) << c.status().message();
  return std::move(c).value();
}

std::string ErrorOf(const Status& s) {
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kModel) << s.message();
  return s.message();
}

TEST(ConfigTest, TypedGetters) {
  Config c = Parse();
  EXPECT_EQ(c.Get<int>("dit.dim").value(), 192);
  EXPECT_EQ(c.Get<int64_t>("dit.big").value(), 5000000000);
  EXPECT_EQ(c.Get<double>("dit.rope_theta").value(), 10000.0);
  EXPECT_EQ(c.Get<float>("dit.ratio").value(), 0.5f);
  EXPECT_EQ(c.Get<double>("dit.dim").value(), 192.0);  // integers are numbers too
  EXPECT_TRUE(c.Get<bool>("dit.prefix_mask_channel").value());
  EXPECT_EQ(c.GetString("dit.pos").value(), "rope3d");
  EXPECT_EQ(c.Get<std::string>("family").value(), "demo");
  EXPECT_EQ(c.GetIntArray("dit.patch", 3).value(), (std::vector<int64_t>{2, 2, 2}));
  EXPECT_EQ(c.GetIntArray("dit.patch").value().size(), 3u);
  EXPECT_EQ(c.GetDoubleArray("dit.patch").value(), (std::vector<double>{2, 2, 2}));
  EXPECT_TRUE(c.Has("sampling.steps"));
  EXPECT_FALSE(c.Has("sampling.guidance"));
  EXPECT_FALSE(c.Has("family.sub"));
}

TEST(ConfigTest, GetOrFallsBackOnlyWhenMissing) {
  Config c = Parse();
  EXPECT_EQ(c.GetOr<double>("sampling.guidance", 4.0).value(), 4.0);
  EXPECT_EQ(c.GetOr<double>("nosection.guidance", 4.5).value(), 4.5);
  EXPECT_EQ(c.GetOr<int>("sampling.steps", 50).value(), 16);
  EXPECT_EQ(c.GetOr<std::string>("dit.qk_norm", "rms").value(), "rms");
  // Present but wrongly typed is an error, not the default.
  EXPECT_TRUE(HasSubstr(ErrorOf(c.GetOr<int>("dit.pos", 3).status()),
                        "config.json: 'dit.pos' must be an integer, got \"rope3d\""));
}

TEST(ConfigTest, MissingKeyAndWrongTypeErrors) {
  Config c = Parse();
  EXPECT_TRUE(
      HasSubstr(ErrorOf(c.Get<int>("dit.heads").status()), "config.json: missing key 'dit.heads'"));
  EXPECT_TRUE(HasSubstr(ErrorOf(c.Get<int>("dit.rope_theta").status()),
                        "'dit.rope_theta' must be an integer, got 10000.0"));
  EXPECT_TRUE(
      HasSubstr(ErrorOf(c.Get<int>("dit.big").status()),
                "'dit.big' must be an integer in [-2147483648, 2147483647], got 5000000000"));
  EXPECT_TRUE(HasSubstr(ErrorOf(c.Get<bool>("dit.dim").status()),
                        "'dit.dim' must be true or false, got 192"));
  EXPECT_TRUE(HasSubstr(ErrorOf(c.GetString("dit.patch").status()),
                        "'dit.patch' must be a string, got [2,2,2]"));
  EXPECT_TRUE(HasSubstr(ErrorOf(c.Get<double>("family").status()),
                        "'family' must be a number, got \"demo\""));
  EXPECT_TRUE(HasSubstr(ErrorOf(c.Get<int>("family.size").status()),
                        "'family' must be an object holding 'size', got \"demo\""));
}

TEST(ConfigTest, ArrayErrors) {
  Config c = Parse(R"({"dit": {"patch": [2, 2], "axes": [8, 1.5], "pos": 3}})");
  EXPECT_TRUE(HasSubstr(ErrorOf(c.GetIntArray("dit.patch", 3).status()),
                        "config.json: 'dit.patch' must be an array of 3 integers, got [2,2]"));
  EXPECT_TRUE(HasSubstr(ErrorOf(c.GetIntArray("dit.axes").status()),
                        "'dit.axes' must be an array of integers, got [8,1.5]"));
  EXPECT_TRUE(HasSubstr(ErrorOf(c.GetDoubleArray("dit.pos").status()),
                        "'dit.pos' must be an array of numbers, got 3"));
  EXPECT_TRUE(
      HasSubstr(ErrorOf(c.GetIntArray("dit.nothing").status()), "missing key 'dit.nothing'"));
}

TEST(ConfigTest, SyntaxErrorGivesLineAndColumn) {
  auto c = Config::Parse("{\n  \"dit\": {\n    \"dim\": 192,\n  }\n}", "config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kModel);
  EXPECT_TRUE(HasSubstr(c.status().message(),
                        "config.json: not valid JSON: parse error at line 4, column 3"));
}

TEST(ConfigTest, RootMustBeAnObject) {
  auto c = Config::Parse("[1, 2]", "config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(HasSubstr(c.status().message(), "config.json: must hold a JSON object, got [1,2]"));
}

class ConfigFileTest : public test::TempDirTest {};

TEST_F(ConfigFileTest, LoadsFileAndNamesItInErrors) {
  std::string path = Path("config.json");
  test::WriteFile(path, kConfig);
  auto c = Config::Load(path);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->name(), path);
  EXPECT_EQ(c->Get<int>("sampling.steps").value(), 16);
  EXPECT_TRUE(HasSubstr(c->Get<int>("x").status().message(), path + ": missing key 'x'"));
}

TEST_F(ConfigFileTest, MissingFileIsAnIoError) {
  auto c = Config::Load(Path("absent.json"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kIo);
  EXPECT_TRUE(HasSubstr(c.status().message(), Path("absent.json")));
}

}  // namespace
}  // namespace ds
