// A minimal stand-in for {fmt}, for bench/gpu_check.sh on GPU machines where no fmt headers can be
// found (or where the found ones do not get through nvcc). It implements only what the sources
// that script compiles use: fmt::format_string and fmt::format with plain "{}" placeholders.
// The meson build always uses the real fmt.
#pragma once

#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>

namespace fmt {

template <typename... Args>
struct basic_format_string {
  template <typename S>
  constexpr basic_format_string(const S& s) : str(s) {}  // NOLINT: implicit, like fmt's
  std::string_view str;
};

template <typename... Args>
using format_string = basic_format_string<std::type_identity_t<Args>...>;

namespace detail {

inline void FormatTo(std::ostringstream& os, std::string_view f) { os << f; }

template <typename T, typename... Rest>
void FormatTo(std::ostringstream& os, std::string_view f, const T& value, const Rest&... rest) {
  const size_t p = f.find("{}");
  if (p == std::string_view::npos) {
    os << f;
    return;
  }
  os << f.substr(0, p) << value;
  FormatTo(os, f.substr(p + 2), rest...);
}

}  // namespace detail

template <typename... Args>
std::string format(format_string<Args...> f, Args&&... args) {
  std::ostringstream os;
  detail::FormatTo(os, f.str, args...);
  return os.str();
}

}  // namespace fmt
