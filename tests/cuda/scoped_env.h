// An environment variable set (or, with nullptr, unset) for a scope, then put back as it was: for
// tests of the switches the CUDA backend reads from the environment (DS_FLASH_SKIP,
// DS_FLASH_UNVERIFIED, DS_TUNING_CACHE, …) without changing what the tests after them see.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>

namespace ds::test {

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    value ? setenv(name, value, 1) : unsetenv(name);
  }
  ~ScopedEnv() { old_ ? setenv(name_, old_->c_str(), 1) : unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace ds::test
