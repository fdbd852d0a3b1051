#include "libav.h"

#include <cstdarg>
#include <mutex>

namespace ditgen {
namespace {

std::mutex log_mutex;
std::string last_log_line;

void capture_log(void* avcl, int level, const char* format, va_list args) {
  if (level > AV_LOG_ERROR) return;
  char line[1024];
  int print_prefix = 1;
  av_log_format_line2(avcl, level, format, args, line, sizeof line, &print_prefix);
  std::string text = line;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  std::lock_guard lock(log_mutex);
  last_log_line = text;
}

}  // namespace

void quiet_libav_logging() { av_log_set_callback(capture_log); }

std::string av_error(const std::string& what, int err) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, text, sizeof text);
  std::string message = what + ": " + text;
  std::lock_guard lock(log_mutex);
  if (!last_log_line.empty()) {
    message += " (" + last_log_line + ")";
    last_log_line.clear();
  }
  return message;
}

}  // namespace ditgen
