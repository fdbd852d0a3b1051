// End-to-end tests of ditgen: the binary is run as a child process and its outputs are checked by
// independent readers (ffprobe, a Y4M parser, PNG headers), never by ditgen's own code.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ditstream.h"

#ifndef DITGEN_PATH
#error "DITGEN_PATH must name the ditgen binary under test"
#endif

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::seconds;

constexpr auto kRunTimeout = seconds(240);

// ---- child processes ------------------------------------------------------------------------

struct RunResult {
  int exit_code = -1;   // 128+N when killed by signal N, as a shell reports it
  bool killed = false;  // died of a signal instead of exiting
  std::string out, err;
};

enum class Stdout { captured, closed };

// A running ditgen with stderr, and stdout unless closed (nobody reads it), captured through pipes.
class Child {
 public:
  explicit Child(const std::vector<std::string>& args, Stdout stdout_mode = Stdout::captured) {
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
    std::vector<std::string> argv_storage = {DITGEN_PATH};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    int err = posix_spawn(&pid_, DITGEN_PATH, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out_pipe[1]);
    close(err_pipe[1]);
    out_fd_ = out_pipe[0];
    err_fd_ = err_pipe[0];
    if (stdout_mode == Stdout::closed) {
      close(out_fd_);
      out_fd_ = -1;
    }
    if (err != 0) throw std::runtime_error(std::string("posix_spawn: ") + std::strerror(err));
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) close(out_fd_);
    if (err_fd_ >= 0) close(err_fd_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  void signal(int signal_number) { kill(pid_, signal_number); }

  // Reads both pipes to the end and reaps the child; kills it after the timeout.
  RunResult finish(Clock::duration timeout = kRunTimeout) {
    RunResult result;
    auto deadline = Clock::now() + timeout;
    while (out_fd_ >= 0 || err_fd_ >= 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        ADD_FAILURE() << "ditgen did not finish within the timeout";
        kill(pid_, SIGKILL);
        break;
      }
      pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
      if (poll(fds, 2, static_cast<int>(std::min<long long>(left, 1000))) < 0 && errno != EINTR) break;
      drain(fds[0], out_fd_, result.out);
      drain(fds[1], err_fd_, result.err);
    }
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    result.killed = WIFSIGNALED(status);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
    return result;
  }

 private:
  static void drain(const pollfd& p, int& fd, std::string& sink) {
    if (fd < 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR))) return;
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      sink.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      close(fd);
      fd = -1;
    }
  }
  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
};

RunResult run_ditgen(const std::vector<std::string>& args) { return Child(args).finish(); }

// Runs a shell command (ffprobe) and returns its stdout.
std::optional<std::string> capture(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  if (!pipe) return std::nullopt;
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe.get())) out.append(buf, n);
  if (pclose(pipe.release()) != 0) return std::nullopt;
  return out;
}

bool have_program(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

int count_lines(const std::string& text) {
  int lines = 0;
  for (char c : text) lines += c == '\n';
  return lines;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> folder_entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& n : names) text += n + " ";
  return text;
}

// ---- independent readers --------------------------------------------------------------------

struct Y4mVideo {
  int width = 0, height = 0;
  std::string rate;  // "8:1"
  std::string colorspace;
  int64_t frames = 0;
  std::string error;  // non-empty when the stream is malformed
};

// Parses a 4:2:0 YUV4MPEG2 stream: header, then "FRAME\n" + w·h·3/2 bytes per frame.
Y4mVideo parse_y4m(const std::string& data) {
  Y4mVideo v;
  size_t eol = data.find('\n');
  if (data.rfind("YUV4MPEG2 ", 0) != 0 || eol == std::string::npos) {
    v.error = "no YUV4MPEG2 header";
    return v;
  }
  std::istringstream header(data.substr(10, eol - 10));
  std::string token;
  while (header >> token) {
    switch (token[0]) {
      case 'W':
        v.width = std::stoi(token.substr(1));
        break;
      case 'H':
        v.height = std::stoi(token.substr(1));
        break;
      case 'F':
        v.rate = token.substr(1);
        break;
      case 'C':
        v.colorspace = token.substr(1);
        break;
      default:
        break;
    }
  }
  if (v.width <= 0 || v.height <= 0) {
    v.error = "header lacks W or H";
    return v;
  }
  size_t chroma = size_t((v.width + 1) / 2) * ((v.height + 1) / 2);
  size_t frame_bytes = 6 + size_t(v.width) * v.height + 2 * chroma;
  size_t body = data.size() - (eol + 1);
  if (body % frame_bytes != 0) {
    v.error = "stream is not a whole number of frames";
    return v;
  }
  v.frames = static_cast<int64_t>(body / frame_bytes);
  for (int64_t i = 0; i < v.frames; ++i) {
    if (data.compare(eol + 1 + i * frame_bytes, 6, "FRAME\n") != 0) {
      v.error = "frame " + std::to_string(i) + " does not start with FRAME";
      return v;
    }
  }
  return v;
}

struct PngHeader {
  bool valid = false;
  uint32_t width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
};

PngHeader parse_png_header(const std::string& data) {
  static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  PngHeader h;
  if (data.size() < 33 || std::memcmp(data.data(), signature, 8) != 0 || data.compare(12, 4, "IHDR") != 0) return h;
  auto be32 = [&](size_t at) {
    const auto* p = reinterpret_cast<const unsigned char*>(data.data() + at);
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
  };
  h.valid = true;
  h.width = be32(16);
  h.height = be32(20);
  h.bit_depth = static_cast<unsigned char>(data[24]);
  h.color_type = static_cast<unsigned char>(data[25]);
  return h;
}

// The iTXt chunks of a PNG, keyword → text, each chunk's CRC checked (CRC-32 of ISO 3309, computed
// here bit by bit); an entry "!crc" names a chunk whose CRC is wrong.
std::map<std::string, std::string> png_texts(const std::string& data) {
  auto be32 = [&](size_t at) {
    const auto* p = reinterpret_cast<const unsigned char*>(data.data() + at);
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
  };
  auto crc32 = [](const char* p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; ++i) {
      c ^= static_cast<unsigned char>(p[i]);
      for (int b = 0; b < 8; ++b) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
  };
  std::map<std::string, std::string> texts;
  for (size_t at = 8; at + 12 <= data.size();) {
    const uint32_t length = be32(at);
    if (at + 12 + length > data.size()) break;
    const std::string type = data.substr(at + 4, 4);
    if (crc32(data.data() + at + 4, 4 + length) != be32(at + 8 + length)) texts["!crc"] = type;
    if (type == "iTXt") {
      const std::string body = data.substr(at + 8, length);
      const size_t keyword_end = body.find('\0');
      // keyword \0, compression flag, method, language \0, translated keyword \0, text
      size_t text_at = body.find('\0', keyword_end + 3);
      text_at = body.find('\0', text_at + 1) + 1;
      texts[body.substr(0, keyword_end)] = body.substr(text_at);
    }
    at += 12 + length;
  }
  return texts;
}

// ffprobe's key=value lines (-of default=noprint_wrappers=1) for `entries` of file; keys in lower
// case (Matroska's tags are upper case). Empty when ffprobe fails.
std::map<std::string, std::string> ffprobe(const fs::path& file, const std::string& entries) {
  std::optional<std::string> out = capture("ffprobe -v error -select_streams v:0 -count_frames -show_entries " +
                                           entries + " -of default=noprint_wrappers=1 '" + file.string() + "'");
  std::map<std::string, std::string> fields;
  if (!out) return fields;
  std::istringstream lines(*out);
  for (std::string line; std::getline(lines, line);) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq);
    for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    fields[key] = line.substr(eq + 1);
  }
  return fields;
}

std::map<std::string, std::string> ffprobe_stream(const fs::path& file) {
  return ffprobe(file, "stream=nb_read_frames,width,height,r_frame_rate,codec_name,pix_fmt");
}

// The container's title and comment tags, as tag:title and tag:comment.
std::map<std::string, std::string> ffprobe_tags(const fs::path& file) {
  return ffprobe(file, "format_tags=title,comment");
}

// ---- what the engine says ditgen should produce ----------------------------------------------

struct Expected {
  int width = 0, height = 0, frames = 0;
  int fps_num = 0, fps_den = 1;
  ds_model_info info{};
};

std::string rate(int num, int den, char sep) {
  int a = num, b = den;
  while (b) std::tie(a, b) = std::pair(b, a % b);
  return std::to_string(num / a) + sep + std::to_string(den / a);
}

std::string make_temp_dir(const char* prefix) {
  std::string pattern = (fs::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
  return mkdtemp(pattern.data()) ? pattern : "";
}

// Loads a model the way ditgen will and reports the video it will make.
std::string query_engine(const std::string& model, Expected& e) {
  std::unique_ptr<ds_generator, decltype(&ds_destroy)> gen(ds_create(), &ds_destroy);
  if (!model.empty() && ds_set_option(gen.get(), "model", model.c_str()) != DS_OK) return ds_error_message(gen.get());
  if (ds_load(gen.get()) != DS_OK) return ds_error_message(gen.get());
  if (ds_get_output_shape(gen.get(), &e.width, &e.height, &e.frames) != DS_OK ||
      ds_get_model_info(gen.get(), &e.info) != DS_OK)
    return ds_error_message(gen.get());
  e.fps_num = e.info.fps_num;
  e.fps_den = e.info.fps_den;
  return "";
}

class CliTest : public ::testing::Test {
 protected:
  // Tests run on a seeded random model when the build has the tool that writes one: it loads in
  // milliseconds and does not wait for the trained demo model. Its shape mirrors the demo's.
  static void SetUpTestSuite() {
    ds_set_log_sink([](void*, ds_log_level, const char*) {}, nullptr);
#ifdef MAKE_RANDOM_MODEL_PATH
    suite_dir_ = make_temp_dir("ditgen-model");
    ASSERT_FALSE(suite_dir_.empty());
    model_ = (fs::path(suite_dir_) / "random").string();
    std::string command = std::string("'") + MAKE_RANDOM_MODEL_PATH + "' '" + model_ + "' 1 64 64 16";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
#endif
    std::string error = query_engine(model_, expected_);
    ASSERT_EQ(error, "");
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    if (!suite_dir_.empty()) fs::remove_all(suite_dir_, ec);
  }

  void SetUp() override {
    dir_ = make_temp_dir("ditgen-test");
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }

  // ditgen on the suite's model; a later --model in args overrides it.
  static std::vector<std::string> with_model(std::vector<std::string> args) {
    if (!model_.empty()) args.insert(args.begin(), {"--model", model_});
    return args;
  }
  static RunResult ditgen(const std::vector<std::string>& args) { return run_ditgen(with_model(args)); }
  static RunResult interrupt_generation(const fs::path& dir, int signal_number);

  // A frame count the model accepts and that differs from the default, if there is one.
  static std::optional<int> other_frame_count() {
    const ds_model_info& m = expected_.info;
    for (int f = m.min_frames; f <= m.max_frames && m.frames_step > 0; f += m.frames_step)
      if (f != expected_.frames) return f;
    return std::nullopt;
  }

  static inline std::string suite_dir_, model_;
  static inline Expected expected_;
  fs::path dir_;
};

void expect_one_error_line(const RunResult& r) {
  EXPECT_EQ(count_lines(r.err), 1) << "stderr: " << r.err;
  EXPECT_EQ(r.err.rfind("ditgen: ", 0), 0u) << "stderr: " << r.err;
}

// ---- outputs --------------------------------------------------------------------------------

TEST_F(CliTest, Mp4HasTheModelsShapeRateAndFrameCount) {
  if (!have_program("ffprobe")) GTEST_SKIP() << "ffprobe not installed";
  fs::path out = dir_ / "clip.mp4";
  RunResult r = ditgen({"--prompt", "a red circle moving right", "-o", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find('\r'), std::string::npos) << "no progress bar when stderr is not a terminal";
  auto s = ffprobe_stream(out);
  EXPECT_EQ(s["codec_name"], "h264");
  EXPECT_EQ(s["pix_fmt"], "yuv420p");
  EXPECT_EQ(s["width"], std::to_string(expected_.width));
  EXPECT_EQ(s["height"], std::to_string(expected_.height));
  EXPECT_EQ(s["r_frame_rate"], rate(expected_.fps_num, expected_.fps_den, '/'));
  EXPECT_EQ(s["nb_read_frames"], std::to_string(expected_.frames));
  EXPECT_EQ(folder_entries(dir_), std::vector<std::string>{"clip.mp4"});
}

TEST_F(CliTest, MkvAndMovHoldH264Too) {
  if (!have_program("ffprobe")) GTEST_SKIP() << "ffprobe not installed";
  for (const char* name : {"clip.mkv", "clip.mov"}) {
    fs::path out = dir_ / name;
    RunResult r = ditgen({"-o", out.string()});
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    auto s = ffprobe_stream(out);
    EXPECT_EQ(s["codec_name"], "h264") << name;
    EXPECT_EQ(s["nb_read_frames"], std::to_string(expected_.frames)) << name;
    EXPECT_EQ(s["r_frame_rate"], rate(expected_.fps_num, expected_.fps_den, '/')) << name;
  }
}

// MP4 and MKV carry the prompt as their title and the provenance JSON as their comment (the seed
// given, the AI-generated flag, the model by its folder's name only); --no-provenance leaves both out.
TEST_F(CliTest, VideoFileCarriesItsProvenanceUnlessAskedNot) {
  if (!have_program("ffprobe")) GTEST_SKIP() << "ffprobe not installed";
  for (const char* name : {"clip.mp4", "clip.mkv"}) {
    fs::path out = dir_ / name;
    RunResult r = ditgen({"--prompt", "a green triangle", "--seed", "3", "-o", out.string()});
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    auto tags = ffprobe_tags(out);
    EXPECT_EQ(tags["tag:title"], "a green triangle") << name;
    const std::string& comment = tags["tag:comment"];
    EXPECT_NE(comment.find("\"ai_generated\":true"), std::string::npos) << name << ": " << comment;
    EXPECT_NE(comment.find("\"seed\":3,"), std::string::npos) << name << ": " << comment;
    EXPECT_NE(comment.find("\"prompt\":\"a green triangle\""), std::string::npos) << name << ": " << comment;
    if (!model_.empty()) {
      EXPECT_EQ(comment.find(fs::path(model_).parent_path().string()), std::string::npos)
          << "a local path: " << comment;
    }

    fs::path bare = dir_ / (std::string("bare-") + name);
    r = ditgen({"--prompt", "a green triangle", "--no-provenance", "-o", bare.string()});
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    tags = ffprobe_tags(bare);
    EXPECT_EQ(tags.count("tag:comment"), 0u) << name;
    EXPECT_EQ(tags.count("tag:title"), 0u) << name;
  }
}

// A prompt over 64 KB (QuickTime's title atom holds a 16-bit length) reaches a .mov whole, as
// title and inside the provenance comment, which stays complete JSON.
TEST_F(CliTest, MovKeepsAPromptOver64KbWhole) {
  if (!have_program("ffprobe")) GTEST_SKIP() << "ffprobe not installed";
  std::string prompt;
  while (prompt.size() <= 70000) prompt += "a green triangle moving left ";
  fs::path out = dir_ / "long.mov";
  RunResult r = ditgen({"--prompt", prompt, "-o", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto tags = ffprobe_tags(out);
  EXPECT_EQ(tags["tag:title"].size(), prompt.size());
  EXPECT_TRUE(tags["tag:title"] == prompt);
  const std::string& comment = tags["tag:comment"];
  EXPECT_NE(comment.find("\"prompt\":\"" + prompt + "\""), std::string::npos) << "the provenance lacks the prompt";
  EXPECT_TRUE(!comment.empty() && comment.back() == '}') << "the provenance JSON was cut";
}

TEST_F(CliTest, DefaultModelMakesItsNativeMp4) {
  if (!have_program("ffprobe")) GTEST_SKIP() << "ffprobe not installed";
  Expected native;
  if (std::string error = query_engine("", native); !error.empty())
    GTEST_SKIP() << "the default model does not load yet: " << error;
  fs::path out = dir_ / "clip.mp4";
  RunResult r = run_ditgen({"--prompt", "a red circle moving right", "-o", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto s = ffprobe_stream(out);
  EXPECT_EQ(s["codec_name"], "h264");
  EXPECT_EQ(s["width"], std::to_string(native.width));
  EXPECT_EQ(s["height"], std::to_string(native.height));
  EXPECT_EQ(s["r_frame_rate"], rate(native.fps_num, native.fps_den, '/'));
  EXPECT_EQ(s["nb_read_frames"], std::to_string(native.frames));
}

TEST_F(CliTest, Y4mFileParsesIndependently) {
  fs::path out = dir_ / "clip.y4m";
  RunResult r = ditgen({"-o", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Y4mVideo v = parse_y4m(read_file(out));
  ASSERT_EQ(v.error, "");
  EXPECT_EQ(v.width, expected_.width);
  EXPECT_EQ(v.height, expected_.height);
  EXPECT_EQ(v.rate, rate(expected_.fps_num, expected_.fps_den, ':'));
  EXPECT_EQ(v.colorspace.rfind("420", 0), 0u) << v.colorspace;
  EXPECT_EQ(v.frames, expected_.frames);
}

TEST_F(CliTest, DashWritesY4mToStdout) {
  RunResult r = ditgen({"-o", "-"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Y4mVideo v = parse_y4m(r.out);
  ASSERT_EQ(v.error, "");
  EXPECT_EQ(v.frames, expected_.frames);
  EXPECT_EQ(v.width, expected_.width);
  EXPECT_TRUE(folder_entries(dir_).empty());
}

TEST_F(CliTest, FramesDirHoldsOnePngPerFrame) {
  fs::path frames = dir_ / "frames";
  RunResult r = ditgen({"--frames-dir", frames.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> names = folder_entries(frames);
  ASSERT_EQ(names.size(), static_cast<size_t>(expected_.frames)) << joined(names);
  for (int i = 0; i < expected_.frames; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "frame_%05d.png", i);
    EXPECT_EQ(names[i], name);
    PngHeader h = parse_png_header(read_file(frames / name));
    ASSERT_TRUE(h.valid) << name;
    EXPECT_EQ(h.width, static_cast<uint32_t>(expected_.width)) << name;
    EXPECT_EQ(h.height, static_cast<uint32_t>(expected_.height)) << name;
    EXPECT_EQ(h.bit_depth, 8);
    EXPECT_EQ(h.color_type, 2) << "truecolor RGB";
  }
  EXPECT_EQ(folder_entries(dir_), std::vector<std::string>{"frames"}) << "no staging folder left";
}

// Frames and strips say what made them as videos do: the prompt as the PNG's Title, the provenance
// JSON as its Comment (iTXt, UTF-8); --no-provenance leaves both out.
TEST_F(CliTest, PngsCarryTheTitleAndProvenance) {
  const fs::path strip = dir_ / "strip.png", frames = dir_ / "frames";
  RunResult r = ditgen(
      {"--prompt", "a red circle moving right \u00e9", "--strip", strip.string(), "--frames-dir", frames.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const fs::path& png : {strip, frames / "frame_00000.png"}) {
    SCOPED_TRACE(png.string());
    std::map<std::string, std::string> texts = png_texts(read_file(png));
    EXPECT_EQ(texts.count("!crc"), 0u) << "bad CRC in chunk " << texts["!crc"];
    EXPECT_EQ(texts["Title"], "a red circle moving right \u00e9");
    EXPECT_NE(texts["Comment"].find("\"ai_generated\":true"), std::string::npos) << texts["Comment"];
  }
  RunResult bare = ditgen({"--no-provenance", "--strip", (dir_ / "bare.png").string()});
  ASSERT_EQ(bare.exit_code, 0) << bare.err;
  std::map<std::string, std::string> texts = png_texts(read_file(dir_ / "bare.png"));
  EXPECT_EQ(texts.count("!crc"), 0u);
  EXPECT_EQ(texts.count("Title") + texts.count("Comment"), 0u);
}

TEST_F(CliTest, StripShowsEvenlySpacedFramesSideBySide) {
  fs::path strip = dir_ / "strip.png", frames = dir_ / "frames";
  RunResult r = ditgen({"--strip", strip.string(), "--frames-dir", frames.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  PngHeader h = parse_png_header(read_file(strip));
  ASSERT_TRUE(h.valid);
  const int tiles = std::min(expected_.frames, 8);
  EXPECT_EQ(h.width, static_cast<uint32_t>(tiles * expected_.width + (tiles - 1) * 2));
  EXPECT_EQ(h.height, static_cast<uint32_t>(expected_.height));
  // The first tile is frame 0: decode both with ffmpeg and compare the pixels of that region.
  if (!have_program("ffmpeg")) GTEST_SKIP() << "ffmpeg not installed";
  std::optional<std::string> tile =
      capture("ffmpeg -v error -i '" + strip.string() + "' -vf crop=" + std::to_string(expected_.width) + ":" +
              std::to_string(expected_.height) + ":0:0 -f rawvideo -pix_fmt rgb24 -");
  std::optional<std::string> first =
      capture("ffmpeg -v error -i '" + (frames / "frame_00000.png").string() + "' -f rawvideo -pix_fmt rgb24 -");
  ASSERT_TRUE(tile && first);
  EXPECT_EQ(tile->size(), static_cast<size_t>(expected_.width) * expected_.height * 3);
  EXPECT_EQ(*tile, *first);
}

TEST_F(CliTest, VideoAndFramesTogether) {
  fs::path out = dir_ / "clip.y4m", frames = dir_ / "frames";
  ASSERT_TRUE(fs::create_directory(frames));  // an existing empty folder is filled, not refused
  RunResult r = ditgen({"-o", out.string(), "--frames-dir", frames.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(parse_y4m(read_file(out)).frames, expected_.frames);
  EXPECT_EQ(folder_entries(frames).size(), static_cast<size_t>(expected_.frames));
  EXPECT_EQ(folder_entries(dir_), (std::vector<std::string>{"clip.y4m", "frames"}));
}

// A folder holding a longer earlier run's frames ends up with this run's frames only; other files
// in it are the user's and stay.
TEST_F(CliTest, FramesDirReplacesAnEarlierRunsFrames) {
  fs::path frames = dir_ / "frames";
  ASSERT_TRUE(fs::create_directory(frames));
  for (int i = 0; i < expected_.frames + 5; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "frame_%05d.png", i);
    std::ofstream(frames / name) << "an earlier run";
  }
  std::ofstream(frames / "notes.txt") << "mine";
  RunResult r = ditgen({"--frames-dir", frames.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> names = folder_entries(frames);
  ASSERT_EQ(names.size(), static_cast<size_t>(expected_.frames) + 1) << joined(names);
  EXPECT_EQ(names.back(), "notes.txt");
  for (int i = 0; i < expected_.frames; ++i)
    EXPECT_TRUE(parse_png_header(read_file(frames / names[i])).valid) << names[i];
}

// Two outputs on one path, or a strip that is not named .png, are usage errors before anything runs.
TEST_F(CliTest, OutputsThatWouldOverwriteEachOtherAreAUsageError) {
  const std::string video = (dir_ / "same.mp4").string();
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"-o", video, "--strip", (dir_ / "." / "same.mp4").string()},
        std::vector<std::string>{"--frames-dir", (dir_ / "x.png").string() + "/", "--strip", (dir_ / "x.png").string()},
        std::vector<std::string>{"-o", (dir_ / "strip.y4m").string(), "--strip", (dir_ / "strip.jpg").string()}}) {
    RunResult r = ditgen(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    expect_one_error_line(r);
    EXPECT_NE(r.err.find("--strip"), std::string::npos) << r.err;
  }
  EXPECT_TRUE(folder_entries(dir_).empty()) << joined(folder_entries(dir_));
}

// A rate below one frame per second in thousandths is 1/n; one too low for any int fraction is a
// usage error naming --fps, not an unusable model.
TEST_F(CliTest, VeryLowFrameRatesAreStampedOrNamed) {
  for (const auto& [fps, rate] : {std::pair{"0.0001", "1:10000"}, {"0.0007", "1:1429"}, {"0.5", "1:2"}}) {
    RunResult r = ditgen({"--fps", fps, "-o", "-"});
    ASSERT_EQ(r.exit_code, 0) << fps << ": " << r.err;
    Y4mVideo v = parse_y4m(r.out);
    ASSERT_EQ(v.error, "");
    EXPECT_EQ(v.rate, rate) << fps;
  }
  RunResult r = ditgen({"--fps", "1e-300", "-o", (dir_ / "clip.mp4").string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("--fps"), std::string::npos) << r.err;
  EXPECT_TRUE(folder_entries(dir_).empty()) << joined(folder_entries(dir_));
}

TEST_F(CliTest, FramesFlagChangesTheClipLength) {
  std::optional<int> frames = other_frame_count();
  if (!frames) GTEST_SKIP() << "the model supports a single clip length";
  RunResult r = ditgen({"--frames", std::to_string(*frames), "-o", "-"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Y4mVideo v = parse_y4m(r.out);
  ASSERT_EQ(v.error, "");
  EXPECT_EQ(v.frames, *frames);
}

TEST_F(CliTest, SizeAndRateFlagsChangeTheVideo) {
  const ds_model_info& m = expected_.info;
  std::vector<std::string> args = {"--fps", "12.5", "-o", "-"};
  int width = expected_.width, height = expected_.height;
  if (m.width_step > 0 && m.min_width + m.width_step <= m.max_width && m.height_step > 0) {
    width = m.min_width == expected_.width ? m.min_width + m.width_step : m.min_width;
    height = m.min_height;
    args.insert(args.end(), {"--width", std::to_string(width), "--height", std::to_string(height)});
  }
  RunResult r = ditgen(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Y4mVideo v = parse_y4m(r.out);
  ASSERT_EQ(v.error, "");
  EXPECT_EQ(v.width, width);
  EXPECT_EQ(v.height, height);
  EXPECT_EQ(v.rate, "25:2");
}

TEST_F(CliTest, SameSeedSameBytesOtherSeedOtherBytes) {
  RunResult a = ditgen({"--seed", "7", "-o", "-"});
  RunResult b = ditgen({"--seed", "7", "-o", "-"});
  RunResult c = ditgen({"--seed", "8", "-o", "-"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  ASSERT_EQ(c.exit_code, 0) << c.err;
  ASSERT_EQ(parse_y4m(a.out).frames, expected_.frames);
  EXPECT_TRUE(a.out == b.out) << "same seed must give identical video";
  EXPECT_EQ(a.out.size(), c.out.size());
  EXPECT_FALSE(a.out == c.out) << "another seed must give another video";
}

// ---- bad arguments: exit 2, one line --------------------------------------------------------

TEST_F(CliTest, UnknownFlagIsAUsageError) {
  RunResult r = ditgen({"--no-such-flag", "1", "-o", (dir_ / "x.mp4").string()});
  EXPECT_EQ(r.exit_code, 2);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("--no-such-flag"), std::string::npos) << r.err;
  EXPECT_TRUE(folder_entries(dir_).empty());
}

TEST_F(CliTest, OutOfRangeValueNamesTheOption) {
  RunResult r = ditgen({"--steps", "-3", "-o", (dir_ / "x.mp4").string()});
  EXPECT_EQ(r.exit_code, 2);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("steps"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("-3"), std::string::npos) << r.err;
  EXPECT_TRUE(folder_entries(dir_).empty());
}

TEST_F(CliTest, NonNumberIsAUsageError) {
  RunResult r = ditgen({"--guidance", "lots", "-o", "-"});
  EXPECT_EQ(r.exit_code, 2);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("guidance"), std::string::npos) << r.err;
}

TEST_F(CliTest, SizeTheModelRejectsIsAUsageError) {
  if (expected_.info.width_step < 2) GTEST_SKIP() << "the model takes every width";
  std::string width = std::to_string(expected_.info.min_width + 1);
  RunResult r = ditgen({"--width", width, "-o", (dir_ / "clip.y4m").string()});
  EXPECT_EQ(r.exit_code, 2);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("width"), std::string::npos) << r.err;
  EXPECT_TRUE(folder_entries(dir_).empty());
}

TEST_F(CliTest, MissingOutputIsAUsageError) {
  RunResult r = ditgen({"--prompt", "a red circle"});
  EXPECT_EQ(r.exit_code, 2);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("-o"), std::string::npos) << r.err;
}

TEST_F(CliTest, UnknownExtensionIsAUsageError) {
  RunResult r = ditgen({"-o", (dir_ / "clip.avi").string()});
  EXPECT_EQ(r.exit_code, 2);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("clip.avi"), std::string::npos) << r.err;
  EXPECT_TRUE(folder_entries(dir_).empty());
}

// ---- runtime errors: exit 1, one line, nothing left behind -----------------------------------

TEST_F(CliTest, MissingModelNamesThePathAndLeavesNothing) {
  std::string model = (dir_ / "no-such-model").string();
  RunResult r = ditgen({"--model", model, "-o", (dir_ / "clip.mp4").string()});
  EXPECT_EQ(r.exit_code, 1);
  expect_one_error_line(r);
  EXPECT_EQ(r.err.rfind("ditgen: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(model), std::string::npos) << r.err;
  EXPECT_TRUE(folder_entries(dir_).empty()) << joined(folder_entries(dir_));
}

TEST_F(CliTest, ModelThatIsAFileIsNamedAsSuch) {
  fs::path file = dir_ / "model.safetensors";
  std::ofstream(file) << "not a folder";
  RunResult r = ditgen({"--model", file.string(), "-o", (dir_ / "clip.mp4").string()});
  EXPECT_EQ(r.exit_code, 1);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("is a file, not a model folder"), std::string::npos) << r.err;
}

TEST_F(CliTest, FolderWithoutAModelIsNamedAsSuch) {
  RunResult r = ditgen({"--model", dir_.string(), "-o", (dir_ / "clip.mp4").string()});
  EXPECT_EQ(r.exit_code, 1);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("holds no model"), std::string::npos) << r.err;
}

// --embeds sets the prompt and negative prompt; a --prompt beside it would be silently replaced.
TEST_F(CliTest, PromptBesideEmbedsIsAUsageError) {
  RunResult r = ditgen({"--embeds", (dir_ / "e.safetensors").string(), "--prompt", "a cat", "-o", "-"});
  EXPECT_EQ(r.exit_code, 2);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("--prompt"), std::string::npos) << r.err;
}

TEST_F(CliTest, FailureKeepsTheOldFileIntact) {
  fs::path out = dir_ / "clip.y4m";
  std::ofstream(out) << "previous take";
  RunResult r = ditgen({"--model", (dir_ / "missing").string(), "-o", out.string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(read_file(out), "previous take");
  EXPECT_EQ(folder_entries(dir_), std::vector<std::string>{"clip.y4m"});
}

TEST_F(CliTest, SuccessReplacesTheOldFile) {
  fs::path out = dir_ / "clip.y4m";
  std::ofstream(out) << "previous take";
  RunResult r = ditgen({"-o", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(parse_y4m(read_file(out)).frames, expected_.frames);
  EXPECT_EQ(folder_entries(dir_), std::vector<std::string>{"clip.y4m"});
}

TEST_F(CliTest, UnwritableFolderIsARuntimeError) {
  std::vector<std::string> targets = {(dir_ / "missing-folder" / "clip.mp4").string(), "/proc/ditgen-test.mp4"};
  if (geteuid() != 0) {  // root writes into read-only folders anyway
    fs::path locked = dir_ / "locked";
    fs::create_directory(locked);
    fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_exec);
    targets.push_back((locked / "clip.y4m").string());
  }
  for (const std::string& target : targets) {
    RunResult r = ditgen({"-o", target});
    EXPECT_EQ(r.exit_code, 1) << target;
    expect_one_error_line(r);
    EXPECT_NE(r.err.find(target), std::string::npos) << r.err;
  }
  EXPECT_FALSE(fs::exists("/proc/ditgen-test.mp4"));
  EXPECT_FALSE(fs::exists(dir_ / "missing-folder"));
  if (fs::exists(dir_ / "locked")) {
    EXPECT_TRUE(folder_entries(dir_ / "locked").empty());
  }
}

TEST_F(CliTest, FullDeviceIsARuntimeError) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  RunResult r = ditgen({"-o", "/dev/full"});
  EXPECT_EQ(r.exit_code, 1);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("/dev/full"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(std::strerror(ENOSPC)), std::string::npos) << r.err;
}

// One output failing at the end (the strip, last, onto a full device) leaves none of the run's
// outputs: every writer finishes before any is committed.
TEST_F(CliTest, AnOutputFailingLeavesTheOthersUnwritten) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  fs::path strip = dir_ / "strip.png";
  fs::create_symlink("/dev/full", strip);
  RunResult r = ditgen({"-o", (dir_ / "clip.mp4").string(), "--strip", strip.string()});
  EXPECT_EQ(r.exit_code, 1);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find(std::strerror(ENOSPC)), std::string::npos) << r.err;
  EXPECT_EQ(folder_entries(dir_), std::vector<std::string>{"strip.png"}) << "no clip.mp4, no temporaries";
}

TEST_F(CliTest, ClosedPipeIsARuntimeError) {
  Child child(with_model({"-o", "-"}), Stdout::closed);
  RunResult r = child.finish();
  EXPECT_EQ(r.exit_code, 1);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find(std::strerror(EPIPE)), std::string::npos) << r.err;
}

TEST_F(CliTest, PipeGivenByPathGetsY4m) {
  RunResult r = ditgen({"-o", "/dev/stdout"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(parse_y4m(r.out).frames, expected_.frames);
}

// Standard output by its name, redirected to a file by the shell: still the stream format.
TEST_F(CliTest, StandardOutputByNameRedirectedToAFileGetsY4m) {
  const fs::path file = dir_ / "out";
  std::string command = std::string("'") + DITGEN_PATH + "'";
  for (const std::string& arg : with_model({"-q", "-o", "/dev/stdout"})) command += " '" + arg + "'";
  ASSERT_EQ(std::system((command + " > '" + file.string() + "'").c_str()), 0) << command;
  EXPECT_EQ(parse_y4m(read_file(file)).frames, expected_.frames);
}

// MP4 and MOV need to seek: a pipe named .mp4 is refused before the model loads, not after the clip.
TEST_F(CliTest, Mp4IntoAPipeIsRefusedUpFront) {
  const fs::path fifo = dir_ / "clip.mp4";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  RunResult r = ditgen({"-o", fifo.string()});
  EXPECT_NE(r.exit_code, 0);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find(".mkv or .y4m"), std::string::npos) << r.err;
}

// ---- signals --------------------------------------------------------------------------------

// Starts a long generation, waits until its temporary outputs exist, then sends the signal.
RunResult CliTest::interrupt_generation(const fs::path& dir, int signal_number) {
  const ds_option_info* steps = ds_option_find("steps");
  std::string many_steps = std::to_string(static_cast<int64_t>(steps ? std::min(steps->max, 1000.0) : 1000));
  Child child(with_model(
      {"--steps", many_steps, "-o", (dir / "clip.mp4").string(), "--frames-dir", (dir / "frames").string()}));
  auto deadline = Clock::now() + seconds(60);
  while (folder_entries(dir).size() < 2 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(folder_entries(dir).size(), 2u)
      << "temporaries should exist while generating: " << joined(folder_entries(dir));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // well into loading or denoising
  child.signal(signal_number);
  return child.finish(seconds(60));
}

TEST_F(CliTest, CtrlCRemovesPartialOutputAndExits130) {
  RunResult r = interrupt_generation(dir_, SIGINT);
  EXPECT_FALSE(r.killed) << "ditgen must handle the signal and clean up";
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_TRUE(folder_entries(dir_).empty()) << joined(folder_entries(dir_));
}

TEST_F(CliTest, SigtermRemovesPartialOutput) {
  RunResult r = interrupt_generation(dir_, SIGTERM);
  EXPECT_FALSE(r.killed) << "ditgen must handle the signal and clean up";
  EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.err;
  EXPECT_TRUE(folder_entries(dir_).empty()) << joined(folder_entries(dir_));
}

TEST_F(CliTest, SighupRemovesPartialOutput) {
  RunResult r = interrupt_generation(dir_, SIGHUP);
  EXPECT_FALSE(r.killed) << "ditgen must handle the signal and clean up";
  EXPECT_EQ(r.exit_code, 128 + SIGHUP) << r.err;
  EXPECT_TRUE(folder_entries(dir_).empty()) << joined(folder_entries(dir_));
}

// `timeout`, a hang-up or a process manager may signal the process and then its group: two
// signals at once still unwind and report, as one does.
TEST_F(CliTest, TwoSignalsAtOnceStillUnwind) {
  const ds_option_info* steps = ds_option_find("steps");
  std::string many_steps = std::to_string(static_cast<int64_t>(steps ? std::min(steps->max, 1000.0) : 1000));
  Child child(with_model({"--steps", many_steps, "-o", (dir_ / "clip.mp4").string()}));
  auto deadline = Clock::now() + seconds(60);
  while (folder_entries(dir_).empty() && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  child.signal(SIGINT);
  child.signal(SIGINT);
  RunResult r = child.finish(seconds(60));
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_NE(r.err.find("interrupted; no output written"), std::string::npos) << r.err;
  EXPECT_TRUE(folder_entries(dir_).empty()) << joined(folder_entries(dir_));
}

// Frames for an existing folder are staged inside it (its own file system, its own rights: a
// mount point or a folder in a read-only parent), never beside it; interrupted, it is left as it was.
TEST_F(CliTest, ExistingFramesFolderIsStagedInsideIt) {
  const fs::path frames = dir_ / "frames";
  fs::create_directory(frames);
  { std::ofstream(frames / "notes.txt") << "mine"; }
  const ds_option_info* steps = ds_option_find("steps");
  std::string many_steps = std::to_string(static_cast<int64_t>(steps ? std::min(steps->max, 1000.0) : 1000));
  Child child(with_model({"--steps", many_steps, "--frames-dir", frames.string()}));
  auto deadline = Clock::now() + seconds(60);
  while (folder_entries(frames).size() < 2 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(folder_entries(frames).size(), 2u) << "no staging folder inside: " << joined(folder_entries(frames));
  EXPECT_EQ(folder_entries(dir_), std::vector<std::string>{"frames"}) << "staged beside the folder";
  child.signal(SIGINT);
  RunResult r = child.finish(seconds(60));
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_EQ(folder_entries(frames), std::vector<std::string>{"notes.txt"});
}

// ---- help and version -----------------------------------------------------------------------

TEST_F(CliTest, HelpListsEveryTableOption) {
  RunResult r = ditgen({"--help"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_GT(ds_option_count(), 0);
  for (int i = 0; i < ds_option_count(); ++i) {
    const ds_option_info* o = ds_option_at(i);
    ASSERT_NE(o, nullptr);
    std::string flag = std::string("--") + o->name + " ";
    size_t at = r.out.find(flag);
    ASSERT_NE(at, std::string::npos) << flag << "missing from --help:\n" << r.out;
    std::string line = r.out.substr(at, r.out.find('\n', at) - at);
    EXPECT_NE(line.find(o->type == DS_OPT_STRING ? "TEXT"
                        : o->type == DS_OPT_INT  ? "INT"
                                                 : "FLOAT"),
              std::string::npos)
        << line;
    if (o->default_value && *o->default_value) {
      EXPECT_NE(line.find(o->default_value), std::string::npos) << "default missing: " << line;
    }
  }
  for (const char* own : {"--output", "--frames-dir", "--quiet", "--verbose", "--version"})
    EXPECT_NE(r.out.find(own), std::string::npos) << own;
}

// -v adds the engine's informational messages (here the first-block cache's count of skipped
// steps); without it they stay out of the way, and -q with -v is a usage error.
TEST_F(CliTest, VerbosePrintsTheEnginesReports) {
  const fs::path dir = fs::temp_directory_path() / ("ditgen_verbose_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string out = (dir / "v.y4m").string();
  RunResult r = ditgen({"--cache-threshold", "1", "-v", "-o", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("ditgen: loaded model"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("first-block cache skipped the later blocks in"), std::string::npos) << r.err;
  r = ditgen({"--cache-threshold", "1", "-o", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("first-block cache"), std::string::npos) << r.err;
  r = ditgen({"-v", "-o", "-"});  // the video on stdout: every message stays on stderr
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("YUV4MPEG2 ", 0), 0u) << r.out.substr(0, 80);
  EXPECT_EQ(r.out.find("ditgen:"), std::string::npos);
  EXPECT_NE(r.err.find("ditgen: loaded model"), std::string::npos) << r.err;
  r = ditgen({"-q", "-v", "-o", out});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  fs::remove_all(dir);
}

TEST_F(CliTest, VersionPrintsTheEngineVersion) {
  RunResult r = ditgen({"--version"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(ds_version()), std::string::npos) << r.out;
}

}  // namespace
