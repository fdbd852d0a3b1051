#include "core/log.h"

#include <cstdio>
#include <mutex>

namespace ds {
namespace {

// Recursive, so that a sink may log or replace itself (ds_set_log_sink from inside the sink); one
// message at a time across threads.
std::recursive_mutex& SinkMutex() {
  static std::recursive_mutex m;
  return m;
}

LogSink& Sink() {
  static LogSink sink;
  return sink;
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return "error";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kDebug:
      return "debug";
  }
  return "?";
}

}  // namespace

void SetLogSink(LogSink sink) {
  std::lock_guard lock(SinkMutex());
  Sink() = std::move(sink);
}

void LogMessage(LogLevel level, std::string_view message) {
  std::lock_guard lock(SinkMutex());
  if (Sink()) {
    const LogSink sink = Sink();  // a copy: the sink may replace Sink() while it runs
    sink(level, message);
    return;
  }
  if (level <= LogLevel::kWarning) {
    std::fprintf(stderr, "ditstream %s: %.*s\n", LevelName(level), static_cast<int>(message.size()), message.data());
  }
}

}  // namespace ds
