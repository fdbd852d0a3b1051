// Fuzz target: option strings, as CLI flags, GStreamer properties and FFmpeg options deliver them,
// through ds::SetOption and the C API's ds_set_option/ds_get_option.
// Input: lines "name=value" (a value may hold any byte but '\n'), applied in order to one Options
// and one generator. Checks: both paths accept the same strings and read back the same values; a refused
// value changes nothing; an accepted value reads back as text that parses to itself (a fixpoint,
// so a value copied from ds_get_option into a CLI flag or a property round-trips); numbers accepted
// match the plain decimal grammar and lie in the table's range; ds_get_option truncates safely.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ditstream.h"
#include "pipelines/options.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

std::vector<std::string> AllValues(const ds::Options& o) {
  std::vector<std::string> v;
  for (const ds_option_info& info : ds::OptionTable()) v.push_back(ds::GetOption(o, info.name).value());
  return v;
}

// [+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?
bool PlainNumber(std::string_view s) {
  size_t i = 0;
  auto sign = [&] { i += i < s.size() && (s[i] == '+' || s[i] == '-'); };
  auto digits = [&] {
    const size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - start;
  };
  sign();
  size_t mantissa = digits();
  if (i < s.size() && s[i] == '.') {
    ++i;
    mantissa += digits();
  }
  if (mantissa == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    sign();
    if (digits() == 0) return false;
  }
  return i == s.size();
}

void CheckCApi(ds_generator* gen, const std::string& name, const std::string& value, bool ok_cpp,
               const ds::Options& opts, size_t buf_size) {
  const ds_status s = ds_set_option(gen, name.c_str(), value.c_str());
  FUZZ_CHECK((s == DS_OK) == ok_cpp, "ds_set_option('%s') = %d but SetOption %s", name.c_str(), s,
             ok_cpp ? "accepts" : "refuses");
  if (s != DS_OK) {
    FUZZ_CHECK(s == DS_ERR_INVALID_ARGUMENT && std::strlen(ds_error_message(gen)) > 0, "status %d, message '%s'", s,
               ds_error_message(gen));
  }
  for (const ds_option_info& info : ds::OptionTable()) {
    char buf[512];
    FUZZ_CHECK(ds_get_option(gen, info.name, buf, sizeof buf) == DS_OK, "ds_get_option('%s') fails", info.name);
    const std::string want = ds::GetOption(opts, info.name).value();
    if (want.size() < sizeof buf) FUZZ_CHECK(buf == want, "option '%s': C API '%s', C++ '%s'", info.name, buf, want.c_str());
    // A small buffer gets a NUL-terminated prefix, and nothing past it is touched.
    std::vector<char> small(buf_size + 1, '\x7f');
    FUZZ_CHECK(ds_get_option(gen, info.name, small.data(), buf_size) == DS_OK, "small buffer fails");
    const size_t n = std::min(buf_size - 1, want.size());
    FUZZ_CHECK(std::memcmp(small.data(), want.data(), n) == 0 && small[n] == '\0' && small[buf_size] == '\x7f',
               "option '%s': bad truncation to %zu bytes", info.name, buf_size);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  ds::Options opts = ds::DefaultOptions();
  ds_generator* gen = ds_create();
  size_t start = 0;
  while (start < input.size()) {
    size_t nl = input.find('\n', start);
    const std::string_view line = input.substr(start, nl == std::string_view::npos ? nl : nl - start);
    start = nl == std::string_view::npos ? input.size() : nl + 1;
    const size_t eq = line.find('=');
    const std::string name(line.substr(0, eq));
    const std::string value(eq == std::string_view::npos ? std::string_view() : line.substr(eq + 1));

    const std::vector<std::string> before = AllValues(opts);
    const ds::Status s = ds::SetOption(opts, name, value);
    const ds_option_info* info = ds::FindOption(name);
    FUZZ_CHECK(info == ds_option_find(name.c_str()) || std::memchr(name.data(), 0, name.size()),
               "FindOption and ds_option_find disagree on '%s'", name.c_str());
    if (!s.ok()) {
      FUZZ_CHECK(s.code() == ds::Code::kInvalidArgument, "code %d", static_cast<int>(s.code()));
      FUZZ_CHECK(AllValues(opts) == before, "refused '%s'='%s' changed the options", name.c_str(), value.c_str());
    } else {
      FUZZ_CHECK(info != nullptr, "accepted unknown option '%s'", name.c_str());
      const std::string back = ds::GetOption(opts, name).value();
      if (info->type != DS_OPT_STRING) {
        FUZZ_CHECK(PlainNumber(value), "option '%s' accepts '%s'", info->name, value.c_str());
        const double v = std::strtod(back.c_str(), nullptr);
        FUZZ_CHECK(v >= info->min && v <= info->max, "option '%s' holds %s outside [%g, %g]", info->name,
                   back.c_str(), info->min, info->max);
      } else {
        FUZZ_CHECK(back == value, "option '%s': set '%s', got '%s'", info->name, value.c_str(), back.c_str());
      }
      ds::Options copy = opts;
      FUZZ_CHECK(ds::SetOption(copy, name, back).ok() && ds::GetOption(copy, name).value() == back,
                 "option '%s': '%s' does not read back as itself", info->name, back.c_str());
    }
    // The C API sees C strings: compare it only where no NUL cuts the name or value short.
    if (std::memchr(line.data(), 0, line.size()) == nullptr && gen != nullptr) {
      CheckCApi(gen, name, value, s.ok(), opts, 1 + line.size() % 24);
    } else {
      FUZZ_CHECK(!s.ok(), "'%s' accepted with a NUL byte", name.c_str());
    }
  }
  ds_destroy(gen);
  return 0;
}
