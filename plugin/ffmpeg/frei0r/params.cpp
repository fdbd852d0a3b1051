#include "params.h"

#include <cmath>
#include <cstdio>

namespace ditstream_frei0r {
namespace {

// Set by the host's frame size and rate, not by parameters.
bool HostDecides(std::string_view name) { return name == "width" || name == "height" || name == "fps"; }

std::string Explanation(const ds_option_info& o) {
  std::string text = o.help ? o.help : "";
  // frei0r 0 stands for the default; say so where the table's own default is something else.
  if (o.type != DS_OPT_STRING && std::string_view(o.default_value) != "0") {
    text += std::string("; 0 here means the default, ") + o.default_value;
  }
  if (o.applies_between_clips) text += "; may change while playing (next clip)";
  return text;
}

// FFmpeg's frei0r_src passes parameters by position, so positions are part of users' command lines:
// the table's options up to 'threads', then prompt-file and options, then options the table gained
// since (vae-tiling, sampler), at the end where they move nothing.
constexpr std::string_view kLastOriginalOption = "threads";

std::vector<Param> BuildParams() {
  std::vector<Param> params;
  auto add_own = [&] {
    params.push_back({std::string(kPromptFile), true,
                      "Read the prompt from this UTF-8 text file instead (re-read before each clip)", nullptr});
    params.push_back({std::string(kOptions), true,
                      "More options as 'name=value&name=value' (any other parameter, values as written)", nullptr});
  };
  bool own_added = false;
  for (int i = 0; i < ds_option_count(); ++i) {
    const ds_option_info* o = ds_option_at(i);
    if (HostDecides(o->name)) continue;
    params.push_back({o->name, o->type == DS_OPT_STRING, Explanation(*o), o});
    if (o->name == kLastOriginalOption) {
      add_own();
      own_added = true;
    }
  }
  if (!own_added) add_own();
  return params;
}

std::string_view Trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

// Canonical name of a parameter that `options` may set, or "" when there is none.
std::string OptionsKey(std::string_view name) {
  std::string canonical(name);
  for (char& c : canonical) {
    if (c == '_') c = '-';
  }
  for (const Param& p : Params()) {
    if (p.name == canonical && p.name != kOptions) return canonical;
  }
  return {};
}

}  // namespace

const std::vector<Param>& Params() {
  static const std::vector<Param> params = BuildParams();
  return params;
}

std::string NumberText(double v) {
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e17) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.17g", v);
  }
  return buf;
}

std::string ApplyDouble(Values& values, int index, double v) {
  const auto& params = Params();
  if (index < 0 || index >= static_cast<int>(params.size()) || params[index].is_string) {
    return "parameter " + std::to_string(index) + " is not a number";
  }
  const Param& p = params[index];
  if (!std::isfinite(v)) return "parameter '" + p.name + "': not a finite number";
  if (v == 0) {
    values.erase(p.name);
  } else {
    values[p.name] = NumberText(v);
  }
  return {};
}

std::string ApplyString(Values& values, int index, std::string_view text) {
  const auto& params = Params();
  if (index < 0 || index >= static_cast<int>(params.size()) || !params[index].is_string) {
    return "parameter " + std::to_string(index) + " is not a string";
  }
  const Param& p = params[index];
  if (p.name == kOptions) return ApplyOptionsString(values, text);
  if (text.empty() && p.name != "prompt") {
    values.erase(p.name);
  } else {
    values[p.name] = std::string(text);
  }
  return {};
}

std::string ApplyOptionsString(Values& values, std::string_view text) {
  while (!text.empty()) {
    const auto end = text.find('&');
    const std::string_view item = Trim(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string_view::npos) return "options: '" + std::string(item) + "' is not name=value";
    const std::string key = OptionsKey(Trim(item.substr(0, eq)));
    if (key.empty()) return "options: unknown parameter '" + std::string(Trim(item.substr(0, eq))) + "'";
    values[key] = std::string(Trim(item.substr(eq + 1)));
  }
  return {};
}

}  // namespace ditstream_frei0r
