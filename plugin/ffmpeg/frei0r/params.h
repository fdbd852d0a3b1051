// The frei0r parameter list of the `ditstream` source, derived from the engine's option table, and
// the mapping from frei0r values (strings and doubles) to option text for ds_set_option.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ditstream.h"

namespace ditstream_frei0r {

inline constexpr std::string_view kPromptFile = "prompt-file";
inline constexpr std::string_view kOptions = "options";

struct Param {
  std::string name;         // frei0r name: the option name ("negative-prompt"), or prompt-file/options
  bool is_string = false;   // frei0r STRING, else frei0r DOUBLE
  std::string explanation;  // shown by gst-inspect and ffmpeg -v verbose
  const ds_option_info* option = nullptr;  // null for prompt-file and options
};

// Every table option except width, height and fps (the host decides the frame size and rate), then
// prompt-file, then options (last, so that GStreamer, which sets all parameters in order, lets it win).
const std::vector<Param>& Params();

// Option values as text, keyed by canonical option name (plus "prompt-file"); the last write wins.
using Values = std::map<std::string, std::string>;

// Applies frei0r parameter `index` to `values`. Returns an error message, or "" when it was accepted.
// A DOUBLE value is the option's value in its own units; 0 stands for the option's default (GStreamer's
// wrapper limits DOUBLE to [0, 1] and sets every parameter, so 0 must mean "not set").
// An empty STRING means the option's default too, except for the prompt, where it is an error later.
std::string ApplyDouble(Values& values, int index, double v);
std::string ApplyString(Values& values, int index, std::string_view text);

// Parses "name=value&name=value", the `options` parameter ('&' is special to neither FFmpeg's three
// parsers nor gst-launch): any parameter name but options itself, with '-' or '_'. Values go to the
// engine as written (no 0-means-default mapping), so they cannot contain '&'.
std::string ApplyOptionsString(Values& values, std::string_view text);

// Text of `v` as the engine parses it: integers without a fraction, else 17 significant digits.
std::string NumberText(double v);

}  // namespace ditstream_frei0r
