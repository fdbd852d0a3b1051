// Files read or written whole: config.json, checkpoint indexes, the kernel tuning cache, prompt
// embeddings.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include "core/status.h"

namespace ds {

// The bytes of the regular file at `path`; kIo naming the path when it is not a regular file (a
// FIFO would block the open for ever) or cannot be read. Read through istreambuf_iterator, not
// `stream << rdbuf()`, which swallows std::bad_alloc and yields a truncated text.
Result<std::string> ReadTextFile(const std::string& path);

// Writes `parts` one after another as the file at `path`, so that a reader sees the old file or
// the whole new one, never a part: into a new file of a unique name beside the target, synced,
// then renamed over it (an existing file's permissions are kept; a new one gets the umask's).
// Through a symlink the file it names is replaced and the link kept. A device or a pipe
// (/dev/null, a FIFO) has nothing to rename over and is written directly; a folder is refused.
// kIo naming `path` and the system's reason on failure, with nothing left behind.
Status WriteFileAtomically(const std::string& path, std::initializer_list<std::string_view> parts);

}  // namespace ds
