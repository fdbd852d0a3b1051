// Files written whole (WriteFileAtomically): replaced at once, through links, devices and pipes
// written in place, folders refused, nothing left behind.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <thread>

#include "core/text_file.h"

namespace ds {
namespace {

namespace fs = std::filesystem;

class WriteFileAtomicallyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ds_text_file_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // Entries of the folder other than those named.
  size_t Others(std::initializer_list<const char*> names) {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir_)) {
      bool named = false;
      for (const char* name : names) named = named || e.path().filename() == name;
      n += !named;
    }
    return n;
  }
  fs::path dir_;
};

TEST_F(WriteFileAtomicallyTest, WritesThePartsInOrderAndReplacesKeepingPermissions) {
  const std::string file = (dir_ / "a.bin").string();
  ASSERT_TRUE(WriteFileAtomically(file, {"one ", "two"}).ok());
  EXPECT_EQ(*ReadTextFile(file), "one two");
  ASSERT_EQ(::chmod(file.c_str(), 0640), 0);
  ASSERT_TRUE(WriteFileAtomically(file, {"three"}).ok());
  EXPECT_EQ(*ReadTextFile(file), "three");
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  EXPECT_EQ(Others({"a.bin"}), 0u) << "a temporary file was left";
}

TEST_F(WriteFileAtomicallyTest, ThroughASymlinkReplacesTheFileItNamesAndKeepsTheLink) {
  const fs::path real = dir_ / "real.bin", link = dir_ / "link.bin";
  ASSERT_TRUE(WriteFileAtomically(real.string(), {"old"}).ok());
  fs::create_symlink(real, link);
  ASSERT_TRUE(WriteFileAtomically(link.string(), {"new"}).ok());
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(*ReadTextFile(real.string()), "new");
  EXPECT_EQ(Others({"real.bin", "link.bin"}), 0u);
}

// /dev/null stays a device, a FIFO stays a FIFO (its reader gets the bytes), a folder is refused.
TEST_F(WriteFileAtomicallyTest, DevicesAndPipesAreWrittenInPlaceAndFoldersRefused) {
  ASSERT_TRUE(WriteFileAtomically("/dev/null", {"discarded"}).ok());
  struct stat st;
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));

  const std::string fifo = (dir_ / "pipe").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string got;
  std::thread reader([&] {
    const int fd = ::open(fifo.c_str(), O_RDONLY);
    char buf[64];
    for (ssize_t n; fd >= 0 && (n = ::read(fd, buf, sizeof buf)) > 0;) got.append(buf, static_cast<size_t>(n));
    if (fd >= 0) ::close(fd);
  });
  const Status s = WriteFileAtomically(fifo, {"through ", "the pipe"});
  reader.join();
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(got, "through the pipe");
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));

  const Status folder = WriteFileAtomically(dir_.string(), {"x"});
  EXPECT_EQ(folder.code(), Code::kIo);
  EXPECT_NE(folder.message().find("folder"), std::string::npos) << folder.message();
  EXPECT_EQ(Others({"pipe"}), 0u);
}

TEST_F(WriteFileAtomicallyTest, AMissingFolderIsAnErrorNamingThePath) {
  const std::string file = (dir_ / "no" / "such" / "x.bin").string();
  const Status s = WriteFileAtomically(file, {"x"});
  EXPECT_EQ(s.code(), Code::kIo);
  EXPECT_NE(s.message().find(file), std::string::npos) << s.message();
}

}  // namespace
}  // namespace ds
