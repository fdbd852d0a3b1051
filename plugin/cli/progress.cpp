#include "progress.h"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace ditgen {
namespace {

constexpr int kBarWidth = 24;
constexpr auto kRedrawInterval = std::chrono::milliseconds(66);

const char* stage_name(ds_stage stage) {
  switch (stage) {
    case DS_STAGE_TEXT:
      return "prompt";
    case DS_STAGE_DENOISE:
      return "denoise";
    case DS_STAGE_DECODE:
      return "decode";
  }
  return "";
}

int terminal_columns() {
  winsize ws{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

void put(const std::string& text) {
  fputs(text.c_str(), stderr);
  fflush(stderr);
}

}  // namespace

void ProgressBar::update(const ds_progress& progress) {
  if (!enabled_) return;
  std::lock_guard lock(mutex_);
  bool new_stage = progress.stage != progress_.stage || progress.clip != progress_.clip;
  progress_ = progress;
  draw(new_stage || progress.step == progress.total);
}

void ProgressBar::expect_frames(int total) {
  std::lock_guard lock(mutex_);
  frames_total_ = total;
}

void ProgressBar::frame_written(int written) {
  if (!enabled_) return;
  std::lock_guard lock(mutex_);
  frames_written_ = written;
  draw(written == frames_total_);
}

void ProgressBar::print_line(const std::string& line) {
  std::lock_guard lock(mutex_);
  bool was_visible = visible_;
  put((was_visible ? "\r\033[K" : "") + line + "\n");
  visible_ = false;
  if (was_visible) draw(true);
}

void ProgressBar::clear() {
  if (!enabled_) return;
  std::lock_guard lock(mutex_);
  if (visible_) put("\r\033[K");
  visible_ = false;
}

void ProgressBar::draw(bool force) {
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < kRedrawInterval) return;
  last_draw_ = now;
  double fraction = progress_.total > 0 ? std::clamp(double(progress_.step) / progress_.total, 0.0, 1.0) : 0.0;
  int filled = static_cast<int>(fraction * kBarWidth + 0.5);
  std::string bar = std::string(filled, '#') + std::string(kBarWidth - filled, '.');
  double seconds = std::chrono::duration<double>(now - start_).count();
  std::string line =
      fmt::format("{:<8}[{}] {:>4}/{:<4} clip {}  frames {}/{}  {:.1f}s", stage_name(progress_.stage), bar,
                  progress_.step, progress_.total, progress_.clip + 1, frames_written_, frames_total_, seconds);
  line.resize(std::min<size_t>(line.size(), static_cast<size_t>(std::max(terminal_columns() - 1, 0))));
  put("\r\033[K" + line);
  visible_ = true;
}

}  // namespace ditgen
