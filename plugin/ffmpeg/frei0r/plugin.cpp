// frei0r entry points of the `ditstream` source plugin (ditstream.so): stock FFmpeg loads it through
// `frei0r_src=...:filter_name=ditstream`, GStreamer's frei0r wrapper as element frei0r-src-ditstream.
//
// Host facts this file is shaped by (shared/reference/media_integration.md, part A):
// - construct comes before any parameter, and GStreamer constructs instances just to read defaults,
//   so nothing is loaded before the first f0r_update;
// - f0r_update cannot report errors, so failures print one line and yield marked frames;
// - f0r_update's `time` is milliseconds in FFmpeg and seconds in GStreamer, so it is ignored.
#include <dlfcn.h>

#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

// frei0r.h 1.8 has no extern "C" guard of its own.
extern "C" {
#include <frei0r.h>
}

#include "params.h"
#include "stream.h"

namespace {

using ditstream_frei0r::Params;
using ditstream_frei0r::PrintLine;
using ditstream_frei0r::Stream;
using ditstream_frei0r::Values;

constexpr int kCheckerSide = 8;

struct Instance {
  int width = 0, height = 0;
  Values values;
  std::vector<double> doubles;             // as the host set them, for f0r_get_param_value
  std::vector<std::string> strings;        // idem; get_param_value hands out pointers into these
  std::vector<std::string> param_errors;   // per parameter; the first one stops the stream at start
  std::unique_ptr<Stream> stream;
  std::string start_error;
  bool error_reported = false;
  int gst_construct_batch = 0;  // the index GStreamer's post-construct batch sets next; -1 once over
  int64_t frames_out = 0;  // the stream's clock, instead of the host's `time`
};

// The "can't show what you asked for" picture: a red/black checker that scrolls one pixel per frame,
// so that it is obviously neither a generated image nor a frozen stream.
void FillErrorFrame(uint8_t* out, int width, int height, int64_t frame) {
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const bool red = (((x + frame) / kCheckerSide) + (y / kCheckerSide)) % 2 == 0;
      uint8_t* p = out + (static_cast<size_t>(y) * width + x) * 4;
      p[0] = red ? 255 : 0;
      p[1] = 0;
      p[2] = 0;
      p[3] = 255;
    }
  }
}

// Whether the caller's code lies in GStreamer's frei0r wrapper (libgstfrei0r.so), the one host that
// breaks the string convention (see StringParam).
bool CalledFromGstreamer(const void* return_address) {
  Dl_info info{};
  if (dladdr(return_address, &info) == 0 || info.dli_fname == nullptr) return false;
  const char* base = std::strrchr(info.dli_fname, '/');
  return std::strstr(base ? base + 1 : info.dli_fname, "gstfrei0r") != nullptr;
}

// The text of a STRING parameter. frei0r says the host passes char** (f0r_param_string*); FFmpeg does,
// and so does GStreamer's wrapper in the batch of calls that follows f0r_construct (all parameters,
// in index order), but any later call from it (a property changed on a live instance, a controller
// binding) passes the char* itself (gst-plugins-bad 1.22 up to at least 1.27: gstfrei0r.c,
// gst_frei0r_instance_construct vs gst_frei0r_set_property).
const char* StringParam(const void* param, bool passes_char_pointer) {
  if (param == nullptr) return "";
  if (passes_char_pointer) return static_cast<const char*>(param);
  return *static_cast<char* const*>(param);
}

std::string FirstParamError(const Instance& in) {
  for (size_t i = 0; i < in.param_errors.size(); ++i) {
    if (!in.param_errors[i].empty()) return in.param_errors[i];
  }
  return {};
}

void Start(Instance& in) {
  in.start_error = FirstParamError(in);
  if (!in.start_error.empty()) return;
  try {
    in.stream = std::make_unique<Stream>(in.width, in.height, in.values);
  } catch (const std::exception& e) {
    in.start_error = std::string("cannot start the generator thread: ") + e.what();
  }
}

// Whether this call passes a STRING as char* (see StringParam), advancing the GStreamer batch state.
bool PassesCharPointer(Instance& in, int index, bool from_gstreamer) {
  if (!from_gstreamer) return false;
  if (in.gst_construct_batch == index) {
    in.gst_construct_batch = index + 1 == static_cast<int>(Params().size()) ? -1 : index + 1;
    return false;
  }
  in.gst_construct_batch = -1;
  return true;
}

void SetParam(Instance& in, const void* param, int index, bool from_gstreamer) {
  const auto& params = Params();
  if (index < 0 || index >= static_cast<int>(params.size())) return;
  std::string error;
  if (params[index].is_string) {
    const char* text = StringParam(param, PassesCharPointer(in, index, from_gstreamer));
    in.strings[index] = text ? text : "";
    error = ditstream_frei0r::ApplyString(in.values, index, in.strings[index]);
  } else if (param != nullptr) {
    PassesCharPointer(in, index, from_gstreamer);
    in.doubles[index] = *static_cast<const double*>(param);
    error = ditstream_frei0r::ApplyDouble(in.values, index, in.doubles[index]);
  }
  in.param_errors[index] = error;
  if (!in.stream) return;
  if (!error.empty()) PrintLine("warning: " + error + "; ignored");
  in.stream->Update(in.values);
}

}  // namespace

extern "C" {

// GStreamer treats 0 as failure, FFmpeg anything < 0; 1 satisfies both. Nothing is loaded here
// because FFmpeg's -filter_complex path inits, unloads and re-inits the plugin.
__attribute__((visibility("default"))) int f0r_init(void) { return 1; }

__attribute__((visibility("default"))) void f0r_deinit(void) {}

__attribute__((visibility("default"))) void f0r_get_plugin_info(f0r_plugin_info_t* info) {
  info->name = "ditstream";
  info->author = "ditstream";
  info->plugin_type = F0R_PLUGIN_TYPE_SOURCE;
  info->color_model = F0R_COLOR_MODEL_RGBA8888;
  info->frei0r_version = FREI0R_MAJOR_VERSION;
  info->major_version = 0;
  info->minor_version = 1;
  info->num_params = static_cast<int>(Params().size());
  info->explanation = "Generative video from a text prompt (ditstream diffusion transformer)";
}

__attribute__((visibility("default"))) void f0r_get_param_info(f0r_param_info_t* info, int index) {
  const auto& params = Params();
  if (index < 0 || index >= static_cast<int>(params.size())) return;
  info->name = params[index].name.c_str();
  info->type = params[index].is_string ? F0R_PARAM_STRING : F0R_PARAM_DOUBLE;
  info->explanation = params[index].explanation.c_str();
}

// Cheap on purpose: GStreamer constructs instances at scan time just to read defaults.
__attribute__((visibility("default"))) f0r_instance_t f0r_construct(unsigned int width, unsigned int height) {
  try {
    auto in = std::make_unique<Instance>();
    in->width = static_cast<int>(width);
    in->height = static_cast<int>(height);
    const auto& params = Params();
    in->doubles.assign(params.size(), 0.0);
    in->param_errors.assign(params.size(), "");
    for (const auto& p : params) in->strings.emplace_back(p.option ? p.option->default_value : "");
    return in.release();
  } catch (...) {
    return nullptr;  // FFmpeg reports "Impossible to load frei0r instance"
  }
}

__attribute__((visibility("default"))) void f0r_destruct(f0r_instance_t instance) {
  delete static_cast<Instance*>(instance);
}

__attribute__((visibility("default"))) void f0r_set_param_value(f0r_instance_t instance, f0r_param_t param,
                                                                int index) {
  const bool from_gstreamer = CalledFromGstreamer(__builtin_return_address(0));
  try {
    SetParam(*static_cast<Instance*>(instance), param, index, from_gstreamer);
  } catch (const std::exception& e) {
    PrintLine(std::string("warning: parameter not set: ") + e.what());
  }
}

__attribute__((visibility("default"))) void f0r_get_param_value(f0r_instance_t instance, f0r_param_t param,
                                                                int index) {
  const auto* in = static_cast<const Instance*>(instance);
  if (param == nullptr || index < 0 || index >= static_cast<int>(in->strings.size())) return;
  if (Params()[index].is_string) {
    *static_cast<const char**>(param) = in->strings[index].c_str();
  } else {
    *static_cast<double*>(param) = in->doubles[index];
  }
}

__attribute__((visibility("default"))) void f0r_update(f0r_instance_t instance, double /*time*/,
                                                       const uint32_t* /*inframe*/, uint32_t* outframe) {
  auto& in = *static_cast<Instance*>(instance);
  auto* out = reinterpret_cast<uint8_t*>(outframe);
  in.gst_construct_batch = -1;
  if (!in.stream && in.start_error.empty()) Start(in);
  try {
    if (in.stream && in.stream->NextFrame(out)) {
      ++in.frames_out;
      return;
    }
  } catch (const std::exception& e) {
    in.start_error = e.what();
  }
  if (!in.error_reported) {
    const std::string why = in.start_error.empty() ? in.stream->Error() : in.start_error;
    PrintLine("error: " + why + " (showing a red/black checker instead)");
    in.error_reported = true;
  }
  FillErrorFrame(out, in.width, in.height, in.frames_out++);
}

}  // extern "C"
