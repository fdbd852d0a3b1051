#include "core/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <type_traits>

#include "core/text_file.h"

namespace ds {
namespace {

using json = nlohmann::json;

Status TypeError(std::string_view file, std::string_view path, std::string_view expected, const json& got) {
  return Error(Code::kModel, "{}: '{}' must be {}, got {}", file, path, expected, DescribeJson(got));
}

template <typename T>
std::optional<T> AsInteger(const json& v) {
  constexpr auto kMin = std::numeric_limits<T>::min();
  constexpr auto kMax = std::numeric_limits<T>::max();
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u <= static_cast<uint64_t>(kMax)) return static_cast<T>(u);
  } else if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i >= kMin && i <= kMax) return static_cast<T>(i);
  }
  return std::nullopt;
}

template <typename T>
std::string IntegerExpectation(const json& v) {
  if (!v.is_number_integer()) return "an integer";
  return fmt::format("an integer in [{}, {}]", std::numeric_limits<T>::min(), std::numeric_limits<T>::max());
}

template <ConfigValue T>
Result<T> Convert(const json& v, std::string_view file, std::string_view path) {
  if constexpr (std::is_same_v<T, bool>) {
    if (v.is_boolean()) return v.get<bool>();
    return TypeError(file, path, "true or false", v);
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (v.is_string()) return v.get<std::string>();
    return TypeError(file, path, "a string", v);
  } else if constexpr (std::is_integral_v<T>) {
    if (std::optional<T> x = AsInteger<T>(v)) return *x;
    return TypeError(file, path, IntegerExpectation<T>(v), v);
  } else {
    if (v.is_number()) return static_cast<T>(v.get<double>());
    return TypeError(file, path, "a number", v);
  }
}

template <typename T>
Result<std::vector<T>> ConvertArray(const json& v, std::string_view file, std::string_view path, size_t expected_size,
                                    std::string_view element) {
  bool ok = v.is_array() && (expected_size == 0 || v.size() == expected_size);
  std::vector<T> out;
  for (size_t i = 0; ok && i < v.size(); ++i) {
    Result<T> x = Convert<T>(v[i], file, path);
    ok = x.ok();
    if (ok) out.push_back(x.value());
  }
  if (ok) return out;
  std::string count = expected_size == 0 ? std::string() : fmt::format("{} ", expected_size);
  return TypeError(file, path, fmt::format("an array of {}{}", count, element), v);
}

std::string_view StripJsonExceptionId(std::string_view s) {
  // nlohmann prefixes "[json.exception.parse_error.101] "; users need only the rest.
  size_t close = s.find("] ");
  return close == std::string_view::npos ? s : s.substr(close + 2);
}

}  // namespace

Result<nlohmann::json> ParseJsonText(std::string_view text, std::string_view file, std::string_view what) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    return Error(Code::kModel, "{}: {}not valid JSON: {}", file,
                 what.empty() ? std::string() : fmt::format("{} is ", what), StripJsonExceptionId(e.what()));
  }
}

// Dumping is recursive, so nested containers (which a hostile file may nest arbitrarily deep) are
// only named; long renderings are cut.
std::string DescribeJson(const nlohmann::json& v) {
  bool flat = !v.is_structured() || std::none_of(v.begin(), v.end(), [](const json& e) { return e.is_structured(); });
  if (!flat) return fmt::format("{} of {} elements", v.type_name(), v.size());
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  constexpr size_t kMax = 80;
  return s.size() <= kMax ? s : s.substr(0, kMax) + "...";
}

Config::Config(std::shared_ptr<const nlohmann::json> root, std::string name)
    : root_(std::move(root)), name_(std::move(name)) {}

Result<Config> Config::Load(const std::string& path) {
  // ReadTextFile: a FIFO is refused, not opened, and a failed allocation is an error, not a
  // truncated text that would read as bogus "not valid JSON".
  DS_ASSIGN_OR_RETURN(const std::string text, ReadTextFile(path));
  return Parse(text, path);
}

Result<Config> Config::Parse(std::string_view text, std::string name) {
  DS_ASSIGN_OR_RETURN(json root, ParseJsonText(text, name));
  if (!root.is_object()) {
    return Error(Code::kModel, "{}: must hold a JSON object, got {}", name, DescribeJson(root));
  }
  return Config(std::make_shared<const json>(std::move(root)), std::move(name));
}

Result<const nlohmann::json*> Config::Find(std::string_view path) const {
  const json* node = root_.get();
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string_view key = path.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (!node->is_object()) {
      return Error(Code::kModel, "{}: '{}' must be an object holding '{}', got {}", name_, path.substr(0, start - 1),
                   key, DescribeJson(*node));
    }
    auto it = node->find(key);
    if (it == node->end()) return static_cast<const json*>(nullptr);
    node = &*it;
    if (dot == std::string_view::npos) return node;
    start = dot + 1;
  }
}

Result<const nlohmann::json*> Config::FindRequired(std::string_view path) const {
  DS_ASSIGN_OR_RETURN(const json* node, Find(path));
  if (node == nullptr) return Error(Code::kModel, "{}: missing key '{}'", name_, path);
  return node;
}

bool Config::Has(std::string_view path) const {
  Result<const json*> node = Find(path);
  return node.ok() && node.value() != nullptr;
}

template <ConfigValue T>
Result<T> Config::Get(std::string_view path) const {
  DS_ASSIGN_OR_RETURN(const json* node, FindRequired(path));
  return Convert<T>(*node, name_, path);
}

template <ConfigValue T>
Result<T> Config::GetOr(std::string_view path, T fallback) const {
  DS_ASSIGN_OR_RETURN(const json* node, Find(path));
  if (node == nullptr) return fallback;
  return Convert<T>(*node, name_, path);
}

Result<std::vector<int64_t>> Config::GetIntArray(std::string_view path, size_t expected_size) const {
  DS_ASSIGN_OR_RETURN(const json* node, FindRequired(path));
  return ConvertArray<int64_t>(*node, name_, path, expected_size, "integers");
}

Result<std::vector<double>> Config::GetDoubleArray(std::string_view path, size_t expected_size) const {
  DS_ASSIGN_OR_RETURN(const json* node, FindRequired(path));
  return ConvertArray<double>(*node, name_, path, expected_size, "numbers");
}

template Result<bool> Config::Get<bool>(std::string_view) const;
template Result<int> Config::Get<int>(std::string_view) const;
template Result<int64_t> Config::Get<int64_t>(std::string_view) const;
template Result<float> Config::Get<float>(std::string_view) const;
template Result<double> Config::Get<double>(std::string_view) const;
template Result<std::string> Config::Get<std::string>(std::string_view) const;
template Result<bool> Config::GetOr<bool>(std::string_view, bool) const;
template Result<int> Config::GetOr<int>(std::string_view, int) const;
template Result<int64_t> Config::GetOr<int64_t>(std::string_view, int64_t) const;
template Result<float> Config::GetOr<float>(std::string_view, float) const;
template Result<double> Config::GetOr<double>(std::string_view, double) const;
template Result<std::string> Config::GetOr<std::string>(std::string_view, std::string) const;

}  // namespace ds
