// The provenance record names the model by its folder's name, never by a path (pipelines/provenance).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include <unistd.h>

#include "pipelines/provenance.h"

namespace ds {
namespace {

std::string RecordedModelName(const std::string& model) {
  Options opts;
  opts.model = model;
  ModelInfo info;
  info.family = "demo";
  const nlohmann::json j = nlohmann::json::parse(ProvenanceJson(opts, info, OutputShape{64, 64, 16}, "cpu", 2));
  EXPECT_EQ(j["options"]["model"], j["model"]["name"]) << "the option table's copy says the same";
  return j["model"]["name"].get<std::string>();
}

TEST(Provenance, NamesTheModelFolderNotItsPath) {
  EXPECT_EQ(RecordedModelName("demo"), "demo");
  EXPECT_EQ(RecordedModelName("/srv/models/wan2.1-t2v-1.3b/"), "wan2.1-t2v-1.3b");
  const std::string cwd = std::filesystem::current_path().filename().string();
  ASSERT_FALSE(cwd.empty());
  EXPECT_EQ(RecordedModelName("."), cwd) << "'.' is the folder it names";
  EXPECT_EQ(RecordedModelName("./"), cwd);
  EXPECT_EQ(RecordedModelName("../" + cwd + "/."), cwd);
}

// A model folder that is a symlink (a Hugging Face cache snapshot) is recorded by the name given.
TEST(Provenance, NamesASymlinkedModelByItsLinkName) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ds-provenance-" + std::to_string(::getpid()));
  fs::create_directories(dir / "snapshots" / "abc123");
  fs::create_directory_symlink(dir / "snapshots" / "abc123", dir / "wan2.1-t2v-1.3b");
  EXPECT_EQ(RecordedModelName((dir / "wan2.1-t2v-1.3b").string()), "wan2.1-t2v-1.3b");
  EXPECT_EQ(RecordedModelName((dir / "wan2.1-t2v-1.3b").string() + "/"), "wan2.1-t2v-1.3b");
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// The sampler is recorded as it ran: the option's "auto" resolved to the model's own.
TEST(Provenance, RecordsTheSamplerThatRan) {
  auto recorded = [](const std::string& option, SamplerKind model_default) {
    Options opts;
    opts.model = "demo";
    opts.sampler = option;
    ModelInfo info;
    info.family = "wan2.1";
    info.default_sampler = model_default;
    const nlohmann::json j = nlohmann::json::parse(ProvenanceJson(opts, info, OutputShape{64, 64, 16}, "cpu", 2));
    EXPECT_EQ(j["options"]["sampler"], option) << "the table's copy keeps the option as set";
    return j["sampler"].get<std::string>();
  };
  EXPECT_EQ(recorded("auto", SamplerKind::kUniPc), "unipc");
  EXPECT_EQ(recorded("auto", SamplerKind::kEuler), "euler");
  EXPECT_EQ(recorded("euler", SamplerKind::kUniPc), "euler");
  EXPECT_EQ(recorded("unipc", SamplerKind::kEuler), "unipc");
}

}  // namespace
}  // namespace ds
