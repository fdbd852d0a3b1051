#include "pipelines/options.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>

#include "kernels/registry.h"

namespace ds {
namespace {

constexpr double kMaxSeed = 9007199254740991.0;  // 2^53 − 1: exact in a double (GStreamer/FFmpeg ranges)

// The table. min/max bound numeric options; the help text documents sentinels. Append new options at
// the end: frei0r passes parameters by position (plugin/ffmpeg/frei0r/params.cpp).
constexpr std::array<ds_option_info, 19> kOptions = {{
    {"model", DS_OPT_STRING, "demo", 0, 0, "Model to load: a model folder path, or the name of a bundled model (demo)",
     0},
    {"prompt", DS_OPT_STRING, "a red circle moving right", 0, 0, "What the video shows", 1},
    {"negative-prompt", DS_OPT_STRING, "", 0, 0, "What the video should not show (the unconditional CFG pass)", 1},
    {"width", DS_OPT_INT, "0", 0, 4096, "Frame width in pixels (0 = the model's native width)", 0},
    {"height", DS_OPT_INT, "0", 0, 4096, "Frame height in pixels (0 = the model's native height)", 0},
    {"frames", DS_OPT_INT, "0", 0, 1024, "Frames per clip (0 = the model's native clip length)", 0},
    {"fps", DS_OPT_DOUBLE, "0", 0, 240, "Frame rate stamped on the output (0 = the model's native rate)", 0},
    {"steps", DS_OPT_INT, "0", 0, 1000, "Denoising steps (0 = the model's default)", 1},
    {"guidance", DS_OPT_DOUBLE, "-1", -1, 100,
     "Classifier-free guidance scale, 0 to 100; 1 disables the unconditional pass (-1 = the model's default)", 1},
    {"shift", DS_OPT_DOUBLE, "-1", -1, 100,
     "Timestep shift of the flow schedule, above 0 up to 100 (-1 = the model's default)", 1},
    {"seed", DS_OPT_INT, "0", 0, kMaxSeed,
     "Seed of the initial noise: same seed, same build, same device and thread count → same video", 1},
    {"device", DS_OPT_STRING, "auto", 0, 0,
     "Compute device: cpu, cuda (the first GPU), cuda:N (the GPU of that index), reference (the slow oracle) or auto "
     "(Wan2.1 on the first GPU when there is one; the demo model on the CPU)",
     0},
    {"threads", DS_OPT_INT, "0", 0, 1024, "CPU threads (0 = all cores)", 0},
    {"vae-tiling", DS_OPT_STRING, "auto", 0, 0,
     "Wan2.1 VAE decode: off streams every frame as it is decoded; on decodes 256-pixel tiles one after "
     "another (bounded memory, frames come at the end); auto tiles when streaming would not fit (in half "
     "the RAM, or most of a GPU's free memory)",
     1},
    {"sampler", DS_OPT_STRING, "auto", 0, 0,
     "Sampler of the flow schedule: euler (flow-matching Euler), unipc (UniPC multistep, order 2) or auto (the "
     "model's: a Wan2.1 folder's scheduler config, Euler for the demo model)",
     1},
    {"lora", DS_OPT_STRING, "", 0, 0,
     "LoRA files merged into a Wan2.1 model's transformer at load: FILE or FILE=STRENGTH (default 1), several "
     "separated by commas (e.g. a few-step distillation LoRA with steps=4 guidance=1)",
     0},
    {"cache-threshold", DS_OPT_DOUBLE, "0", 0, 1,
     "First-block cache: a denoising step whose first transformer block changed its output by less than this "
     "(mean relative difference) since the last full step reuses what the other blocks added then, instead of "
     "running them (0 = off; a higher threshold skips more steps and drifts further from the uncached video)",
     1},
    {"guidance-2", DS_OPT_DOUBLE, "-1", -1, 100,
     "Classifier-free guidance scale of the low-noise stage of a two-stage model (Wan2.2 A14B's transformer_2), 0 "
     "to 100 (-1 = the guidance option's)",
     1},
    {"lora-2", DS_OPT_STRING, "", 0, 0,
     "LoRA files merged at load into the low-noise transformer (transformer_2) of a two-stage model (Wan2.2 A14B), "
     "as lora is into its first: FILE or FILE=STRENGTH, several separated by commas",
     0},
}};

// The offset of the first byte that does not start well-formed UTF-8 (RFC 3629: no overlong forms,
// surrogates or code points past U+10FFFF), or npos. Prompts are text: the tokenizers, the
// provenance JSON and GStreamer tags all need UTF-8, and replacing a byte would record a prompt
// that does not make the video again.
size_t InvalidUtf8At(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto lead = static_cast<unsigned char>(s[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    size_t length;
    uint32_t code, min;
    if ((lead & 0xE0) == 0xC0) {
      length = 2, code = lead & 0x1Fu, min = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3, code = lead & 0x0Fu, min = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4, code = lead & 0x07u, min = 0x10000;
    } else {
      return i;
    }
    if (s.size() - i < length) return i;
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(s[i + k]);
      if ((next & 0xC0) != 0x80) return i;
      code = (code << 6) | (next & 0x3Fu);
    }
    if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return i;
    i += length;
  }
  return std::string_view::npos;
}

std::string Canonical(std::string_view name) {
  std::string s(name);
  for (char& c : s) {
    if (c == '_') c = '-';
  }
  return s;
}

// from_chars, not strtod: a host application's locale (a comma decimal separator) must not change
// how "4.5" parses.
Result<double> ParseNumber(const ds_option_info& o, std::string_view value) {
  const char* first = value.data();
  const char* last = value.data() + value.size();
  // from_chars takes no '+'; skip one, but not before a sign ("+-1" is no number).
  if (value.size() > 1 && value[0] == '+' && value[1] != '-') ++first;
  double v = 0;
  if (o.type == DS_OPT_INT) {
    // Decimal digits only: "1e3" or "20.0" for a count is more likely a slip than a way of writing 1000.
    int64_t i = 0;
    const auto [end, ec] = std::from_chars(first, last, i);
    if (value.empty() || ec == std::errc::invalid_argument || (ec == std::errc() && end != last)) {
      return Error(Code::kInvalidArgument, "option '{}': '{}' is not an integer", o.name, value);
    }
    if (ec != std::errc()) {  // out of int64's range
      return Error(Code::kInvalidArgument, "option '{}': {} is outside [{}, {}]", o.name, value, o.min, o.max);
    }
    v = static_cast<double>(i);
  } else {
    const auto [end, ec] = std::from_chars(first, last, v);
    if (value.empty() || ec != std::errc() || end != last || !std::isfinite(v)) {
      return Error(Code::kInvalidArgument, "option '{}': '{}' is not a number", o.name, value);
    }
  }
  if (v < o.min || v > o.max) {
    return Error(Code::kInvalidArgument, "option '{}': {} is outside [{}, {}]", o.name, value, o.min, o.max);
  }
  return v;
}

}  // namespace

std::span<const ds_option_info> OptionTable() { return kOptions; }

Options DefaultOptions() {
  Options opts;
  for (const ds_option_info& o : kOptions) {
    // The table's defaults are valid by construction (a test checks each one parses).
    (void)SetOption(opts, o.name, o.default_value);
  }
  return opts;
}

const ds_option_info* FindOption(std::string_view name) {
  const std::string c = Canonical(name);
  for (const ds_option_info& o : kOptions) {
    if (c == o.name) return &o;
  }
  return nullptr;
}

Status SetOption(Options& opts, std::string_view name, std::string_view value) {
  const ds_option_info* o = FindOption(name);
  if (o == nullptr) return Error(Code::kInvalidArgument, "unknown option '{}'", name);
  const std::string n = o->name;
  if (o->type == DS_OPT_STRING) {
    if (value.find('\0') != std::string_view::npos) {
      return Error(Code::kInvalidArgument, "option '{}': value contains a NUL byte", n);
    }
    if (n == "prompt" || n == "negative-prompt") {
      // Far more than a text encoder reads (512 tokens), small enough that tokenizing it and the
      // provenance that quotes it stay cheap.
      constexpr size_t kMaxPromptBytes = size_t{1} << 20;
      if (value.size() > kMaxPromptBytes) {
        return Error(Code::kInvalidArgument, "option '{}': {} bytes, at most {}", n, value.size(), kMaxPromptBytes);
      }
      if (const size_t bad = InvalidUtf8At(value); bad != std::string_view::npos) {
        return Error(Code::kInvalidArgument, "option '{}': not valid UTF-8 at byte {}", n, bad);
      }
    }
    if (n == "model") {
      if (value.empty()) return Error(Code::kInvalidArgument, "option 'model': empty model name");
      opts.model = value;
    } else if (n == "prompt") {
      if (value.find_first_not_of(" \t\r\n") == std::string_view::npos) {
        return Error(Code::kInvalidArgument, "option 'prompt': empty prompt (say what the video should show)");
      }
      opts.prompt = value;
    } else if (n == "negative-prompt") {
      opts.negative_prompt = value;
    } else if (n == "device") {
      if (const Result<DeviceChoice> device = ParseDevice(value); !device.ok()) {
        return Error(Code::kInvalidArgument, "option 'device': {}", device.status().message());
      }
      opts.device = value;
    } else if (n == "vae-tiling") {
      if (value != "auto" && value != "on" && value != "off") {
        return Error(Code::kInvalidArgument, "option 'vae-tiling': '{}' is not one of auto, on, off", value);
      }
      opts.vae_tiling = value;
    } else if (n == "sampler") {
      if (value != "auto" && value != "euler" && value != "unipc") {
        return Error(Code::kInvalidArgument, "option 'sampler': '{}' is not one of auto, euler, unipc", value);
      }
      opts.sampler = value;
    } else if (n == "lora" || n == "lora-2") {
      if (const Result<std::vector<LoraSpec>> loras = ParseLoras(value); !loras.ok()) {
        return Error(Code::kInvalidArgument, "option '{}': {}", n, loras.status().message());
      }
      (n == "lora" ? opts.lora : opts.lora_2) = value;
    }
    return Status::Ok();
  }
  DS_ASSIGN_OR_RETURN(double v, ParseNumber(*o, value));
  if (n == "width")
    opts.width = static_cast<int>(v);
  else if (n == "height")
    opts.height = static_cast<int>(v);
  else if (n == "frames")
    opts.frames = static_cast<int>(v);
  else if (n == "fps")
    opts.fps = v;
  else if (n == "steps")
    opts.steps = static_cast<int>(v);
  else if (n == "guidance") {
    // Between the sentinel and 0 is no scale: refused rather than quietly taken as the default.
    if (v != -1 && v < 0)
      return Error(Code::kInvalidArgument, "option 'guidance': must be 0 or more (or -1), got {}", value);
    opts.guidance = v;
  } else if (n == "shift") {
    if (v != -1 && v <= 0)
      return Error(Code::kInvalidArgument, "option 'shift': must be positive (or -1), got {}", value);
    opts.shift = v;
  } else if (n == "seed")
    opts.seed = static_cast<int64_t>(v);
  else if (n == "threads")
    opts.threads = static_cast<int>(v);
  else if (n == "cache-threshold")
    opts.cache_threshold = v;
  else if (n == "guidance-2") {
    if (v != -1 && v < 0)
      return Error(Code::kInvalidArgument, "option 'guidance-2': must be 0 or more (or -1), got {}", value);
    opts.guidance_2 = v;
  }
  return Status::Ok();
}

Result<std::vector<LoraSpec>> ParseLoras(std::string_view value) {
  std::vector<LoraSpec> out;
  if (value.empty()) return out;
  size_t begin = 0;
  while (begin <= value.size()) {
    const size_t end = std::min(value.find(',', begin), value.size());
    std::string_view item = value.substr(begin, end - begin);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item.empty()) return Error(Code::kInvalidArgument, "'{}' has an empty item (FILE[=STRENGTH],…)", value);
    LoraSpec spec{std::string(item), 1.0};
    if (const size_t eq = item.rfind('='); eq != std::string_view::npos) {
      const std::string_view number = item.substr(eq + 1);
      double strength = 0;
      const auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), strength);
      if (ec == std::errc() && ptr == number.data() + number.size() && !number.empty()) {
        if (!std::isfinite(strength)) return Error(Code::kInvalidArgument, "'{}': strength is not finite", item);
        spec = {std::string(item.substr(0, eq)), strength};
        if (spec.path.empty()) return Error(Code::kInvalidArgument, "'{}' names no file", item);
      }
    }
    out.push_back(std::move(spec));
    begin = end + 1;
  }
  return out;
}

Result<std::string> GetOption(const Options& opts, std::string_view name) {
  const ds_option_info* o = FindOption(name);
  if (o == nullptr) return Error(Code::kInvalidArgument, "unknown option '{}'", name);
  const std::string n = o->name;
  if (n == "model") return opts.model;
  if (n == "prompt") return opts.prompt;
  if (n == "negative-prompt") return opts.negative_prompt;
  if (n == "device") return opts.device;
  if (n == "vae-tiling") return opts.vae_tiling;
  if (n == "sampler") return opts.sampler;
  if (n == "lora") return opts.lora;
  if (n == "lora-2") return opts.lora_2;
  if (n == "width") return std::to_string(opts.width);
  if (n == "height") return std::to_string(opts.height);
  if (n == "frames") return std::to_string(opts.frames);
  if (n == "fps") return fmt::format("{}", opts.fps);
  if (n == "steps") return std::to_string(opts.steps);
  if (n == "guidance") return fmt::format("{}", opts.guidance);
  if (n == "shift") return fmt::format("{}", opts.shift);
  if (n == "seed") return std::to_string(opts.seed);
  if (n == "threads") return std::to_string(opts.threads);
  if (n == "cache-threshold") return fmt::format("{}", opts.cache_threshold);
  if (n == "guidance-2") return fmt::format("{}", opts.guidance_2);
  return Error(Code::kInternal, "option '{}' has no getter", n);
}

}  // namespace ds
