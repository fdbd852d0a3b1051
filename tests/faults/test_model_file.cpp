// Model files that are cut short or change under a running engine.
//
// Policy (tests/README.md): model files are memory-mapped read-only and validated completely on open;
// loading converts every tensor into float32 memory of our own (Weights::Get), so once ds_load has
// returned the engine never reads the file again and it may be truncated, overwritten in place,
// replaced or deleted. A file replaced by rename is harmless at any time (the mapping keeps the old
// file). Only truncating or rewriting the file in place *during* ds_load is unsupported: like every
// mmap-based loader, the engine may then read mixed data or receive SIGBUS. Update models by writing a
// new file and renaming it over the old one.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/safetensors.h"
#include "tests/faults/fault_util.h"

namespace {

namespace fs = std::filesystem;
using faults::Clip;
using faults::Generator;
using faults::ScratchDir;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

TEST(ModelFile, EveryTruncationIsAnErrorNamingTheFile) {
  ScratchDir dir("truncated");
  ASSERT_EQ(ds::testing::WriteRandomModel(dir.path(), faults::SmallSpec(), 1), "");
  const std::string path = dir / "model.safetensors";
  const std::string whole = ReadFile(path);
  ASSERT_GT(whole.size(), 4096u);
  // Every length through the header and the first tensors, then a stride through the data.
  std::vector<size_t> lengths;
  for (size_t n = 0; n < 4096; ++n) lengths.push_back(n);
  for (size_t n = 4096; n < whole.size(); n += whole.size() / 97) lengths.push_back(n);
  lengths.push_back(whole.size() - 1);
  for (size_t n : lengths) {
    WriteFile(path, whole.substr(0, n));
    auto f = ds::SafetensorsFile::Open(path);
    ASSERT_FALSE(f.ok()) << "a file cut to " << n << " of " << whole.size() << " bytes opens";
    EXPECT_NE(f.status().message().find(path), std::string::npos) << f.status().message();
  }
  // And through the C API, which must keep the generator usable.
  WriteFile(path, whole.substr(0, whole.size() / 2));
  Generator g(dir.path());
  EXPECT_EQ(g.Load(), DS_ERR_MODEL) << g.error();
  EXPECT_NE(g.error().find("model.safetensors"), std::string::npos) << g.error();
  WriteFile(path, whole);
  EXPECT_EQ(g.Load(), DS_OK) << g.error();
}

TEST(ModelFile, TruncatedOverwrittenOrDeletedAfterLoadIsHarmless) {
  ScratchDir dir("after-load");
  ASSERT_EQ(ds::testing::WriteRandomModel(dir.path(), faults::SmallSpec(), 2), "");
  const Clip ref = faults::Reference(dir.path());
  const std::string path = dir / "model.safetensors";
  const auto size = static_cast<off_t>(fs::file_size(path));

  Generator g(dir.path());
  ASSERT_EQ(g.Load(), DS_OK) << g.error();
  ASSERT_EQ(truncate(path.c_str(), 0), 0);  // the pages the mapping held are gone: reading them is SIGBUS
  Clip after_truncation;
  ASSERT_EQ(g.Generate(after_truncation), DS_OK) << g.error();
  EXPECT_EQ(after_truncation.frames, ref.frames);

  // Same size again, every byte changed in place (a MAP_PRIVATE mapping would see these pages).
  const int fd = open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  const std::string junk(static_cast<size_t>(size), '\xa5');
  ASSERT_EQ(pwrite(fd, junk.data(), junk.size(), 0), static_cast<ssize_t>(junk.size()));
  close(fd);
  Clip after_rewrite;
  ASSERT_EQ(g.Generate(after_rewrite), DS_OK) << g.error();
  EXPECT_EQ(after_rewrite.frames, ref.frames);

  for (const char* name : {"model.safetensors", "config.json", "vocab.txt"}) fs::remove(dir / name);
  Clip after_delete;
  ASSERT_EQ(g.Generate(after_delete), DS_OK) << g.error();
  EXPECT_EQ(after_delete.frames, ref.frames);
}

// A Wan2.1 folder keeps its large matrices mapped (tests/README.md, policy): replacing its files by
// rename and then deleting the whole folder leave the loaded generator working, with the same frames.
TEST(ModelFile, WanFolderReplacedByRenameThenDeletedAfterLoadIsHarmless) {
  ScratchDir dir("wan-after-load");
  const char* root = std::getenv("DS_SOURCE_ROOT");
  const std::string model = dir / "tiny";
  fs::copy(std::string(root ? root : ".") + "/tests/fixtures/wan/tiny", model, fs::copy_options::recursive);
  Generator g(model);
  for (auto [name, value] : {std::pair{"width", "32"}, {"height", "16"}, {"frames", "5"}, {"steps", "2"}}) {
    ASSERT_EQ(ds_set_option(g.get(), name, value), DS_OK) << name;
  }
  const ds_status loaded = g.Load();
  if (loaded != DS_OK && g.error().find("sentencepiece") != std::string::npos) GTEST_SKIP() << g.error();
  ASSERT_EQ(loaded, DS_OK) << g.error();
  Clip ref;
  ASSERT_EQ(g.Generate(ref), DS_OK) << g.error();
  ASSERT_EQ(ref.frames.size(), 5u);
  for (const auto& entry : fs::recursive_directory_iterator(model)) {
    if (entry.path().extension() != ".safetensors") continue;
    const std::string junk = entry.path().string() + ".new";
    WriteFile(junk, std::string(static_cast<size_t>(fs::file_size(entry.path())), '\x5a'));
    ASSERT_EQ(rename(junk.c_str(), entry.path().c_str()), 0);
  }
  Clip after_rename;
  ASSERT_EQ(g.Generate(after_rename), DS_OK) << g.error();
  EXPECT_EQ(after_rename.frames, ref.frames);
  fs::remove_all(model);
  Clip after_delete;
  ASSERT_EQ(g.Generate(after_delete), DS_OK) << g.error();
  EXPECT_EQ(after_delete.frames, ref.frames);
  // A prompt not seen before runs the text encoder on the (deleted) mapped files too.
  ASSERT_EQ(ds_set_option(g.get(), "prompt", "a dog swims across a river"), DS_OK);
  Clip new_prompt;
  ASSERT_EQ(g.Generate(new_prompt), DS_OK) << g.error();
  EXPECT_EQ(new_prompt.frames.size(), 5u);
  EXPECT_NE(new_prompt.frames, ref.frames);
}

TEST(ModelFile, ReplacedByRenameWhileMappedKeepsWhatWasOpened) {
  ScratchDir dir("rename");
  const std::string path = dir / "w.safetensors";
  ASSERT_EQ(ds::testing::WriteSafetensors(path, {{"t", {4}, {1, 2, 3, 4}}}), "");
  auto f = ds::SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  ASSERT_EQ(ds::testing::WriteSafetensors(dir / "new", {{"t", {4}, {5, 6, 7, 8}}}), "");
  ASSERT_EQ(rename((dir / "new").c_str(), path.c_str()), 0);
  float v[4];
  ASSERT_TRUE(ds::ConvertToF32(*(*f)->find("t"), v).ok());
  EXPECT_EQ(std::vector<float>(v, v + 4), (std::vector<float>{1, 2, 3, 4}));
}

// In the death-test child: loads, prints the outcome, removes the child's own copy of the folder (a
// death-test child re-runs the test up to its EXPECT_EXIT and leaves by _Exit, skipping destructors).
[[noreturn]] void LoadAndExit(const ScratchDir& dir) {
  alarm(20);  // SIGALRM if loading blocks
  Generator g(dir.path());
  const ds_status s = g.Load();
  std::fprintf(stderr, "status %d: %s\n", s, g.error().c_str());
  std::error_code ec;
  fs::remove_all(dir.path(), ec);
  std::_Exit(s == DS_ERR_IO || s == DS_ERR_MODEL ? 0 : 1);
}

// A FIFO where a model file should be: open() of a FIFO blocks until a writer appears, which
// would hang ds_load (and the GStreamer state change or FFmpeg filter init around it) for ever.
TEST(ModelFile, FifoInsteadOfAFileIsAnErrorNotAHang) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (const char* name : {"model.safetensors", "config.json", "vocab.txt"}) {
    ScratchDir dir("fifo");
    ASSERT_EQ(ds::testing::WriteRandomModel(dir.path(), faults::SmallSpec(), 3), "");
    fs::remove(dir / name);
    ASSERT_EQ(mkfifo((dir / name).c_str(), 0600), 0);
    EXPECT_EXIT(LoadAndExit(dir), ::testing::ExitedWithCode(0), name) << name;
  }
}

}  // namespace
