#include "gst_test_util.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/support/random_model.h"

namespace ditsrc_test {
namespace {

std::string& ModelDirStorage() {
  static std::string dir;
  return dir;
}

}  // namespace

const std::string& ModelDir() {
  std::string& dir = ModelDirStorage();
  if (dir.empty()) {
    dir = MakeTempDir("ditsrc-model");
    ds::testing::RandomModelSpec spec;
    spec.width = kWidth;
    spec.height = kHeight;
    spec.frames = kClipFrames;
    spec.fps = kFpsNum;
    const std::string err = ds::testing::WriteRandomModel(dir, spec, 11);
    if (!err.empty()) ADD_FAILURE() << "cannot write the test model: " << err;
  }
  return dir;
}

GstElement* MakeDitsrc(const char* name) {
  GstElement* src = gst_element_factory_make("ditsrc", name);
  if (src == nullptr) {
    ADD_FAILURE() << "no ditsrc element: is GST_PLUGIN_PATH set to the plugin's build folder?";
    return nullptr;
  }
  g_object_set(src, "model", ModelDir().c_str(), "threads", 2, nullptr);
  return src;
}

GstMessage* PopMessage(GstBus* bus, GstMessageType types, int timeout_ms) {
  return gst_bus_timed_pop_filtered(bus, static_cast<GstClockTime>(timeout_ms) * GST_MSECOND, types);
}

std::vector<Progress> DrainProgress(GstBus* bus) {
  std::vector<Progress> progress;
  while (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
    const GstStructure* st = gst_message_get_structure(m);
    Progress p;
    if (gst_structure_has_name(st, "ditstream-progress") && gst_structure_get_int(st, "clip", &p.clip)) {
      const char* stage = gst_structure_get_string(st, "stage");
      p.stage = stage ? stage : "";
      progress.push_back(std::move(p));
    }
    gst_message_unref(m);
  }
  return progress;
}

std::vector<int> DrainProgressClips(GstBus* bus) {
  std::vector<int> clips;
  for (const Progress& p : DrainProgress(bus)) clips.push_back(p.clip);
  return clips;
}

double MonotonicSeconds() { return static_cast<double>(g_get_monotonic_time()) / G_USEC_PER_SEC; }

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

std::string MakeTempDir(const char* prefix) {
  std::string pattern = (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
  if (g_mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "cannot create " << pattern;
  return pattern;
}

void RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

}  // namespace ditsrc_test

namespace {

bool leaks_reported = false;

// With GST_TRACERS=leaks (set by meson), gst_deinit() reports GstObjects and GstMiniObjects still
// alive as a GLib warning; this turns it into a failure of the test program.
GLogWriterOutput NoteLeaks(GLogLevelFlags level, const GLogField* fields, gsize n, gpointer) {
  for (gsize i = 0; i < n; ++i) {
    if (g_strcmp0(fields[i].key, "MESSAGE") == 0 && fields[i].length < 0 &&
        g_strstr_len(static_cast<const char*>(fields[i].value), -1, "Leaks detected") != nullptr) {
      leaks_reported = true;
    }
  }
  return g_log_writer_default(level, fields, n, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  g_log_set_writer_func(NoteLeaks, nullptr, nullptr);
  gst_init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int rc = RUN_ALL_TESTS();
  if (!ditsrc_test::ModelDirStorage().empty()) ditsrc_test::RemoveTree(ditsrc_test::ModelDirStorage());
  gst_deinit();  // lets valgrind and the leaks tracer see what is still alive
  if (leaks_reported) {
    std::fprintf(stderr, "FAILED: GStreamer objects leaked (GST_DEBUG=GST_TRACER:7 lists them)\n");
    rc = 1;
  }
  return rc;
}
