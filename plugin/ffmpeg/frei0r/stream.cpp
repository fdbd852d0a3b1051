#include "stream.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace ditstream_frei0r {
namespace {

// FFmpeg 5.1's frei0r_src pads each row to 16 pixels while frei0r writes width·4-byte rows, so any
// other width comes out skewed. GStreamer does not pad, but a plugin cannot tell its host apart.
constexpr int kWidthMultiple = 16;

std::string Trimmed(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

std::string CheckWidth(int width) {
  if (width % kWidthMultiple == 0) return {};
  return "frame width " + std::to_string(width) + " is not a multiple of " + std::to_string(kWidthMultiple) +
         " (FFmpeg 5.1's frei0r_src would skew the rows); use a width such as " +
         std::to_string((width / kWidthMultiple + 1) * kWidthMultiple);
}

std::string ValueOr(const Values& values, const std::string& key, const std::string& fallback) {
  const auto it = values.find(key);
  return it == values.end() ? fallback : it->second;
}

}  // namespace

void PrintLine(const std::string& message) { std::fprintf(stderr, "ditstream frei0r: %s\n", message.c_str()); }

bool ReadPromptFile(const std::string& path, std::string* prompt, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read prompt-file '" + path + "': " + std::strerror(errno);
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  *prompt = Trimmed(text.str());
  return true;
}

Stream::Stream(int width, int height, Values values)
    : width_(width), height_(height), values_(std::move(values)), thread_(&Stream::Run, this) {}

Stream::~Stream() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (gen_ != nullptr) ds_cancel(gen_);
  }
  cv_.notify_all();
  thread_.join();
}

std::string Stream::Error() const {
  std::lock_guard lock(mu_);
  return error_;
}

void Stream::Update(const Values& values) {
  std::lock_guard lock(mu_);
  pending_ = values;
  pending_changed_ = true;
}

bool Stream::NextFrame(uint8_t* out) {
  Frame frame;
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !queue_.empty() || finished_; });
    if (queue_.empty()) return false;
    frame = std::move(queue_.front());
    queue_.pop_front();
  }
  cv_.notify_all();  // the generator may be waiting for room
  std::memcpy(out, frame.data(), frame.size());
  std::lock_guard lock(mu_);
  free_.push_back(std::move(frame));
  return true;
}

void Stream::Fail(const std::string& message) {
  std::lock_guard lock(mu_);
  error_ = message;
}

void Stream::Run() {
  ds_generator* gen = ds_create();
  if (gen == nullptr) {
    Fail("out of memory");
  } else {
    {
      std::lock_guard lock(mu_);
      gen_ = gen;
    }
    if (Setup(gen)) RunClips(gen);
  }
  {
    std::lock_guard lock(mu_);
    gen_ = nullptr;
    finished_ = true;
  }
  cv_.notify_all();
  ds_destroy(gen);
}

// Everything that can be wrong with the parameters is found here, before the first clip.
bool Stream::Setup(ds_generator* gen) {
  std::string error = CheckWidth(width_);
  if (error.empty()) error = Configure(gen);
  // frei0r's RGBA8888, made by the engine (on its device when it has one).
  if (error.empty() && ds_set_pixel_format(gen, DS_PIXEL_RGBA) != DS_OK) error = ds_error_message(gen);
  int frames = 0;
  if (error.empty() && (ds_load(gen) != DS_OK || ds_get_output_shape(gen, nullptr, nullptr, &frames) != DS_OK)) {
    error = ds_error_message(gen);
  }
  if (!error.empty()) {
    Fail(error);
    return false;
  }
  // Room for one whole clip beyond the one being played, so the next clip is generated meanwhile.
  capacity_ = 2 * static_cast<size_t>(frames);
  return true;
}

// Sets every option on the generator; returns the first problem, or "".
std::string Stream::Configure(ds_generator* gen) const {
  for (const auto& [name, value] : values_) {
    // The prompt comes last: it may come from prompt-file, and the engine refuses an empty one.
    if (name == kPromptFile || name == "prompt") continue;
    if (ds_set_option(gen, name.c_str(), value.c_str()) != DS_OK) return ds_error_message(gen);
  }
  if (ds_set_option(gen, "width", std::to_string(width_).c_str()) != DS_OK ||
      ds_set_option(gen, "height", std::to_string(height_).c_str()) != DS_OK) {
    return ds_error_message(gen);
  }
  const std::string prompt_file = ValueOr(values_, std::string(kPromptFile), "");
  std::string prompt = ValueOr(values_, "prompt", ds_option_find("prompt")->default_value), error;
  if (!prompt_file.empty() && !ReadPromptFile(prompt_file, &prompt, &error)) return error;
  if (prompt.empty()) return prompt_file.empty() ? "the prompt is empty" : "the prompt-file '" + prompt_file + "' is empty";
  if (ds_set_option(gen, "prompt", prompt.c_str()) != DS_OK) return ds_error_message(gen);
  return {};
}

bool Stream::RunClips(ds_generator* gen) {
  for (int clip = 0;; ++clip) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return true;
    }
    ApplyUpdates(gen);
    const ds_status status = ds_generate(gen, clip > 0, &Stream::OnFrame, nullptr, this);
    if (status == DS_ERR_CANCELLED) return true;
    if (status != DS_OK) {
      Fail(ds_error_message(gen));
      return false;
    }
  }
}

// Between clips: takes the host's latest values and re-reads the prompt file. Problems here are
// warnings: the stream goes on with what it had.
void Stream::ApplyUpdates(ds_generator* gen) {
  std::vector<std::string> warnings;
  Values next;
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    std::swap(changed, pending_changed_);
    if (changed) next = pending_;
  }
  if (changed) ApplyChangedValues(gen, next, warnings);
  RereadPromptFile(gen, warnings);
  for (const std::string& w : warnings) {
    if (w != last_warning_) PrintLine("warning: " + w);
    last_warning_ = w;
  }
}

void Stream::ApplyChangedValues(ds_generator* gen, const Values& next, std::vector<std::string>& warnings) {
  Values keys = values_;
  keys.insert(next.begin(), next.end());
  for (const auto& entry : keys) {
    const std::string& name = entry.first;
    const ds_option_info* o = ds_option_find(name.c_str());
    if (o == nullptr) continue;  // prompt-file
    const std::string before = ValueOr(values_, name, o->default_value), after = ValueOr(next, name, o->default_value);
    if (before == after) continue;
    if (!o->applies_between_clips) {
      warnings.push_back(std::string("'") + o->name + "' cannot change while streaming; ignored");
    } else if (name == "prompt" && after.empty()) {
      warnings.push_back("an empty prompt was ignored");
    } else if (ds_set_option(gen, o->name, after.c_str()) != DS_OK) {
      warnings.push_back(ds_error_message(gen));
    } else {
      values_[name] = after;
    }
  }
  values_[std::string(kPromptFile)] = ValueOr(next, std::string(kPromptFile), "");
}

// The file wins over the prompt parameter, and is read before every clip so that editing it steers
// the stream (FFmpeg cannot change frei0r_src's parameters while it runs).
void Stream::RereadPromptFile(ds_generator* gen, std::vector<std::string>& warnings) {
  const std::string path = ValueOr(values_, std::string(kPromptFile), "");
  if (path.empty()) return;
  std::string prompt, error;
  if (!ReadPromptFile(path, &prompt, &error)) {
    warnings.push_back(error + "; keeping the previous prompt");
  } else if (prompt.empty()) {
    warnings.push_back("the prompt-file '" + path + "' is empty; keeping the previous prompt");
  } else {
    ds_set_option(gen, "prompt", prompt.c_str());
  }
}

int Stream::OnFrame(void* user, const ds_frame* frame) { return static_cast<Stream*>(user)->PushFrame(*frame) ? 0 : 1; }

bool Stream::PushFrame(const ds_frame& f) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return queue_.size() < capacity_ || stopping_; });
  if (stopping_) return false;
  Frame frame;
  if (!free_.empty()) {
    frame = std::move(free_.back());
    free_.pop_back();
  }
  frame.assign(f.data[0], f.data[0] + static_cast<size_t>(f.width) * f.height * 4);  // RGBA (Setup)
  queue_.push_back(std::move(frame));
  lock.unlock();
  cv_.notify_all();
  return true;
}

}  // namespace ditstream_frei0r
