#include "core/text_file.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

namespace ds {

Result<std::string> ReadTextFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec)) {
    return Error(Code::kIo, "{}: not a regular file", path);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(Code::kIo, "{}: cannot read: {}", path, std::strerror(errno));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

namespace {

Status WriteAll(int fd, std::initializer_list<std::string_view> parts, const std::string& path) {
  for (std::string_view part : parts) {
    while (!part.empty()) {
      const ssize_t n = ::write(fd, part.data(), part.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error(Code::kIo, "cannot write {}: {}", path, std::strerror(errno));
      part.remove_prefix(static_cast<size_t>(n));
    }
  }
  return Status::Ok();
}

}  // namespace

Status WriteFileAtomically(const std::string& path, std::initializer_list<std::string_view> parts) {
  struct stat st;
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) return Error(Code::kIo, "cannot write {}: it is a folder", path);
  if (exists && !S_ISREG(st.st_mode)) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return Error(Code::kIo, "cannot open {}: {}", path, std::strerror(errno));
    Status s = WriteAll(fd, parts, path);
    if (::close(fd) != 0 && s.ok()) s = Error(Code::kIo, "cannot write {}: {}", path, std::strerror(errno));
    return s;
  }
  std::string target = path;
  char real[PATH_MAX];
  if (exists && ::realpath(path.c_str(), real) != nullptr) target = real;
  // A name no other writer (process, or thread of this one) uses: created exclusively, so that
  // the umask applies to it as to any file the user makes.
  static std::atomic<uint64_t> writes{0};
  const std::filesystem::path t(target);
  const std::string temp =
      (t.parent_path() / fmt::format(".{}.tmp-{}-{}", t.filename().string(), ::getpid(), writes.fetch_add(1))).string();
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) return Error(Code::kIo, "cannot create a file beside {}: {}", path, std::strerror(errno));
  Status s = WriteAll(fd, parts, path);
  if (s.ok() && exists && ::fchmod(fd, st.st_mode & 07777) != 0) {
    s = Error(Code::kIo, "cannot write {}: {}", path, std::strerror(errno));
  }
  // A full disk or a failing network file system may only report the error here.
  if (s.ok() && ::fsync(fd) != 0) s = Error(Code::kIo, "cannot write {}: {}", path, std::strerror(errno));
  if (::close(fd) != 0 && s.ok()) s = Error(Code::kIo, "cannot write {}: {}", path, std::strerror(errno));
  if (s.ok() && ::rename(temp.c_str(), target.c_str()) != 0) {
    s = Error(Code::kIo, "cannot replace {}: {}", path, std::strerror(errno));
  }
  if (!s.ok()) ::unlink(temp.c_str());
  return s;
}

}  // namespace ds
