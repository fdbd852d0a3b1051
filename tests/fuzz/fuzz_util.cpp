#include "tests/fuzz/fuzz_util.h"

#include <filesystem>
#include <system_error>
#include <vector>

namespace ds::fuzz {
namespace {

std::vector<std::string>& Scratch() {
  static std::vector<std::string> dirs;
  return dirs;
}

void RemoveScratch() {
  for (const std::string& d : Scratch()) {
    std::error_code ec;
    std::filesystem::remove_all(d, ec);
  }
}

}  // namespace

std::string ScratchDir(const char* name) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path root = fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
  std::string pattern = (root / (std::string("ds-fuzz-") + name + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) std::abort();
  if (Scratch().empty()) std::atexit(RemoveScratch);
  Scratch().push_back(pattern);
  return pattern;
}

}  // namespace ds::fuzz
