// The option table (DESIGN.md §3): one declarative list of every generation option, from which the
// CLI flags, the GStreamer properties and the FFmpeg options are generated through the C API.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/wan/wan_lora.h"
#include "ditstream.h"

namespace ds {

// Values of every option, as the generator reads them; DefaultOptions() fills them from the table.
// 0 / negative sentinels mean "the model's default" where the table's help says so.
struct Options {
  std::string model, prompt, negative_prompt, device;
  int width = 0, height = 0, frames = 0;
  double fps = 0;
  int steps = 0;
  double guidance = -1, shift = -1;
  int64_t seed = 0;
  int threads = 0;
  std::string vae_tiling;      // auto, on, off
  std::string sampler;         // auto, euler, unipc
  std::string lora;            // FILE[=STRENGTH] items separated by commas (ParseLoras)
  std::string lora_2;          // the same for a two-stage model's transformer_2
  double cache_threshold = 0;  // the first-block cache's (core/first_block_cache.h); 0: off
  double guidance_2 = -1;      // a two-stage model's low-noise stage; -1: guidance's
};

std::span<const ds_option_info> OptionTable();
// Every option at its table default: the table is the one source of defaults.
Options DefaultOptions();
const ds_option_info* FindOption(std::string_view name);  // '-' and '_' are interchangeable

// Parses and range-checks `value` for option `name` into `opts`; the error names both.
Status SetOption(Options& opts, std::string_view name, std::string_view value);
Result<std::string> GetOption(const Options& opts, std::string_view name);

// The `lora` option's files and strengths: "a.safetensors,b.safetensors=0.6" (a strength is the number
// after the last '='; a file named with '=' in it takes an explicit "=1"). Empty: none.
Result<std::vector<LoraSpec>> ParseLoras(std::string_view value);

}  // namespace ds
