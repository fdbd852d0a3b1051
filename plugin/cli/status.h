// Errors inside ditgen are values: a Status carries the one line the user will read.
#pragma once

#include <fmt/format.h>

#include <string>
#include <utility>

namespace ditgen {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return message_.empty(); }
  const std::string& message() const { return message_; }

 private:
  explicit Status(std::string message) : message_(std::move(message)) {
    if (message_.empty()) message_ = "unknown error";
  }
  std::string message_;
};

template <typename... Args>
Status fail(fmt::format_string<Args...> format, Args&&... args) {
  return Status::error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace ditgen
