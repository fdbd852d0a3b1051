// ditgen: text to video on the command line, over the public C API only.
//
// Exit status: 0 done; 1 runtime error (model, I/O, encoder); 2 bad arguments (flags, values, and
// sizes or devices the model or build does not support); 128+N after signal N (130 for Ctrl-C).
// Whatever the outcome, an output either appears complete or not at all.
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <numeric>
#include <vector>

#include "args.h"
#include "ditstream.h"
#include "interrupt.h"
#include "progress.h"
#include "writer.h"

namespace ditgen {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

// A size, device or value that this model or build rejects is the user's to change: a usage error.
int exit_code_for(ds_status status) {
  return status == DS_ERR_INVALID_ARGUMENT || status == DS_ERR_UNSUPPORTED ? kExitUsage : kExitRuntime;
}

using Generator = std::unique_ptr<ds_generator, decltype(&ds_destroy)>;

// Keeps the signal watcher away from a generator that is about to be destroyed.
class CancelTarget {
 public:
  explicit CancelTarget(ds_generator* gen) { interrupt::set_target(gen); }
  ~CancelTarget() { interrupt::set_target(nullptr); }
  CancelTarget(const CancelTarget&) = delete;
  CancelTarget& operator=(const CancelTarget&) = delete;
};

// What ds_generate's callbacks work on.
struct Session {
  std::vector<std::unique_ptr<FrameWriter>> writers;
  ProgressBar* progress = nullptr;
  VideoFormat format;
  int written = 0;
  Status error;                  // the first writer failure; it stops generation
  std::string saved_embeddings;  // --save-embeds' file, once written: an interrupt cannot take it back
};

int on_frame(void* user, const ds_frame* frame) {
  auto& session = *static_cast<Session*>(user);
  try {
    if (frame->width != session.format.width || frame->height != session.format.height) {
      session.error = fail("the engine delivered a {}x{} frame for a {}x{} video", frame->width, frame->height,
                           session.format.width, session.format.height);
      return 1;
    }
    for (auto& writer : session.writers) {
      session.error = writer->write(frame->rgb);
      if (!session.error.ok()) return 1;
    }
  } catch (const std::exception& e) {  // nothing may unwind through the C API
    session.error = Status::error(e.what());
    return 1;
  }
  session.progress->frame_written(++session.written);
  return 0;
}

void on_progress(void* user, const ds_progress* progress) { static_cast<Session*>(user)->progress->update(*progress); }

void print_warning(void* user, ds_log_level level, const char* message) {
  // Errors come back through ds_error_message and are printed once, by us.
  if (level == DS_LOG_WARNING) static_cast<ProgressBar*>(user)->print_line(fmt::format("ditgen: warning: {}", message));
}

void print_info(void* user, ds_log_level level, const char* message) {
  print_warning(user, level, message);
  if (level == DS_LOG_INFO) static_cast<ProgressBar*>(user)->print_line(fmt::format("ditgen: {}", message));
}

void ignore_log(void*, ds_log_level, const char*) {}

// Routes engine warnings (and with -v its informational messages) above the progress bar while the
// bar exists (the sink is process-wide).
class EngineLog {
 public:
  EngineLog(bool quiet, bool verbose, ProgressBar& progress) {
    if (quiet)
      ds_set_log_sink(ignore_log, nullptr);
    else
      ds_set_log_sink(verbose ? print_info : print_warning, &progress);
  }
  ~EngineLog() { ds_set_log_sink(ignore_log, nullptr); }
  EngineLog(const EngineLog&) = delete;
  EngineLog& operator=(const EngineLog&) = delete;
};

// The "fps" option when set (> 0), as an exact rational for the usual NTSC rates, 1/n below one
// frame per second; otherwise the model's native rate. False for a rate too low to write as a
// fraction of ints (one frame in more than 68 years).
bool frame_rate(const ds_generator* gen, const ds_model_info& info, int& num, int& den) {
  num = info.fps_num;
  den = info.fps_den > 0 ? info.fps_den : 1;
  char text[64] = {};
  if (!ds_option_find("fps") || ds_get_option(gen, "fps", text, sizeof text) != DS_OK) return true;
  char* end = nullptr;
  double fps = std::strtod(text, &end);
  if (end == text || !(fps > 0) || fps > 1e6) return true;
  // Below one frame per second: 1/n when that is the rate (0.5 → 1/2), or when thousandths cannot
  // hold it (0.0007 → 1/1429).
  const double period = 1 / fps;
  if (fps < 1 && (std::abs(period - std::round(period)) < 1e-6 * period || fps * 1000 < 1)) {
    if (period > INT_MAX) return false;
    num = 1;
    den = static_cast<int>(std::round(period));
    return true;
  }
  if (std::abs(fps - std::round(fps)) < 1e-9) {
    num = static_cast<int>(std::round(fps));
    den = 1;
  } else if (double ntsc = fps * 1.001; std::round(ntsc) >= 1 && std::abs(ntsc - std::round(ntsc)) < 1e-3) {
    num = static_cast<int>(std::round(ntsc)) * 1000;
    den = 1001;
  } else {
    num = static_cast<int>(std::round(fps * 1000));
    den = 1000;
  }
  int g = std::gcd(num, den);
  num /= g;
  den /= g;
  return true;
}

std::string engine_error(const ds_generator* gen, const char* fallback) {
  const char* message = ds_error_message(gen);
  return message && *message ? message : fallback;
}

// The steps of run(): each prints its own one-line error and returns the exit status, or 0 to go on.

int apply_options(ds_generator* gen, const Args& args) {
  for (const auto& [name, value] : args.options) {
    if (ds_set_option(gen, name.c_str(), value.c_str()) != DS_OK) {
      print_error(fmt::format("--{} {}: {}", name, value, engine_error(gen, "invalid value")));
      return kExitUsage;
    }
  }
  return kExitOk;
}

// Reserves the outputs before the (possibly long) model load, so that a bad path fails at once.
int open_outputs(const Args& args, Session& session) {
  if (!args.output.empty()) {
    session.writers.emplace_back();
    if (Status s = open_video_writer(args.output, session.writers.back()); !s.ok()) {
      print_error(s.message());
      return kExitRuntime;
    }
  }
  if (!args.frames_dir.empty()) {
    session.writers.emplace_back();
    if (Status s = open_png_writer(args.frames_dir, session.writers.back()); !s.ok()) {
      print_error(s.message());
      return kExitRuntime;
    }
  }
  if (!args.strip.empty()) {
    session.writers.emplace_back();
    if (Status s = open_strip_writer(args.strip, session.writers.back()); !s.ok()) {
      print_error(s.message());
      return kExitRuntime;
    }
  }
  return kExitOk;
}

// Loads the model and learns the video it will produce.
int load_model(ds_generator* gen, Session& session) {
  if (ds_status status = ds_load(gen); status != DS_OK) {
    print_error(engine_error(gen, "cannot load the model"));
    return exit_code_for(status);
  }
  ds_model_info info{};
  VideoFormat& format = session.format;
  if (ds_get_model_info(gen, &info) != DS_OK ||
      ds_get_output_shape(gen, &format.width, &format.height, &format.frames) != DS_OK) {
    print_error(engine_error(gen, "cannot query the model"));
    return kExitRuntime;
  }
  if (!frame_rate(gen, info, format.fps_num, format.fps_den)) {
    print_error("--fps: too low to stamp as a frame rate (the lowest is one frame in 2147483647 seconds)");
    return kExitUsage;
  }
  if (format.width <= 0 || format.height <= 0 || format.fps_num <= 0) {
    print_error(fmt::format("the model reports an unusable video format: {}x{} at {}/{} fps", format.width,
                            format.height, format.fps_num, format.fps_den));
    return kExitRuntime;
  }
  session.progress->expect_frames(format.frames);
  return kExitOk;
}

// The video's metadata (after --embeds, which sets the prompt), then the writers start.
int begin_writers(ds_generator* gen, Session& session, bool provenance) {
  VideoFormat& format = session.format;
  if (provenance) {
    size_t length = 0;
    std::string prompt(1024, '\0');  // ds_get_option cuts at the buffer's size: grow until it fits
    while (ds_get_option(gen, "prompt", prompt.data(), prompt.size()) == DS_OK &&
           std::strlen(prompt.c_str()) + 1 == prompt.size()) {
      prompt.assign(prompt.size() * 2, '\0');
    }
    if (ds_get_provenance(gen, nullptr, 0, &length) != DS_OK) {
      print_error(engine_error(gen, "cannot describe the video"));
      return kExitRuntime;
    }
    format.title = prompt.c_str();
    format.provenance.assign(length + 1, '\0');
    if (ds_get_provenance(gen, format.provenance.data(), format.provenance.size(), nullptr) != DS_OK) {
      print_error(engine_error(gen, "cannot describe the video"));
      return kExitRuntime;
    }
    format.provenance.resize(length);
  }
  for (auto& writer : session.writers) {
    if (Status s = writer->begin(format); !s.ok()) {
      print_error(s.message());
      return kExitRuntime;
    }
  }
  return kExitOk;
}

// What an interrupted run leaves: outputs written in place (standard output, a pipe or a device)
// keep what was streamed; staged files are removed; saved embeddings stay.
std::string interrupted_message(const Session& session, const std::string& output) {
  struct stat st;
  const bool in_place = output == "-" || (!output.empty() && stat(output.c_str(), &st) == 0 && !S_ISREG(st.st_mode));
  const std::string embeddings =
      session.saved_embeddings.empty() ? "" : fmt::format("the embeddings went to {}; ", session.saved_embeddings);
  if (!in_place)
    return fmt::format("interrupted; {}no {}output written", embeddings, embeddings.empty() ? "" : "other ");
  return fmt::format("interrupted; {}{} holds the frames streamed so far, cut short; no other output written",
                     embeddings, output == "-" ? "standard output" : output);
}

// --embeds and --save-embeds, after the model is loaded and before anything is generated.
int prompt_embeddings(ds_generator* gen, const Args& args, Session& session) {
  if (!args.embeds.empty()) {
    if (ds_status status = ds_load_embeddings(gen, args.embeds.c_str()); status != DS_OK) {
      print_error(fmt::format("--embeds {}: {}", args.embeds, engine_error(gen, "cannot read the embeddings")));
      return exit_code_for(status);
    }
  }
  if (args.save_embeds.empty()) return kExitOk;
  // Encoding the prompts cannot be cancelled: a signal during it is answered once it is done.
  if (int signal_number = interrupt::received()) {
    print_error(interrupted_message(session, args.output));
    return 128 + signal_number;
  }
  if (ds_status status = ds_save_embeddings(gen, args.save_embeds.c_str()); status != DS_OK) {
    print_error(fmt::format("--save-embeds {}: {}", args.save_embeds, engine_error(gen, "cannot save the embeddings")));
    return exit_code_for(status);
  }
  session.saved_embeddings = args.save_embeds;
  if (int signal_number = interrupt::received()) {
    print_error(interrupted_message(session, args.output));
    return 128 + signal_number;
  }
  return kExitOk;
}

// Streams the clip into the writers and, when all went well, makes their outputs visible.
int generate(ds_generator* gen, Session& session, const std::string& output) {
  ds_status status = ds_generate(gen, 0, on_frame, on_progress, &session);
  session.progress->clear();
  if (int signal_number = interrupt::received()) {
    // Standard output cannot be taken back: what was streamed stays streamed.
    print_error(interrupted_message(session, output));
    return 128 + signal_number;
  }
  if (!session.error.ok()) {
    print_error(session.error.message());
    return kExitRuntime;
  }
  if (status != DS_OK) {
    print_error(engine_error(gen, "generation failed"));
    return exit_code_for(status);
  }
  if (session.written == 0) {
    print_error("the engine delivered no frames; nothing written");
    return kExitRuntime;
  }
  for (auto& writer : session.writers) {
    if (Status s = writer->finish(); !s.ok()) {
      print_error(s.message());
      return kExitRuntime;
    }
  }
  for (auto& writer : session.writers) {
    if (Status s = writer->commit(); !s.ok()) {
      print_error(s.message());
      return kExitRuntime;
    }
  }
  return kExitOk;
}

int run(const Args& args) {
  const bool interactive = !args.quiet && isatty(STDERR_FILENO);
  ProgressBar progress(interactive);
  EngineLog engine_log(args.quiet, args.verbose, progress);

  Generator gen(ds_create(), &ds_destroy);
  if (!gen) {
    print_error("out of memory");
    return kExitRuntime;
  }
  CancelTarget cancel_target(gen.get());
  Session session;
  session.progress = &progress;
  if (int code = apply_options(gen.get(), args)) return code;
  if (int code = open_outputs(args, session)) return code;
  if (int code = load_model(gen.get(), session)) return code;
  if (int code = prompt_embeddings(gen.get(), args, session)) return code;
  if (session.writers.empty()) return kExitOk;  // --save-embeds alone: nothing to generate
  if (int code = begin_writers(gen.get(), session, !args.no_provenance)) return code;
  if (int code = generate(gen.get(), session, args.output)) return code;

  if (interactive) {
    const VideoFormat& f = session.format;
    const std::string where = args.output == "-"         ? "standard output"
                              : !args.output.empty()     ? args.output
                              : !args.frames_dir.empty() ? args.frames_dir
                                                         : args.strip;
    progress.print_line(fmt::format("ditgen: wrote {} frames, {}x{} at {}/{} fps, to {}", session.written, f.width,
                                    f.height, f.fps_num, f.fps_den, where));
  }
  return kExitOk;
}

}  // namespace
}  // namespace ditgen

int main(int argc, char** argv) {
  ditgen::interrupt::install();
  signal(SIGPIPE, SIG_IGN);  // a closed pipe becomes a write error we can report
  try {
    ditgen::Args args;
    if (std::optional<int> code = ditgen::parse_args(argc, argv, args)) return *code;
    return ditgen::run(args);
  } catch (const std::exception& e) {
    ditgen::print_error(e.what());
    return 1;
  }
}
