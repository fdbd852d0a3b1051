// A one-line progress display on stderr, drawn only when stderr is a terminal.
#pragma once

#include <chrono>
#include <mutex>
#include <string>

#include "ditstream.h"

namespace ditgen {

class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled) {}

  void expect_frames(int total);
  void update(const ds_progress& progress);
  void frame_written(int written);
  // Prints a line (a warning, the final summary) without leaving a torn bar behind.
  void print_line(const std::string& line);
  void clear();  // erases the bar; call before exiting

 private:
  void draw(bool force);  // caller holds mutex_
  bool enabled_;
  std::mutex mutex_;
  ds_progress progress_{DS_STAGE_TEXT, 0, 0, 0};
  int frames_written_ = 0, frames_total_ = 0;
  bool visible_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace ditgen
