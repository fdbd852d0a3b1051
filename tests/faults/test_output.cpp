// The output disk filling up mid-clip. ditgen's own tests cover /dev/full (written in place),
// unwritable folders, closed pipes and signals; missing was a *regular file* that stops growing
// part-way, which is what a full disk does to a staged output. RLIMIT_FSIZE reproduces it without
// root or a special file system: past the limit write() fails with EFBIG (SIGXFSZ is ignored, as
// ENOSPC raises no signal). Each output kind must fail with one line naming the user's path and
// leave no partial file, no temporary, and any previous file untouched.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "tests/faults/fault_util.h"

#ifndef DITGEN_PATH
#error "DITGEN_PATH must name the ditgen binary under test"
#endif

namespace {

namespace fs = std::filesystem;
using faults::ScratchDir;

struct RunResult {
  int exit_code = -1;  // 128+N when killed by signal N
  std::string err;
};

RunResult RunDitgen(const std::vector<std::string>& args, rlim_t file_size_limit) {
  std::vector<std::string> storage = {DITGEN_PATH};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  int err_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {  // only async-signal-safe calls until exec
    const int null_fd = open("/dev/null", O_RDWR);
    dup2(null_fd, STDIN_FILENO);
    dup2(null_fd, STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{file_size_limit, file_size_limit};
    setrlimit(RLIMIT_FSIZE, &limit);
    execv(DITGEN_PATH, argv.data());
    _exit(127);
  }
  close(err_pipe[1]);
  RunResult r;
  char buf[4096];
  for (ssize_t n; (n = read(err_pipe[0], buf, sizeof buf)) != 0;) {
    if (n > 0) r.err.append(buf, static_cast<size_t>(n));
    else if (errno != EINTR) break;
  }
  close(err_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::vector<std::string> Entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class DiskFull : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(ds::testing::WriteRandomModel(model_.path(), faults::SmallSpec(), 10), "");
    fs::create_directory(out_);
  }
  // Runs ditgen into out_/ with the limit and checks the failure; `previous` is an existing file.
  void ExpectCleanFailure(const std::vector<std::string>& outputs, const std::string& named, rlim_t limit) {
    const fs::path previous = out_ / "previous.y4m";
    std::ofstream(previous) << "previous take";
    std::vector<std::string> args = {"--model", model_.path(), "--steps", "1", "--threads", "1", "-q"};
    args.insert(args.end(), outputs.begin(), outputs.end());
    const RunResult r = RunDitgen(args, limit);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(named), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(std::strerror(EFBIG)), std::string::npos) << r.err;
    EXPECT_EQ(Entries(out_), std::vector<std::string>{"previous.y4m"}) << r.err;
    EXPECT_EQ(ReadFile(previous), "previous take");
  }
  ScratchDir model_{"disk-full-model"};
  ScratchDir dir_{"disk-full"};
  fs::path out_ = fs::path(dir_.path()) / "out";
};

TEST_F(DiskFull, Y4mReplacingAFile) {
  const std::string path = (out_ / "previous.y4m").string();
  // The header fits, the first 32x32 frame (1542 bytes) does not.
  ExpectCleanFailure({"-o", path}, path, 1000);
}

TEST_F(DiskFull, Y4mNewFile) {
  const std::string path = (out_ / "clip.y4m").string();
  ExpectCleanFailure({"-o", path}, path, 3000);
}

TEST_F(DiskFull, Mp4) {
  const std::string path = (out_ / "clip.mp4").string();
  ExpectCleanFailure({"-o", path}, path, 600);
}

TEST_F(DiskFull, Mkv) {
  const std::string path = (out_ / "clip.mkv").string();
  ExpectCleanFailure({"-o", path}, path, 600);
}

TEST_F(DiskFull, PngFrames) {
  const std::string path = (out_ / "frames").string();
  ExpectCleanFailure({"--frames-dir", path}, path, 200);
}

TEST_F(DiskFull, Strip) {
  const std::string path = (out_ / "strip.png").string();
  ExpectCleanFailure({"--strip", path}, path, 200);
}

TEST_F(DiskFull, SecondOutputFailingRemovesTheFirst) {
  const std::string video = (out_ / "clip.y4m").string(), frames = (out_ / "frames").string();
  // Whichever output hits the limit first, the other one (staged too) must not stay behind.
  ExpectCleanFailure({"-o", video, "--frames-dir", frames}, out_.string(), 2000);
}

}  // namespace
