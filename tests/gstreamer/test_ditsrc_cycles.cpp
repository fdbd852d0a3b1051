// Repeated NULL→PLAYING→EOS→NULL cycles: every cycle loads the model, streams, and tears it all
// down. Under valgrind (a separate meson test, fewer cycles) this is the leak check.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "gst_test_util.h"

using namespace ditsrc_test;

namespace {

int Cycles() {
  const char* env = std::getenv("DITSRC_CYCLES");
  return env != nullptr ? std::atoi(env) : 100;
}

TEST(DitsrcCycles, NullPlayingNullRepeatedly) {
  GstElement* pipeline = gst_pipeline_new(nullptr);
  GstElement* src = MakeDitsrc();
  GstElement* sink = gst_element_factory_make("fakesink", nullptr);
  ASSERT_NE(sink, nullptr);
  // The smallest stream the model allows: 2 frames, one denoising step.
  g_object_set(src, "num-frames", G_GINT64_CONSTANT(2), "frames", 2, "steps", 1, nullptr);
  gst_bin_add_many(GST_BIN(pipeline), src, sink, nullptr);
  ASSERT_TRUE(gst_element_link(src, sink));
  GstBus* bus = gst_element_get_bus(pipeline);
  const int cycles = Cycles();
  const double t0 = MonotonicSeconds();
  for (int i = 0; i < cycles; ++i) {
    ASSERT_NE(gst_element_set_state(pipeline, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE) << "cycle " << i;
    GstMessage* m = PopMessage(bus, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR), 60000);
    ASSERT_NE(m, nullptr) << "cycle " << i << ": no EOS";
    EXPECT_EQ(GST_MESSAGE_TYPE(m), GST_MESSAGE_EOS) << "cycle " << i;
    gst_message_unref(m);
    ASSERT_EQ(gst_element_set_state(pipeline, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS) << "cycle " << i;
    gst_bus_set_flushing(bus, TRUE);  // drop this cycle's progress messages
    gst_bus_set_flushing(bus, FALSE);
  }
  std::printf("[ timing ] %d cycles in %.2f s\n", cycles, MonotonicSeconds() - t0);
  gst_object_unref(bus);
  gst_object_unref(pipeline);
}

}  // namespace
