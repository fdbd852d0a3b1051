// Helpers shared by the fuzz targets: inputs become files without touching the disk, and broken
// properties stop the fuzzer with a message (a finding, like a sanitizer report).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define FUZZ_CHECK(cond, ...)                                                     \
  do {                                                                            \
    if (!(cond)) {                                                                \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                          \
      std::fprintf(stderr, "\n");                                                 \
      std::abort();                                                               \
    }                                                                             \
  } while (0)

namespace ds::fuzz {

// An anonymous in-memory file reachable by path (/proc/self/fd/N), so loaders that take a path read
// the fuzz input exactly as they would read a model file.
class MemFile {
 public:
  MemFile() : fd_(memfd_create("fuzz-input", MFD_CLOEXEC)) {
    if (fd_ < 0) std::abort();
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;

  void Set(const void* data, size_t size) {
    if (ftruncate(fd_, 0) != 0) std::abort();
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t done = 0; done < size;) {
      ssize_t n = pwrite(fd_, p + done, size - done, static_cast<off_t>(done));
      if (n <= 0) std::abort();
      done += static_cast<size_t>(n);
    }
  }
  void Set(std::string_view text) { Set(text.data(), text.size()); }
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

// A private folder for targets that need real paths (sharded checkpoints, output files): in
// /dev/shm when there is one, removed at exit.
std::string ScratchDir(const char* name);

inline bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

}  // namespace ds::fuzz
