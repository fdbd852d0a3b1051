#include "args.h"

#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <vector>

#include "ditstream.h"
#include "writer.h"

namespace ditgen {
namespace {

const char* type_label(ds_option_type type) {
  switch (type) {
    case DS_OPT_INT:
      return "INT";
    case DS_OPT_DOUBLE:
      return "FLOAT";
    case DS_OPT_STRING:
      return "TEXT";
  }
  return "VALUE";
}

std::string format_bound(double value, ds_option_type type) {
  if (type != DS_OPT_INT) return fmt::format("{}", value);
  // int64 bounds travel as doubles; 2^63 itself does not fit back into an int64.
  if (value >= 9.2e18) return fmt::format("{}", INT64_MAX);
  if (value <= -9.2e18) return fmt::format("{}", INT64_MIN);
  return fmt::format("{}", static_cast<int64_t>(value));
}

std::string describe(const ds_option_info& info) {
  std::string text = info.help ? info.help : "";
  if (!text.empty() && text.back() != '.') text += '.';
  if (info.type != DS_OPT_STRING)
    text += fmt::format(" Range: {} to {}.", format_bound(info.min, info.type), format_bound(info.max, info.type));
  return text;
}

std::string shown_default(const ds_option_info& info) {
  std::string value = info.default_value;
  return value.find(' ') == std::string::npos ? value : '"' + value + '"';
}

// Two outputs on one path would overwrite each other (the last committed wins): a usage error.
int check_distinct_outputs(const Args& args) {
  namespace fs = std::filesystem;
  std::vector<std::pair<const char*, const std::string*>> outputs;
  if (!args.output.empty() && args.output != "-") outputs.emplace_back("-o", &args.output);
  if (!args.frames_dir.empty()) outputs.emplace_back("--frames-dir", &args.frames_dir);
  if (!args.strip.empty()) outputs.emplace_back("--strip", &args.strip);
  if (!args.save_embeds.empty()) outputs.emplace_back("--save-embeds", &args.save_embeds);
  auto resolved = [](const std::string& path) {
    std::error_code ec;
    fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
    if (ec) p = fs::path(path).lexically_normal();
    if (!p.has_filename()) p = p.parent_path();  // "x.png/" names what "x.png" does
    return p;
  };
  for (size_t i = 0; i < outputs.size(); ++i)
    for (size_t j = i + 1; j < outputs.size(); ++j)
      if (resolved(*outputs[i].second) == resolved(*outputs[j].second)) {
        print_error(fmt::format("{} {} and {} {} name the same file", outputs[i].first, *outputs[i].second,
                                outputs[j].first, *outputs[j].second));
        return 2;
      }
  return 0;
}

}  // namespace

void print_error(const std::string& message) { fmt::print(stderr, "ditgen: error: {}\n", message); }

std::optional<int> parse_args(int argc, char** argv, Args& args) {
  CLI::App app("Generates a video from a text prompt with the ditstream diffusion transformer.", "ditgen");
  app.get_formatter()->column_width(34);
  app.footer(
      "Examples:\n"
      "  ditgen --prompt \"a red circle moving right\" -o clip.mp4\n"
      "  ditgen --prompt \"a blue square moving up\" --seed 7 -o - | ffplay -\n"
      "  ditgen --prompt \"a green circle moving left\" --frames-dir frames/\n");
  app.set_help_flag("-h,--help", "Print this help and exit.");

  bool version = false;
  // std::map nodes stay put, so CLI11 can write into them.
  std::map<std::string, std::string> values;
  std::vector<std::pair<std::string, CLI::Option*>> table_flags;
  try {
    for (int i = 0; i < ds_option_count(); ++i) {
      const ds_option_info* info = ds_option_at(i);
      if (!info || !info->name) continue;
      CLI::Option* flag = app.add_option(std::string("--") + info->name, values[info->name], describe(*info))
                              ->type_name(type_label(info->type))
                              ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
                              ->group("Generation");
      if (info->default_value && *info->default_value) flag->default_str(shown_default(*info));
      table_flags.emplace_back(info->name, flag);
    }
    app.add_option("-o,--output", args.output,
                   fmt::format("Where the video goes: {}. Required unless --frames-dir or --strip is given.",
                               kOutputExtensions))
        ->type_name("PATH")
        ->group("Output");
    app.add_option("--frames-dir", args.frames_dir,
                   "Also (or only) write each frame as DIR/frame_00000.png, ...; in an existing DIR, frame files "
                   "of an earlier run are replaced")
        ->type_name("DIR")
        ->group("Output");
    app.add_option("--strip", args.strip, "Also write one PNG of up to 8 evenly spaced frames side by side")
        ->type_name("FILE.png")
        ->group("Output");
    app.add_option("--embeds", args.embeds,
                   "Use prompt embeddings saved by --save-embeds (their prompt and negative prompt, so not with "
                   "--prompt or --negative-prompt) instead of running the text encoder (Wan2.1 models)")
        ->type_name("FILE")
        ->group("Generation");
    app.add_option("--save-embeds", args.save_embeds,
                   "Write the prompt's and negative prompt's embeddings to FILE for --embeds (Wan2.1 models); "
                   "with no other output, only that")
        ->type_name("FILE")
        ->group("Output");
    app.add_flag("--no-provenance", args.no_provenance,
                 "Leave out the video file's metadata: by default its title is the prompt and its comment a JSON "
                 "record of how it was generated (AI-generated, engine, model, prompt, seed, sampling, size; no "
                 "local paths)")
        ->group("Output");
    CLI::Option* quiet =
        app.add_flag("-q,--quiet", args.quiet, "No progress display and no warnings.")->group("Output");
    app.add_flag("-v,--verbose", args.verbose,
                 "Also print what the engine reports as it goes: the backend the model loaded on, how the VAE decodes, "
                 "how many steps the first-block cache skipped")
        ->group("Output")
        ->excludes(quiet);
    app.add_flag("--version", version, "Print the version and exit.");
  } catch (const CLI::Error& e) {  // an option table entry that clashes with ditgen's own flags
    print_error(fmt::format("cannot build the command line: {}", e.what()));
    return 1;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    fmt::print("{}", app.help());
    return 0;
  } catch (const CLI::ParseError& e) {
    print_error(fmt::format("{} (see ditgen --help)", e.what()));
    return 2;
  }
  if (version) {
    fmt::print("ditgen {}\n", ds_version());
    return 0;
  }

  for (const auto& [name, flag] : table_flags)
    if (flag->count() > 0) args.options.emplace_back(name, values[name]);

  if (args.output.empty() && args.frames_dir.empty() && args.strip.empty() && args.save_embeds.empty()) {
    print_error("no output given: use -o PATH (or -o - for standard output), --frames-dir DIR or --strip FILE.png");
    return 2;
  }
  if (int code = check_distinct_outputs(args)) return code;
  if (!args.embeds.empty()) {
    for (const auto& [name, value] : args.options) {
      if (name == "prompt" || name == "negative-prompt") {
        print_error(
            fmt::format("--embeds {} carries its own prompt and negative prompt: leave out --{}", args.embeds, name));
        return 2;
      }
    }
  }
  if (!args.strip.empty() && lowercase_extension(args.strip) != "png") {
    print_error(fmt::format("--strip {}: the strip is a PNG image; name it .png", args.strip));
    return 2;
  }
  if (!args.output.empty()) {
    std::optional<OutputKind> kind = output_kind(args.output);
    if (!kind) {
      print_error(fmt::format("-o {}: unknown format (use {})", args.output, kOutputExtensions));
      return 2;
    }
    if (*kind == OutputKind::y4m_stdout && isatty(STDOUT_FILENO)) {
      print_error("-o -: standard output is a terminal; redirect it to a file or a pipe");
      return 2;
    }
  }
  return std::nullopt;
}

}  // namespace ditgen
