// Logging with a pluggable sink: the CLI prints to stderr, the GStreamer element routes messages to
// its GST_DEBUG category, the FFmpeg filter to av_log.
#pragma once

#include <fmt/format.h>

#include <functional>
#include <string_view>

namespace ds {

enum class LogLevel { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };

using LogSink = std::function<void(LogLevel, std::string_view)>;

// Replaces the process-wide sink; an empty function restores the default (stderr, warnings and up).
void SetLogSink(LogSink sink);
void LogMessage(LogLevel level, std::string_view message);

template <typename... Args>
void Log(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
  LogMessage(level, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace ds
