// Shared by the ditsrc tests: a random model shaped like the bundled demo (so the tests neither wait
// for training nor depend on it), bus helpers, and a main() that initialises GStreamer once.
//
// The plugin is found through GST_PLUGIN_PATH and a private GST_REGISTRY, both set by meson.
#pragma once

#include <gst/gst.h>

#include <string>
#include <vector>

namespace ditsrc_test {

// The demo model's shape: 64×64, 16 frames a clip, 8 fps.
constexpr int kWidth = 64, kHeight = 64, kClipFrames = 16, kFpsNum = 8, kFpsDen = 1;

// Folder of the random model, written once per process and removed at exit.
const std::string& ModelDir();

// A ditsrc with the test model and two threads (the CI machines are small and shared).
GstElement* MakeDitsrc(const char* name = nullptr);

// Pops messages of the given types until one arrives or timeout_ms passes (nullptr then).
GstMessage* PopMessage(GstBus* bus, GstMessageType types, int timeout_ms);

// The ditstream-progress messages waiting on the bus, in order (taken off it).
struct Progress {
  std::string stage;
  int clip = -1;
};
std::vector<Progress> DrainProgress(GstBus* bus);
// Their `clip` fields.
std::vector<int> DrainProgressClips(GstBus* bus);

double MonotonicSeconds();

// Writes text into a new file (for broken-model fixtures).
void WriteFile(const std::string& path, const std::string& text);
std::string MakeTempDir(const char* prefix);
void RemoveTree(const std::string& path);

}  // namespace ditsrc_test
