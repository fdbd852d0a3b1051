// Outputs that appear all at once or not at all.
//
// A regular file is written to a hidden temporary sibling (".clip.mp4.tmp-XXXXXX") and renamed over
// the target by commit(); a folder of frames is staged the same way. Anything not committed is removed
// by the destructor, or by remove_pending_outputs() when the process has to leave in a hurry.
// Standard output and existing device files or pipes (/dev/null, a FIFO) cannot be staged and are
// written in place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "status.h"

namespace ditgen {

class OutputFile {
 public:
  static Status create(const std::string& path, std::unique_ptr<OutputFile>& out);
  static std::unique_ptr<OutputFile> standard_output();
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  Status write(const void* data, size_t size);
  // lseek semantics; returns the new offset, or a negative errno.
  int64_t seek(int64_t offset, int whence);
  int64_t size() const;  // negative errno on failure
  // Makes the output visible under its final name (flushes it to disk first).
  Status commit();

  // The name the user gave: error messages speak of it, never of the temporary file.
  const std::string& path() const { return path_; }
  bool seekable() const { return seekable_; }

 private:
  OutputFile(int fd, std::string path, std::string target, std::string temp_path, bool owns_fd);
  int fd_;
  std::string path_;
  std::string target_;     // what the temporary file is renamed to: path_, or the file a symlink names
  std::string temp_path_;  // empty: written in place
  bool owns_fd_;
  bool seekable_;
  bool committed_ = false;
};

// The frames' file names in a folder: frame_00000.png, frame_00001.png, …
std::string frame_file_name(int64_t index);
bool is_frame_file_name(std::string_view name);

// A folder filled file by file (PNG frames), staged as a hidden sibling until commit().
class OutputDir {
 public:
  static Status create(const std::string& path, std::unique_ptr<OutputDir>& out);
  ~OutputDir();
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;

  Status write_file(const std::string& name, const void* data, size_t size);
  // Renames the staging folder to its final name or, when that folder already exists (it may be the
  // user's working folder), moves the new files into it one by one, replacing same-named ones, and
  // removes the frame files (is_frame_file_name) of an earlier run that this one did not write.
  Status commit();
  const std::string& path() const { return path_; }

 private:
  OutputDir(std::string path, std::string staging_path);
  Status move_files_into_existing_folder();
  std::string path_;
  std::string staging_;
  bool committed_ = false;
};

// Removes every temporary file and staging folder not yet committed. Safe to call from a thread other
// than the one writing (the forced exit on a third Ctrl-C).
void remove_pending_outputs();

}  // namespace ditgen
