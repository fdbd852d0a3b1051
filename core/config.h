// config.json access with typed getters addressed by dotted paths ("dit.patch"). Every getter
// returns a Result whose error names the file, the path, what was expected and what was found, so a
// bad model folder is diagnosed without reading code.
#pragma once

#include <concepts>
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ds {

template <typename T>
concept ConfigValue = std::same_as<T, bool> || std::same_as<T, int> || std::same_as<T, int64_t> ||
    std::same_as<T, float> || std::same_as<T, double> || std::same_as<T, std::string>;

class Config {
 public:
  static Result<Config> Load(const std::string& path);
  // `name` stands in for the file name in error messages.
  static Result<Config> Parse(std::string_view text, std::string name);

  const std::string& name() const { return name_; }
  bool Has(std::string_view path) const;

  // Integers must be JSON integers that fit T; floating types also accept integers.
  template <ConfigValue T>
  Result<T> Get(std::string_view path) const;
  // As Get, but a missing key (or missing parent object) yields `fallback`. A present value of the
  // wrong type is still an error: a typo'd type must not silently become the default.
  template <ConfigValue T>
  Result<T> GetOr(std::string_view path, T fallback) const;

  Result<std::string> GetString(std::string_view path) const { return Get<std::string>(path); }
  // expected_size 0 accepts any length.
  Result<std::vector<int64_t>> GetIntArray(std::string_view path, size_t expected_size = 0) const;
  Result<std::vector<double>> GetDoubleArray(std::string_view path, size_t expected_size = 0) const;

  // The parsed document, for model families with needs beyond the getters.
  const nlohmann::json& document() const { return *root_; }

 private:
  Config(std::shared_ptr<const nlohmann::json> root, std::string name);
  // Null with an ok Status when the key (or a parent) is missing; an error when a parent is not
  // an object.
  Result<const nlohmann::json*> Find(std::string_view path) const;
  Result<const nlohmann::json*> FindRequired(std::string_view path) const;

  std::shared_ptr<const nlohmann::json> root_;  // shared: Config is cheap to copy
  std::string name_;
};

// Shared by the loaders that read JSON (config, safetensors headers, checkpoint indexes).
// Parses without letting an exception escape; the error names `file` and gives line and column.
// `what` ("the header") says which part of the file held the text; empty for a whole file.
Result<nlohmann::json> ParseJsonText(std::string_view text, std::string_view file,
                                     std::string_view what = {});
// A short rendering of a value for error messages.
std::string DescribeJson(const nlohmann::json& v);

}  // namespace ds
