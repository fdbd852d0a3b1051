#include "core/log.h"

#include <cstdio>
#include <mutex>

namespace ds {
namespace {

std::mutex& SinkMutex() {
  static std::mutex m;
  return m;
}

LogSink& Sink() {
  static LogSink sink;
  return sink;
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError: return "error";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kInfo: return "info";
    case LogLevel::kDebug: return "debug";
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
    Sink()(level, message);
    return;
  }
  if (level <= LogLevel::kWarning) {
    std::fprintf(stderr, "ditstream %s: %.*s\n", LevelName(level), static_cast<int>(message.size()),
                 message.data());
  }
}

}  // namespace ds
