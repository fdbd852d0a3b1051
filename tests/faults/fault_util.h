// Shared by the fault tests: scratch folders, random models and a generator that records everything
// the C API hands out.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ditstream.h"
#include "tests/support/random_model.h"

namespace faults {

// A fresh folder under the temporary directory, removed by the destructor.
class ScratchDir {
 public:
  explicit ScratchDir(const char* name);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The smallest model the engine accepts: 4 frames at 32x32, 3 steps, CFG on.
ds::testing::RandomModelSpec SmallSpec();

struct Clip {
  std::vector<std::vector<uint8_t>> frames;
  std::vector<int64_t> indices;
  std::vector<ds_progress> progress;
  // Called after each progress event is recorded and with each frame; may call ds_cancel.
  std::function<void(const ds_progress&)> on_progress;
  std::function<int(const ds_frame&)> on_frame;  // non-zero stops generation
};

// A generator with its model option set; load() and generate() report failures as test failures
// only where the caller asks (they return the status).
class Generator {
 public:
  explicit Generator(const std::string& model, int threads = 2);
  ~Generator() { ds_destroy(gen_); }
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  ds_generator* get() const { return gen_; }
  ds_status Load() { return ds_load(gen_); }
  ds_status Generate(Clip& clip, int continue_previous = 0);
  std::string error() const { return ds_error_message(gen_); }

 private:
  ds_generator* gen_;
};

// Loads the model and generates one clip with the given seed (every failure is a test failure).
Clip Reference(const std::string& model, int64_t seed = 7);

}  // namespace faults
