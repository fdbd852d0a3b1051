// Small text files read whole: config.json, checkpoint indexes, the GEMM tuning cache.
#pragma once

#include <string>

#include "core/status.h"

namespace ds {

// The bytes of the regular file at `path`; kIo naming the path when it is not a regular file (a
// FIFO would block the open for ever) or cannot be read. Read through istreambuf_iterator, not
// `stream << rdbuf()`, which swallows std::bad_alloc and yields a truncated text.
Result<std::string> ReadTextFile(const std::string& path);

}  // namespace ds
