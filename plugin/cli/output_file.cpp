#include "output_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <vector>

namespace ditgen {
namespace {

// Temporaries not yet committed, so that a forced exit can still remove them.
struct PendingOutputs {
  std::mutex mutex;
  std::set<std::string> files;
  std::set<std::string> dirs;
};
PendingOutputs& pending() {
  static PendingOutputs p;
  return p;
}

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

std::string frame_file_name(int64_t index) { return fmt::format("frame_{:05d}.png", index); }

bool is_frame_file_name(std::string_view name) {
  constexpr std::string_view kPrefix = "frame_", kSuffix = ".png";
  if (name.size() < kPrefix.size() + 5 + kSuffix.size() || !name.starts_with(kPrefix) || !name.ends_with(kSuffix))
    return false;
  const std::string_view digits = name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  return std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
}

namespace {

void remove_dir_and_files(const std::string& dir) {
  if (DIR* d = opendir(dir.c_str())) {
    while (const dirent* e = readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
        unlink((dir + "/" + e->d_name).c_str());
    }
    closedir(d);
  }
  rmdir(dir.c_str());
}

// "a/b/clip.mp4" -> {"a/b", "clip.mp4"}; "clip.mp4" -> {".", "clip.mp4"}.
std::pair<std::string, std::string> split_path(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

std::string strip_trailing_slashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

mode_t current_umask() {
  mode_t mask = umask(0);
  umask(mask);
  return mask;
}

mode_t new_file_mode(const struct stat* existing) {
  return existing ? existing->st_mode & 07777 : 0666 & ~current_umask();
}

Status write_all(int fd, const void* data, size_t size, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write {}: {}", path, errno_text(errno));
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return {};
}

}  // namespace

OutputFile::OutputFile(int fd, std::string path, std::string target, std::string temp_path, bool owns_fd)
    : fd_(fd),
      path_(std::move(path)),
      target_(std::move(target)),
      temp_path_(std::move(temp_path)),
      owns_fd_(owns_fd),
      seekable_(lseek(fd, 0, SEEK_CUR) >= 0) {}

Status OutputFile::create(const std::string& path, std::unique_ptr<OutputFile>& out) {
  struct stat st;
  bool exists = stat(path.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) return fail("cannot write {}: it is a folder", path);
  if (exists && !S_ISREG(st.st_mode)) {
    // A device or a pipe: there is nothing to rename over, so write to it directly.
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return fail("cannot open {}: {}", path, errno_text(errno));
    out.reset(new OutputFile(fd, path, path, "", true));
    return {};
  }
  if (!path.empty() && path.back() == '/') return fail("cannot write {}: it names a folder", path);

  // Through a symlink (/dev/stdout redirected to a file, a link kept by the user), replace the file
  // it names and keep the link.
  std::string target = path;
  char real[PATH_MAX];
  if (exists && realpath(path.c_str(), real)) target = real;
  auto [dir, base] = split_path(target);
  std::string temp = dir + "/." + base + ".tmp-XXXXXX";
  std::lock_guard lock(pending().mutex);
  int fd = mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) return fail("cannot create {}: {}", path, errno_text(errno));
  pending().files.insert(temp);
  // mkstemp makes the file private; the result should look like any other file the user creates.
  if (fchmod(fd, new_file_mode(exists ? &st : nullptr)) != 0) {
    int err = errno;
    close(fd);
    unlink(temp.c_str());
    pending().files.erase(temp);
    return fail("cannot create {}: {}", path, errno_text(err));
  }
  out.reset(new OutputFile(fd, path, target, temp, true));
  return {};
}

std::unique_ptr<OutputFile> OutputFile::standard_output() {
  return std::unique_ptr<OutputFile>(new OutputFile(STDOUT_FILENO, "standard output", "", "", false));
}

OutputFile::~OutputFile() {
  if (owns_fd_ && fd_ >= 0) close(fd_);
  if (!committed_ && !temp_path_.empty()) {
    std::lock_guard lock(pending().mutex);
    unlink(temp_path_.c_str());
    pending().files.erase(temp_path_);
  }
}

Status OutputFile::write(const void* data, size_t size) { return write_all(fd_, data, size, path_); }

int64_t OutputFile::seek(int64_t offset, int whence) {
  off_t pos = lseek(fd_, offset, whence);
  return pos < 0 ? -errno : pos;
}

int64_t OutputFile::size() const {
  struct stat st;
  return fstat(fd_, &st) == 0 ? st.st_size : -errno;
}

Status OutputFile::commit() {
  if (temp_path_.empty()) {
    committed_ = true;
    return {};
  }
  // A full disk or a failing NFS server may only report the error here.
  if (fsync(fd_) != 0) return fail("cannot write {}: {}", path_, errno_text(errno));
  int fd = fd_;
  fd_ = -1;
  if (close(fd) != 0) return fail("cannot write {}: {}", path_, errno_text(errno));
  std::lock_guard lock(pending().mutex);
  if (rename(temp_path_.c_str(), target_.c_str()) != 0) return fail("cannot create {}: {}", path_, errno_text(errno));
  pending().files.erase(temp_path_);
  committed_ = true;
  return {};
}

OutputDir::OutputDir(std::string path, std::string staging_path)
    : path_(std::move(path)), staging_(std::move(staging_path)) {}

Status OutputDir::create(const std::string& path_arg, std::unique_ptr<OutputDir>& out) {
  std::string path = strip_trailing_slashes(path_arg);
  struct stat st;
  std::string staging;
  if (stat(path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return fail("cannot write frames into {}: not a folder", path_arg);
    char real[PATH_MAX];
    if (realpath(path.c_str(), real)) path = real;
    // An existing folder (the working folder, a mount point, a volume) gets the frames moved into
    // it one by one: staged inside it, so on its file system and needing no more rights than it.
    staging = path + "/.ditgen-frames.tmp-XXXXXX";
  } else {
    // A new folder is the staging folder renamed: staged beside it.
    auto [parent, base] = split_path(path);
    if (base.empty()) return fail("cannot write frames into {}: not a usable folder", path_arg);
    staging = parent + "/." + base + ".tmp-XXXXXX";
  }
  std::lock_guard lock(pending().mutex);
  if (!mkdtemp(staging.data())) return fail("cannot write frames into {}: {}", path_arg, errno_text(errno));
  pending().dirs.insert(staging);
  out.reset(new OutputDir(path, staging));
  return {};
}

OutputDir::~OutputDir() {
  if (committed_) return;
  std::lock_guard lock(pending().mutex);
  remove_dir_and_files(staging_);
  pending().dirs.erase(staging_);
}

Status OutputDir::write_file(const std::string& name, const void* data, size_t size) {
  std::string file = staging_ + "/" + name;
  std::string shown = path_ + "/" + name;
  int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, new_file_mode(nullptr));
  if (fd < 0) return fail("cannot create {}: {}", shown, errno_text(errno));
  Status s = write_all(fd, data, size, shown);
  if (close(fd) != 0 && s.ok()) s = fail("cannot write {}: {}", shown, errno_text(errno));
  return s;
}

Status OutputDir::commit() {
  std::lock_guard lock(pending().mutex);
  struct stat st;
  if (stat(path_.c_str(), &st) == 0) {
    if (Status s = move_files_into_existing_folder(); !s.ok()) return s;
  } else if (rename(staging_.c_str(), path_.c_str()) == 0) {
    chmod(path_.c_str(), 0777 & ~current_umask());  // mkdtemp made it private
  } else {
    return fail("cannot create {}: {}", path_, errno_text(errno));
  }
  pending().dirs.erase(staging_);
  committed_ = true;
  return {};
}

Status OutputDir::move_files_into_existing_folder() {
  std::vector<std::string> names;
  if (DIR* d = opendir(staging_.c_str())) {
    while (const dirent* e = readdir(d))
      if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    closedir(d);
  }
  for (const std::string& name : names) {
    if (rename((staging_ + "/" + name).c_str(), (path_ + "/" + name).c_str()) != 0)
      return fail("cannot write {}/{}: {}", path_, name, errno_text(errno));
  }
  rmdir(staging_.c_str());
  // Frames of an earlier, longer run would otherwise follow this run's in frame_%05d.png order.
  const std::set<std::string> written(names.begin(), names.end());
  if (DIR* d = opendir(path_.c_str())) {
    std::vector<std::string> stale;
    while (const dirent* e = readdir(d))
      if (is_frame_file_name(e->d_name) && !written.contains(e->d_name)) stale.emplace_back(e->d_name);
    closedir(d);
    for (const std::string& name : stale) unlink((path_ + "/" + name).c_str());
  }
  return {};
}

void remove_pending_outputs() {
  std::lock_guard lock(pending().mutex);
  for (const std::string& file : pending().files) unlink(file.c_str());
  for (const std::string& dir : pending().dirs) remove_dir_and_files(dir);
  pending().files.clear();
  pending().dirs.clear();
}

}  // namespace ditgen
