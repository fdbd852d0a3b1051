// The command line: one flag per entry of the engine's option table, plus ditgen's own output flags.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ditgen {

struct Args {
  // Table options given on the command line, in table order; the rest keep the engine's defaults.
  std::vector<std::pair<std::string, std::string>> options;
  std::string output;  // -o: a path or "-"; empty when only --frames-dir is given
  std::string frames_dir;
  std::string strip;        // --strip: one PNG of evenly spaced frames
  std::string embeds;       // --embeds: prompt embeddings to use instead of encoding the prompt
  std::string save_embeds;  // --save-embeds: write the prompt embeddings here
  bool quiet = false;
  bool verbose = false;        // -v: the engine's informational messages too
  bool no_provenance = false;  // --no-provenance: no title/comment metadata in the video file
};

// Returns the exit status when ditgen should stop now: 0 after --help or --version, 2 after a usage
// error (reported in one line); nullopt to go on.
std::optional<int> parse_args(int argc, char** argv, Args& args);

// Prints "ditgen: error: <message>" on stderr.
void print_error(const std::string& message);

}  // namespace ditgen
