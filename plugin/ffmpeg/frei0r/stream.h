// An endless frame stream: a generator thread runs clip after clip (each continuing the previous one's
// motion) into a bounded queue, and whatever thread the host calls f0r_update on takes frames out.
// Only the generator thread touches the ds_generator, so the device (and any per-thread state it
// keeps) never sees the host's threads, which differ between hosts and even between calls.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ditstream.h"
#include "params.h"

namespace ditstream_frei0r {

class Stream {
 public:
  // Starts the generator thread, which checks everything (size, prompt, model) before the first clip.
  Stream(int width, int height, Values values);
  ~Stream();  // cancels generation and joins the thread
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Blocks until the next frame, written as RGBA (stride width·4) into out. False once the stream
  // has failed for good; Error() then says why.
  bool NextFrame(uint8_t* out);
  std::string Error() const;

  // New parameter values from the host; those that may change between clips apply at the next clip.
  void Update(const Values& values);

 private:
  using Frame = std::vector<uint8_t>;  // RGBA8, width·height·4

  void Run();
  bool Setup(ds_generator* gen);
  std::string Configure(ds_generator* gen) const;
  bool RunClips(ds_generator* gen);
  void ApplyUpdates(ds_generator* gen);
  void ApplyChangedValues(ds_generator* gen, const Values& next, std::vector<std::string>& warnings);
  void RereadPromptFile(ds_generator* gen, std::vector<std::string>& warnings);
  bool PushFrame(const ds_frame& f);
  void Fail(const std::string& message);
  static int OnFrame(void* user, const ds_frame* frame);

  const int width_, height_;
  Values values_;   // generator thread only: what the engine runs with
  Values pending_;  // guarded by mu_: the host's latest values
  bool pending_changed_ = false;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Frame> queue_;
  std::vector<Frame> free_;  // recycled buffers, so that steady streaming does not allocate
  size_t capacity_ = 0;
  bool stopping_ = false, finished_ = false;
  std::string error_;
  ds_generator* gen_ = nullptr;  // published under mu_ so that the destructor can cancel it
  std::string last_warning_;     // generator thread only: repeated warnings are printed once

  std::thread thread_;  // last: starts after every member above exists
};

// Reads a prompt file: UTF-8 text, surrounding whitespace (a final newline) removed. False on error.
bool ReadPromptFile(const std::string& path, std::string* prompt, std::string* error);

// Prints one line on stderr, prefixed so that it is clear which plugin speaks inside a host's log.
void PrintLine(const std::string& message);

}  // namespace ditstream_frei0r
