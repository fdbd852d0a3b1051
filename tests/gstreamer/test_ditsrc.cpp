// ditsrc in process: caps and fixation, pixel formats, timestamps and EOS, clip continuation,
// properties against the option table, errors, cancellation, live mode, prompt changes and seeking.
#include <gst/base/gstbasesrc.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "ditstream.h"
#include "gst_test_util.h"
#include "tests/support/yuv_reference.h"

using namespace ditsrc_test;

namespace {

using Frame = std::vector<uint8_t>;

GstClockTime FrameTime(uint64_t n, int num, int den) {
  return gst_util_uint64_scale(n, static_cast<guint64>(den) * GST_SECOND, static_cast<guint64>(num));
}

Frame Bytes(GstBuffer* buf) {
  Frame bytes(gst_buffer_get_size(buf));
  gst_buffer_extract(buf, 0, bytes.data(), bytes.size());
  return bytes;
}

// A GstHarness around one ditsrc (test model, two threads), with a bus to collect its messages.
class Harness {
 public:
  explicit Harness(const char* sink_caps = nullptr) : h_(gst_harness_new("ditsrc")), bus_(gst_bus_new()) {
    g_object_set(h_->element, "model", ModelDir().c_str(), "threads", 2, nullptr);
    if (sink_caps != nullptr) gst_harness_set_sink_caps_str(h_, sink_caps);
    gst_element_set_bus(h_->element, bus_);
  }
  ~Harness() {
    gst_bus_set_flushing(bus_, TRUE);  // queued messages hold refs to the element, which holds the bus
    gst_harness_teardown(h_);
    gst_object_unref(bus_);
  }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  GstHarness* get() { return h_; }
  GstElement* element() { return h_->element; }
  GstBus* bus() { return bus_; }

  // Backpressure as a real sink gives it: the streaming thread waits until each buffer is pulled.
  void Blocking() { gst_harness_set_blocking_push_mode(h_); }

  GstBuffer* Pull() { return gst_harness_pull(h_); }

  std::vector<Frame> PullFrames(int n) {
    std::vector<Frame> frames;
    for (int i = 0; i < n; ++i) {
      GstBuffer* b = Pull();
      if (b == nullptr) {
        ADD_FAILURE() << "no buffer " << i;
        break;
      }
      frames.push_back(Bytes(b));
      gst_buffer_unref(b);
    }
    return frames;
  }

  bool WaitEos() {
    while (GstEvent* e = gst_harness_pull_event(h_)) {
      const bool eos = GST_EVENT_TYPE(e) == GST_EVENT_EOS;
      gst_event_unref(e);
      if (eos) return true;
    }
    return false;
  }

  GstVideoInfo NegotiatedInfo() {
    GstVideoInfo info;
    gst_video_info_init(&info);
    GstCaps* caps = gst_pad_get_current_caps(h_->sinkpad);
    EXPECT_NE(caps, nullptr);
    if (caps != nullptr) {
      EXPECT_TRUE(gst_video_info_from_caps(&info, caps));
      gst_caps_unref(caps);
    }
    return info;
  }

 private:
  GstHarness* h_;
  GstBus* bus_;
};

// Checks n buffers: PTS from the frame index at num/den, duration to the next frame, offsets.
void ExpectTimeline(Harness& h, int n, int num, int den) {
  for (int i = 0; i < n; ++i) {
    GstBuffer* b = h.Pull();
    ASSERT_NE(b, nullptr) << "buffer " << i;
    EXPECT_EQ(GST_BUFFER_PTS(b), FrameTime(i, num, den)) << "buffer " << i;
    EXPECT_EQ(GST_BUFFER_DTS(b), GST_BUFFER_PTS(b)) << "buffer " << i;
    EXPECT_EQ(GST_BUFFER_DURATION(b), FrameTime(i + 1, num, den) - FrameTime(i, num, den)) << "buffer " << i;
    EXPECT_EQ(GST_BUFFER_OFFSET(b), static_cast<guint64>(i));
    EXPECT_EQ(GST_BUFFER_OFFSET_END(b), static_cast<guint64>(i + 1));
    gst_buffer_unref(b);
  }
}

// ---- caps and fixation ----

TEST(DitsrcCaps, FixatesToTheModelsNativeSizeRateAndRgb) {
  Harness h;
  gst_harness_play(h.get());
  GstBuffer* b = h.Pull();
  ASSERT_NE(b, nullptr);
  const GstVideoInfo info = h.NegotiatedInfo();
  EXPECT_EQ(GST_VIDEO_INFO_FORMAT(&info), GST_VIDEO_FORMAT_RGB);
  EXPECT_EQ(GST_VIDEO_INFO_WIDTH(&info), kWidth);
  EXPECT_EQ(GST_VIDEO_INFO_HEIGHT(&info), kHeight);
  EXPECT_EQ(GST_VIDEO_INFO_FPS_N(&info), kFpsNum);
  EXPECT_EQ(GST_VIDEO_INFO_FPS_D(&info), kFpsDen);
  EXPECT_EQ(gst_buffer_get_size(b), static_cast<gsize>(kWidth * kHeight * 3));
  gst_buffer_unref(b);
}

class DitsrcFormat : public ::testing::TestWithParam<const char*> {};

TEST_P(DitsrcFormat, OneClipOfFullSizeBuffersThenEos) {
  const std::string caps = std::string("video/x-raw,format=") + GetParam();
  Harness h(caps.c_str());
  gst_harness_play(h.get());
  GstVideoInfo expected;
  gst_video_info_set_format(&expected, gst_video_format_from_string(GetParam()), kWidth, kHeight);
  for (const Frame& f : h.PullFrames(kClipFrames)) EXPECT_EQ(f.size(), GST_VIDEO_INFO_SIZE(&expected));
  const GstVideoInfo negotiated = h.NegotiatedInfo();
  EXPECT_EQ(GST_VIDEO_INFO_FORMAT(&negotiated), GST_VIDEO_INFO_FORMAT(&expected));
  EXPECT_TRUE(h.WaitEos());
  EXPECT_EQ(gst_harness_buffers_in_queue(h.get()), 0u);
}

INSTANTIATE_TEST_SUITE_P(AllFormats, DitsrcFormat, ::testing::Values("RGB", "RGBA", "I420", "NV12"));

std::vector<Frame> FirstFrames(const char* caps, int n) {
  Harness h(caps);
  g_object_set(h.element(), "seed", G_GINT64_CONSTANT(42), nullptr);
  gst_harness_play(h.get());
  return h.PullFrames(n);
}

TEST(DitsrcFormats, RgbaI420AndNv12CarryTheSameFramesAsRgb) {
  const auto rgb = FirstFrames("video/x-raw,format=RGB", 2);
  const auto rgba = FirstFrames("video/x-raw,format=RGBA", 2);
  const auto i420 = FirstFrames("video/x-raw,format=I420", 2);
  const auto nv12 = FirstFrames("video/x-raw,format=NV12", 2);
  ASSERT_EQ(rgb.size(), 2u);
  ASSERT_EQ(rgba.size(), 2u);
  ASSERT_EQ(i420.size(), 2u);
  ASSERT_EQ(nv12.size(), 2u);
  EXPECT_NE(rgb[0], rgb[1]) << "consecutive frames should differ";
  const int n = kWidth * kHeight;
  for (int p = 0; p < n; ++p) {
    for (int c = 0; c < 3; ++c) ASSERT_EQ(rgba[0][4 * p + c], rgb[0][3 * p + c]) << "pixel " << p;
    ASSERT_EQ(rgba[0][4 * p + 3], 255) << "pixel " << p;
  }
  const uint8_t* y = i420[0].data();
  const uint8_t* u = y + n;
  const uint8_t* v = u + n / 4;
  ASSERT_TRUE(
      ds::testing::I420Matches(ds::testing::kBt601, rgb[0].data(), kWidth, kHeight, y, kWidth, u, v, kWidth / 2));
  // NV12 (64 × 64: rows unpadded): I420's Y plane, then its U and V interleaved.
  ASSERT_EQ(nv12[0].size(), i420[0].size());
  for (int i = 0; i < n; ++i) ASSERT_EQ(nv12[0][i], y[i]) << "Y " << i;
  for (int k = 0; k < n / 4; ++k) {
    ASSERT_EQ(nv12[0][n + 2 * k], u[k]) << "U " << k;
    ASSERT_EQ(nv12[0][n + 2 * k + 1], v[k]) << "V " << k;
  }
}

// I420 is made in the matrix the caps name: BT.601 for SD sizes left open (GStreamer's default
// below 577 lines), BT.709 when downstream asks for it, BT.601 for another spelling of it; chroma
// sited at the block centre.
TEST(DitsrcFormats, I420FollowsTheNegotiatedColorimetry) {
  const auto rgb = FirstFrames("video/x-raw,format=RGB", 1);
  ASSERT_EQ(rgb.size(), 1u);
  const int n = kWidth * kHeight;
  for (const auto& [caps, standard, matrix] :
       {std::tuple{"video/x-raw,format=I420", ds::testing::kBt601, GST_VIDEO_COLOR_MATRIX_BT601},
        std::tuple{"video/x-raw,format=I420,colorimetry=bt709", ds::testing::kBt709, GST_VIDEO_COLOR_MATRIX_BT709},
        // BT.601 spelled as V4L2 encoders list it (BT.709's transfer): the same bytes as bt601
        std::tuple{"video/x-raw,format=I420,colorimetry=2:4:5:4", ds::testing::kBt601, GST_VIDEO_COLOR_MATRIX_BT601}}) {
    SCOPED_TRACE(caps);
    Harness h(caps);
    g_object_set(h.element(), "seed", G_GINT64_CONSTANT(42), nullptr);
    gst_harness_play(h.get());
    const auto i420 = h.PullFrames(1);
    ASSERT_EQ(i420.size(), 1u);
    const GstVideoInfo info = h.NegotiatedInfo();
    EXPECT_EQ(info.colorimetry.matrix, matrix);
    EXPECT_EQ(info.colorimetry.range, GST_VIDEO_COLOR_RANGE_16_235);
    EXPECT_EQ(info.chroma_site, GST_VIDEO_CHROMA_SITE_JPEG) << "chroma is each 2x2 block's mean";
    const uint8_t* y = i420[0].data();
    ASSERT_TRUE(ds::testing::I420Matches(standard, rgb[0].data(), kWidth, kHeight, y, kWidth, y + n, y + n + n / 4,
                                         kWidth / 2));
  }
}

// Left open, I420 takes the matrix GStreamer assumes for a frame of its height: BT.709 above 576
// lines (the demo model stops at 256, so the element's fixate is asked directly).
TEST(DitsrcCaps, OpenI420ColorimetryFixatesToTheDefaultOfItsHeight) {
  Harness h;
  GstBaseSrc* src = GST_BASE_SRC(h.element());
  for (const auto& [height, want] : {std::pair{480, "bt601"}, std::pair{576, "bt601"}, std::pair{720, "bt709"}}) {
    gchar* text = g_strdup_printf(
        "video/x-raw,format=I420,colorimetry={bt601,bt709},width=1280,height=%d,framerate=8/1,"
        "pixel-aspect-ratio=1/1",
        height);
    GstCaps* fixed = GST_BASE_SRC_GET_CLASS(src)->fixate(src, gst_caps_from_string(text));
    g_free(text);
    ASSERT_TRUE(gst_caps_is_fixed(fixed));
    EXPECT_STREQ(gst_structure_get_string(gst_caps_get_structure(fixed, 0), "colorimetry"), want) << height;
    gst_caps_unref(fixed);
  }
}

// Asked with downstream's caps, ditsrc offers YUV only in colorimetries it makes, whatever their
// spelling: limited-range BT.601 or BT.709 (bt601, bt709, V4L2's 2:4:5:4), not BT.2020 or full
// range; so negotiation fails cleanly (or a converter in between does the work) rather than
// mislabel frames.
TEST(DitsrcCaps, OffersOnlyTheColorimetriesItMakes) {
  Harness h;
  GstPad* pad = gst_element_get_static_pad(h.element(), "src");
  const std::pair<const char*, bool> cases[] = {
      {"video/x-raw,format=I420,colorimetry=bt601", true},
      {"video/x-raw,format=NV12,colorimetry=bt709", true},
      {"video/x-raw,format=I420,colorimetry=2:4:5:4", true},
      {"video/x-raw,format=I420,colorimetry=bt2020", false},
      {"video/x-raw,format=I420,colorimetry=1:4:0:0", false},  // full range
      {"video/x-raw,format=I420,colorimetry={bt2020,bt709}", true},
      // RGB is sRGB: appsink caps built by gst_video_info_to_caps say so; other RGB would be mislabelled
      {"video/x-raw,format=RGBA,colorimetry=sRGB", true},
      {"video/x-raw,format=RGB,colorimetry=bt2020", false},
      {"video/x-raw,format=RGB,colorimetry=1:4:0:0", false},  // a YUV matrix on RGB
      // progressive, one view: interlaced or stereo caps would mislabel the frames
      {"video/x-raw,format=I420,interlace-mode=interleaved", false},
      {"video/x-raw,format=RGB,multiview-mode=side-by-side", false},
      {"video/x-raw,format=RGB,framerate=2147483647/1", false},  // above the fps property's bound
      {"video/x-raw,format=RGB,framerate=240/1", true}};
  for (const auto& [wanted, offered] : cases) {
    GstCaps* filter = gst_caps_from_string(wanted);
    GstCaps* caps = gst_pad_query_caps(pad, filter);
    EXPECT_EQ(!gst_caps_is_empty(caps), offered) << wanted << " → " << gst_caps_to_string(caps);
    if (!gst_caps_is_empty(caps)) {
      if (std::string(wanted).find("RGB") != std::string::npos ||
          std::string(wanted).find("colorimetry") == std::string::npos) {
        gst_caps_unref(caps);
        gst_caps_unref(filter);
        continue;
      }
      const GValue* c = gst_structure_get_value(gst_caps_get_structure(caps, 0), "colorimetry");
      ASSERT_NE(c, nullptr);
      if (std::string(wanted).find("bt2020,") != std::string::npos) {
        EXPECT_STREQ(g_value_get_string(c), "bt709") << "bt2020 is dropped from the list";
      }
    }
    gst_caps_unref(caps);
    gst_caps_unref(filter);
  }
  gst_object_unref(pad);
}

TEST(DitsrcCaps, DownstreamRateSetsTimestampSpacing) {
  Harness h("video/x-raw,framerate=25/1");
  gst_harness_play(h.get());
  ExpectTimeline(h, kClipFrames, 25, 1);  // generation is per frame, not resampled: still one clip
  EXPECT_TRUE(h.WaitEos());
}

// basesrc's do-timestamp stamps buffers without a DTS with their arrival time: the frames have one.
TEST(DitsrcCaps, DoTimestampLeavesTheFramesTimes) {
  Harness h;
  g_object_set(h.element(), "do-timestamp", TRUE, nullptr);
  gst_harness_play(h.get());
  ExpectTimeline(h, 4, kFpsNum, kFpsDen);
}

TEST(DitsrcCaps, FpsPropertyFixesTheRate) {
  Harness h;
  g_object_set(h.element(), "fps", 12.5, nullptr);
  gst_harness_play(h.get());
  ExpectTimeline(h, 3, 25, 2);
  const GstVideoInfo info = h.NegotiatedInfo();
  EXPECT_EQ(GST_VIDEO_INFO_FPS_N(&info), 25);
  EXPECT_EQ(GST_VIDEO_INFO_FPS_D(&info), 2);
}

TEST(DitsrcCaps, DownstreamPicksTheSizeWhenThePropertiesAreZero) {
  Harness h("video/x-raw,width=128,height=96");
  gst_harness_play(h.get());
  GstBuffer* b = h.Pull();
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(gst_buffer_get_size(b), 128u * 96u * 3u);
  gst_buffer_unref(b);
}

TEST(DitsrcCaps, SizePropertiesTakePriority) {
  Harness h("video/x-raw");
  g_object_set(h.element(), "width", 96, "height", 48, nullptr);
  gst_harness_play(h.get());
  GstBuffer* b = h.Pull();
  ASSERT_NE(b, nullptr);
  const GstVideoInfo info = h.NegotiatedInfo();
  EXPECT_EQ(GST_VIDEO_INFO_WIDTH(&info), 96);
  EXPECT_EQ(GST_VIDEO_INFO_HEIGHT(&info), 48);
  gst_buffer_unref(b);
}

TEST(DitsrcCaps, AdvertisesOnlySizesTheModelSupports) {
  Harness h;
  gst_harness_play(h.get());
  gst_buffer_unref(h.Pull());  // started: the caps now come from the loaded model
  GstPad* pad = gst_element_get_static_pad(h.element(), "src");
  GstCaps* wanted = gst_caps_from_string("video/x-raw,width=100,height=64");  // 100 is not a multiple of 16
  GstCaps* caps = gst_pad_query_caps(pad, nullptr);
  EXPECT_FALSE(gst_caps_can_intersect(caps, wanted));
  gst_caps_unref(caps);
  gst_caps_unref(wanted);
  gst_object_unref(pad);
}

// ---- buffers, timestamps, EOS, continuation ----

TEST(DitsrcStream, OneClipIsSixteenBuffersAtTheNativeRateThenEos) {
  Harness h;
  gst_harness_play(h.get());
  ExpectTimeline(h, kClipFrames, kFpsNum, kFpsDen);
  EXPECT_TRUE(h.WaitEos());
  EXPECT_EQ(gst_harness_buffers_in_queue(h.get()), 0u);
  gint64 duration = -1;
  EXPECT_TRUE(gst_pad_peer_query_duration(h.get()->sinkpad, GST_FORMAT_TIME, &duration));
  EXPECT_EQ(duration, static_cast<gint64>(FrameTime(kClipFrames, kFpsNum, kFpsDen)));
}

TEST(DitsrcStream, MoreFramesThanAClipContinueIntoASecondClipThenEos) {
  Harness h;
  g_object_set(h.element(), "num-frames", G_GINT64_CONSTANT(20), nullptr);
  gst_harness_play(h.get());
  ExpectTimeline(h, 20, kFpsNum, kFpsDen);
  EXPECT_TRUE(h.WaitEos());
  EXPECT_EQ(gst_harness_buffers_in_queue(h.get()), 0u);
  const std::vector<int> clips = DrainProgressClips(h.bus());
  EXPECT_GE(*std::max_element(clips.begin(), clips.end()), 1);
}

// The title and comment of every tag event up to EOS.
std::vector<std::pair<std::string, std::string>> TagsUntilEos(Harness& h) {
  std::vector<std::pair<std::string, std::string>> tags;
  while (GstEvent* e = gst_harness_pull_event(h.get())) {
    const GstEventType type = GST_EVENT_TYPE(e);
    if (type == GST_EVENT_TAG) {
      GstTagList* list = nullptr;
      gst_event_parse_tag(e, &list);
      gchar *title = nullptr, *comment = nullptr;
      gst_tag_list_get_string(list, GST_TAG_TITLE, &title);
      gst_tag_list_get_string(list, GST_TAG_COMMENT, &comment);
      tags.emplace_back(title ? title : "", comment ? comment : "");
      g_free(title);
      g_free(comment);
    }
    gst_event_unref(e);
    if (type == GST_EVENT_EOS) break;
  }
  return tags;
}

// A prompt longer than any fixed buffer, with multibyte characters, reaches the title whole.
TEST(DitsrcTags, LongPromptsAreTaggedWhole) {
  std::string prompt;
  while (prompt.size() < 9000) prompt += "a red circle moving right, ünd ";
  Harness h;
  g_object_set(h.element(), "prompt", prompt.c_str(), nullptr);
  gst_harness_play(h.get());
  for (const Frame& f : h.PullFrames(kClipFrames)) EXPECT_FALSE(f.empty());
  const auto tags = TagsUntilEos(h);
  ASSERT_EQ(tags.size(), 1u);
  EXPECT_EQ(tags[0].first, prompt);
}

// Each clip is tagged once, ahead of its frames: the prompt as title, the provenance JSON (its
// seed, the AI-generated flag) as comment; provenance=false sends none.
// What reaches the harness's sink pad, in order: 'T' per tag event, 'B' per buffer.
struct Arrivals {
  std::mutex mu;
  std::string order;
};

GstPadProbeReturn RecordArrival(GstPad*, GstPadProbeInfo* info, gpointer user) {
  auto* a = static_cast<Arrivals*>(user);
  std::lock_guard lk(a->mu);
  if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) {
    a->order += 'B';
  } else if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_TAG) {
    a->order += 'T';
  }
  return GST_PAD_PROBE_OK;
}

TEST(DitsrcTags, EachClipCarriesItsPromptAndProvenance) {
  for (const bool on : {true, false}) {
    SCOPED_TRACE(on ? "provenance=true" : "provenance=false");
    Harness h;
    g_object_set(h.element(), "num-frames", G_GINT64_CONSTANT(20), "prompt", "a blue square moving up", "seed",
                 G_GINT64_CONSTANT(5), "provenance", on, nullptr);
    Arrivals arrivals;
    gst_pad_add_probe(h.get()->sinkpad,
                      static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM),
                      RecordArrival, &arrivals, nullptr);
    gst_harness_play(h.get());
    for (const Frame& f : h.PullFrames(20)) EXPECT_FALSE(f.empty());
    const auto tags = TagsUntilEos(h);
    if (!on) {
      EXPECT_TRUE(tags.empty());
      continue;
    }
    {
      // 20 frames: the first clip's 16, then 4 of the continuing clip, each clip's tags first.
      std::lock_guard lk(arrivals.mu);
      EXPECT_EQ(arrivals.order, "T" + std::string(16, 'B') + "T" + std::string(4, 'B'));
    }
    ASSERT_EQ(tags.size(), 2u) << "one tag event per clip";
    for (const auto& [title, comment] : tags) {
      EXPECT_EQ(title, "a blue square moving up");
      EXPECT_NE(comment.find("\"ai_generated\":true"), std::string::npos) << comment;
      EXPECT_NE(comment.find("\"seed\":5,"), std::string::npos) << comment;
      EXPECT_NE(comment.find("\"prompt\":\"a blue square moving up\""), std::string::npos) << comment;
    }
  }
}

// The record says the rate the frames are stamped with, also when downstream chose it.
TEST(DitsrcTags, ProvenanceSaysTheNegotiatedRate) {
  Harness h("video/x-raw,framerate=25/1");
  gst_harness_play(h.get());
  for (const Frame& f : h.PullFrames(kClipFrames)) EXPECT_FALSE(f.empty());
  const auto tags = TagsUntilEos(h);
  ASSERT_EQ(tags.size(), 1u);
  EXPECT_NE(tags[0].second.find("\"fps\":25.0"), std::string::npos) << tags[0].second;
}

TEST(DitsrcStream, EndlessModeRunsAcrossClipBoundariesWithoutGaps) {
  Harness h;
  h.Blocking();
  g_object_set(h.element(), "num-frames", G_GINT64_CONSTANT(-1), nullptr);
  gst_harness_play(h.get());
  // A continued clip adds the clip length minus the frames it takes over: pull into the third clip.
  std::vector<int> clips;
  int pulled = 0;
  for (; pulled < 30 || clips.empty() || clips.back() < 2; pulled += 10) {
    ASSERT_LT(pulled, 200) << "never reached the third clip";
    for (int i = pulled; i < pulled + 10; ++i) {
      GstBuffer* b = h.Pull();
      ASSERT_NE(b, nullptr);
      EXPECT_EQ(GST_BUFFER_PTS(b), FrameTime(i, kFpsNum, kFpsDen)) << "buffer " << i;
      EXPECT_EQ(GST_BUFFER_DURATION(b), FrameTime(i + 1, kFpsNum, kFpsDen) - FrameTime(i, kFpsNum, kFpsDen));
      EXPECT_EQ(GST_BUFFER_OFFSET(b), static_cast<guint64>(i));
      gst_buffer_unref(b);
    }
    for (int c : DrainProgressClips(h.bus())) clips.push_back(c);
  }
  EXPECT_TRUE(std::is_sorted(clips.begin(), clips.end()));
}

TEST(DitsrcStream, ProgressMessagesCoverEveryStage) {
  Harness h;
  gst_harness_play(h.get());
  h.PullFrames(kClipFrames);
  ASSERT_TRUE(h.WaitEos());
  std::vector<std::string> stages;
  int decoded = 0;
  while (GstMessage* m = gst_bus_pop_filtered(h.bus(), GST_MESSAGE_ELEMENT)) {
    const GstStructure* st = gst_message_get_structure(m);
    int step = 0, total = 0, clip = -1;
    ASSERT_TRUE(gst_structure_has_name(st, "ditstream-progress"));
    ASSERT_TRUE(gst_structure_get_int(st, "step", &step) && gst_structure_get_int(st, "total", &total) &&
                gst_structure_get_int(st, "clip", &clip));
    const std::string stage = gst_structure_get_string(st, "stage");
    if (stages.empty() || stages.back() != stage) stages.push_back(stage);
    if (stage == "decode") decoded = std::max(decoded, step);
    EXPECT_LE(step, total);
    EXPECT_EQ(clip, 0);
    gst_message_unref(m);
  }
  EXPECT_EQ(stages, (std::vector<std::string>{"text", "denoise", "decode"}));
  EXPECT_EQ(decoded, kClipFrames);
}

// ---- properties ----

GstElement* NewDitsrc() {
  GstElement* e = gst_element_factory_make("ditsrc", nullptr);
  EXPECT_NE(e, nullptr);
  return GST_ELEMENT(gst_object_ref_sink(e));
}

TEST(DitsrcProperties, EveryTableOptionIsAPropertyWithTheTablesTypeRangeAndDefault) {
  GstElement* e = NewDitsrc();
  GObjectClass* klass = G_OBJECT_GET_CLASS(e);
  for (int i = 0; i < ds_option_count(); ++i) {
    const ds_option_info& o = *ds_option_at(i);
    SCOPED_TRACE(o.name);
    GParamSpec* p = g_object_class_find_property(klass, o.name);
    ASSERT_NE(p, nullptr);
    EXPECT_NE(g_param_spec_get_blurb(p), nullptr);
    const guint mutable_flag = o.applies_between_clips ? GST_PARAM_MUTABLE_PLAYING : GST_PARAM_MUTABLE_READY;
    EXPECT_TRUE(p->flags & mutable_flag);
    EXPECT_TRUE((p->flags & G_PARAM_READWRITE) == G_PARAM_READWRITE);
    switch (o.type) {
      case DS_OPT_STRING:
        ASSERT_TRUE(G_IS_PARAM_SPEC_STRING(p));
        EXPECT_STREQ(G_PARAM_SPEC_STRING(p)->default_value, o.default_value);
        break;
      case DS_OPT_INT:
        if (G_IS_PARAM_SPEC_INT(p)) {
          EXPECT_EQ(G_PARAM_SPEC_INT(p)->minimum, o.min);
          EXPECT_EQ(G_PARAM_SPEC_INT(p)->maximum, o.max);
          EXPECT_EQ(G_PARAM_SPEC_INT(p)->default_value, std::atof(o.default_value));
        } else {
          ASSERT_TRUE(G_IS_PARAM_SPEC_INT64(p));
          EXPECT_EQ(G_PARAM_SPEC_INT64(p)->minimum, static_cast<gint64>(o.min));
          EXPECT_EQ(G_PARAM_SPEC_INT64(p)->maximum, static_cast<gint64>(o.max));
          EXPECT_EQ(G_PARAM_SPEC_INT64(p)->default_value, std::atoll(o.default_value));
        }
        break;
      case DS_OPT_DOUBLE:
        ASSERT_TRUE(G_IS_PARAM_SPEC_DOUBLE(p));
        EXPECT_EQ(G_PARAM_SPEC_DOUBLE(p)->minimum, o.min);
        EXPECT_EQ(G_PARAM_SPEC_DOUBLE(p)->maximum, o.max);
        EXPECT_EQ(G_PARAM_SPEC_DOUBLE(p)->default_value, std::atof(o.default_value));
        break;
    }
  }
  gst_object_unref(e);
}

// Values the engine accepts for option o: both ends of a range and a point inside, or a string.
std::vector<std::string> CandidateValues(const ds_option_info& o) {
  std::vector<std::string> tries;
  if (o.type == DS_OPT_STRING) {
    tries = {"a green square moving up", "cpu", "on", "unipc"};
  } else {
    const double mid = o.type == DS_OPT_INT ? std::floor((o.min + o.max) / 2) : (o.min + o.max) / 2 + 0.25;
    for (double v : {o.min, mid, o.max}) {
      char buf[G_ASCII_DTOSTR_BUF_SIZE];
      tries.emplace_back(o.type == DS_OPT_INT ? std::to_string(static_cast<long long>(v))
                                              : g_ascii_dtostr(buf, sizeof buf, v));
    }
  }
  ds_generator* check = ds_create();
  std::vector<std::string> accepted;
  for (const std::string& t : tries) {
    if (ds_set_option(check, o.name, t.c_str()) == DS_OK) accepted.push_back(t);
  }
  ds_destroy(check);
  return accepted;
}

void SetFromText(GValue* v, GType type, const std::string& text) {
  g_value_init(v, type);
  if (type == G_TYPE_STRING) g_value_set_string(v, text.c_str());
  if (type == G_TYPE_INT) g_value_set_int(v, static_cast<gint>(g_ascii_strtoll(text.c_str(), nullptr, 10)));
  if (type == G_TYPE_INT64) g_value_set_int64(v, g_ascii_strtoll(text.c_str(), nullptr, 10));
  if (type == G_TYPE_DOUBLE) g_value_set_double(v, g_ascii_strtod(text.c_str(), nullptr));
}

TEST(DitsrcProperties, EveryTableOptionRoundTrips) {
  GstElement* e = NewDitsrc();
  for (int i = 0; i < ds_option_count(); ++i) {
    const ds_option_info& o = *ds_option_at(i);
    GParamSpec* p = g_object_class_find_property(G_OBJECT_GET_CLASS(e), o.name);
    ASSERT_NE(p, nullptr) << o.name;
    const std::vector<std::string> values = CandidateValues(o);
    EXPECT_FALSE(values.empty()) << o.name;
    for (const std::string& text : values) {
      SCOPED_TRACE(std::string(o.name) + "=" + text);
      GValue in = G_VALUE_INIT, out = G_VALUE_INIT;
      SetFromText(&in, p->value_type, text);
      g_object_set_property(G_OBJECT(e), o.name, &in);
      g_value_init(&out, p->value_type);
      g_object_get_property(G_OBJECT(e), o.name, &out);
      EXPECT_EQ(gst_value_compare(&in, &out), GST_VALUE_EQUAL);
      g_value_unset(&in);
      g_value_unset(&out);
    }
  }
  g_object_set(e, "num-frames", G_GINT64_CONSTANT(-1), "is-live", TRUE, nullptr);
  gint64 num_frames = 0;
  gboolean live = FALSE;
  g_object_get(e, "num-frames", &num_frames, "is-live", &live, nullptr);
  EXPECT_EQ(num_frames, -1);
  EXPECT_TRUE(live);
  gst_object_unref(e);
}

TEST(DitsrcProperties, OutOfRangeAndEngineRefusedValuesLeaveThePropertyUnchanged) {
  GstElement* e = NewDitsrc();
  // Each of these prints a GLib warning, which is the refusal.
  g_object_set(e, "steps", 1001, "num-frames", G_GINT64_CONSTANT(-2), "guidance", 1000.0, nullptr);
  g_object_set(e, "device", "gpu", nullptr);  // in no range, but not a device the engine knows
  gint steps = -5;
  gint64 num_frames = -5;
  double guidance = 0;
  gchar* device = nullptr;
  g_object_get(e, "steps", &steps, "num-frames", &num_frames, "guidance", &guidance, "device", &device, nullptr);
  EXPECT_EQ(steps, 0);
  EXPECT_EQ(num_frames, 0);
  EXPECT_EQ(guidance, -1.0);
  EXPECT_STREQ(device, "auto");
  g_free(device);
  gst_object_unref(e);
}

TEST(DitsrcProperties, NullStringIsTheDefault) {
  GstElement* e = NewDitsrc();
  const ds_option_info* prompt = ds_option_find("prompt");
  ASSERT_NE(prompt, nullptr);
  g_object_set(e, "prompt", "a blue square moving up", nullptr);
  g_object_set(e, "prompt", nullptr, nullptr);
  gchar* value = nullptr;
  g_object_get(e, "prompt", &value, nullptr);
  EXPECT_STREQ(value, prompt->default_value);
  g_free(value);
  gst_object_unref(e);
}

// Refused with a bus warning each, not a GLib warning: an application's timing, not a programming
// error, must not abort a program run with fatal warnings (gst-check, G_DEBUG=fatal-warnings).
TEST(DitsrcProperties, ReadyOnlyPropertiesAreRefusedWhileStreaming) {
  Harness h;
  gst_harness_play(h.get());
  gst_buffer_unref(h.Pull());
  const GLogLevelFlags fatal = g_log_set_always_fatal(
      static_cast<GLogLevelFlags>(G_LOG_FATAL_MASK | G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL));
  g_object_set(h.element(), "width", 128, "num-frames", G_GINT64_CONSTANT(5), nullptr);
  g_log_set_always_fatal(fatal);
  gint width = -1;
  gint64 num_frames = -1;
  g_object_get(h.element(), "width", &width, "num-frames", &num_frames, nullptr);
  EXPECT_EQ(width, 0);
  EXPECT_EQ(num_frames, 0);
  for (const char* name : {"width", "num-frames"}) {
    GstMessage* m = PopMessage(h.bus(), GST_MESSAGE_WARNING, 1000);
    ASSERT_NE(m, nullptr) << "no bus warning for " << name;
    GError* err = nullptr;
    gst_message_parse_warning(m, &err, nullptr);
    EXPECT_NE(std::string(err->message).find(std::string("'") + name + "'"), std::string::npos) << err->message;
    g_error_free(err);
    gst_message_unref(m);
  }
}

// ---- errors ----

struct PipelineRun {
  GstElement* pipeline = nullptr;
  GstElement* src = nullptr;
  GstBus* bus = nullptr;
  explicit PipelineRun(const char* sink = "fakesink") {
    pipeline = gst_pipeline_new(nullptr);
    src = MakeDitsrc("src");
    GstElement* s = gst_parse_bin_from_description(sink, TRUE, nullptr);
    gst_bin_add_many(GST_BIN(pipeline), src, s, nullptr);
    EXPECT_TRUE(gst_element_link(src, s));
    bus = gst_element_get_bus(pipeline);
  }
  ~PipelineRun() {
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(bus);
    gst_object_unref(pipeline);
  }
};

// Goes to PAUSED, which must fail, and returns the error the element posted.
GError* StartError(PipelineRun& run) {
  EXPECT_EQ(gst_element_set_state(run.pipeline, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  GstMessage* m = PopMessage(run.bus, GST_MESSAGE_ERROR, 10000);
  if (m == nullptr) return nullptr;
  GError* err = nullptr;
  gst_message_parse_error(m, &err, nullptr);
  EXPECT_EQ(GST_MESSAGE_SRC(m), GST_OBJECT(run.src));
  gst_message_unref(m);
  return err;
}

// Fields downstream asks for that the frames do not have (HDR mastering metadata) are not claimed
// in ditsrc's caps (a capsfilter may still add them: that is the pipeline's statement, not ours).
TEST(DitsrcCaps, DoesNotClaimWhatTheFramesDoNotHave) {
  PipelineRun run(
      "capsfilter caps=\"video/x-raw,format=I420,mastering-display-info=(string)"
      "35399:14599:8500:39850:6550:2300:15634:16450:10000000:1\" ! fakesink");
  g_object_set(run.src, "steps", 1, "num-frames", G_GINT64_CONSTANT(1), nullptr);
  gst_element_set_state(run.pipeline, GST_STATE_PLAYING);
  GstMessage* m = PopMessage(run.bus, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR), 30000);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(GST_MESSAGE_TYPE(m), GST_MESSAGE_EOS);
  gst_message_unref(m);
  GstPad* pad = gst_element_get_static_pad(run.src, "src");
  GstCaps* caps = gst_pad_get_current_caps(pad);
  ASSERT_NE(caps, nullptr);
  const GstStructure* st = gst_caps_get_structure(caps, 0);
  EXPECT_FALSE(gst_structure_has_field(st, "mastering-display-info")) << gst_caps_to_string(caps);
  EXPECT_STREQ(gst_structure_get_string(st, "interlace-mode"), "progressive");
  gst_caps_unref(caps);
  gst_object_unref(pad);
}

TEST(DitsrcErrors, MissingModelFailsTheStateChangeWithNotFound) {
  PipelineRun run;
  g_object_set(run.src, "model", "/nonexistent/ditstream-model", nullptr);
  GError* err = StartError(run);
  ASSERT_NE(err, nullptr);
  EXPECT_TRUE(g_error_matches(err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND)) << err->message;
  EXPECT_NE(std::string(err->message).find("/nonexistent/ditstream-model"), std::string::npos) << err->message;
  g_error_free(err);
}

TEST(DitsrcErrors, MalformedModelFailsTheStateChangeWithSettings) {
  const std::string dir = MakeTempDir("ditsrc-bad-model");
  for (const char* f : {"config.json", "model.safetensors", "vocab.txt"}) {
    std::filesystem::copy_file(std::filesystem::path(ModelDir()) / f, std::filesystem::path(dir) / f);
  }
  WriteFile(dir + "/model.safetensors", "this is not a safetensors file");
  PipelineRun run;
  g_object_set(run.src, "model", dir.c_str(), nullptr);
  GError* err = StartError(run);
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(err->domain, GST_RESOURCE_ERROR) << err->message;
  EXPECT_NE(std::string(err->message).find(dir), std::string::npos) << err->message;
  g_error_free(err);
  RemoveTree(dir);
}

TEST(DitsrcErrors, UnsupportedSizeFailsTheStateChangeWithSettings) {
  PipelineRun run;
  g_object_set(run.src, "width", 100, nullptr);
  GError* err = StartError(run);
  ASSERT_NE(err, nullptr);
  EXPECT_TRUE(g_error_matches(err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS)) << err->message;
  EXPECT_NE(std::string(err->message).find("width 100"), std::string::npos) << err->message;
  EXPECT_EQ(std::string(err->message).find("Could not load model"), std::string::npos)
      << "the model loaded; its settings were refused: " << err->message;
  g_error_free(err);
}

// Downstream that accepts nothing the model makes (a width off the model's steps, a YUV
// colorimetry it does not make) gets an error that says what the model makes, ahead of basesrc's
// bare "not-negotiated", with both sides' caps in the details.
TEST(DitsrcErrors, NothingInCommonWithDownstreamSaysWhatTheModelMakes) {
  for (auto [caps, theirs] : {std::pair{"video/x-raw,width=65", "width=(int)65"},
                              {"video/x-raw,format=I420,colorimetry=bt2020", "colorimetry=(string)bt2020"}}) {
    SCOPED_TRACE(caps);
    PipelineRun run(("capsfilter caps=\"" + std::string(caps) + "\" ! fakesink").c_str());
    gst_element_set_state(run.pipeline, GST_STATE_PLAYING);
    GstMessage* m = PopMessage(run.bus, GST_MESSAGE_ERROR, 30000);
    ASSERT_NE(m, nullptr);
    GError* err = nullptr;
    gchar* details = nullptr;
    gst_message_parse_error(m, &err, &details);
    gst_message_unref(m);
    EXPECT_TRUE(g_error_matches(err, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION)) << err->message;
    const std::string message = err->message, debug = details ? details : "";
    for (const char* said : {"in steps of", "BT.709", "I420", "videoconvert"}) {
      EXPECT_NE(message.find(said), std::string::npos) << said << " missing from: " << message;
    }
    EXPECT_NE(debug.find(std::string("downstream accepts video/x-raw, ")), std::string::npos) << debug;
    EXPECT_NE(debug.find(theirs), std::string::npos) << "downstream's caps missing from: " << debug;
    g_error_free(err);
    g_free(details);
  }
}

// ---- cancellation and flushing ----

// Liveness, not a benchmark: the bound is twice the one-second goal.
TEST(DitsrcCancel, GoingToNullMidGenerationReturnsPromptly) {
  PipelineRun run;
  g_object_set(run.src, "steps", 1000, "frames", 64, "num-frames", G_GINT64_CONSTANT(-1), nullptr);
  gst_element_set_state(run.pipeline, GST_STATE_PLAYING);
  int step = 0, total = 0;
  while (step < 2) {
    GstMessage* m = PopMessage(run.bus, static_cast<GstMessageType>(GST_MESSAGE_ELEMENT | GST_MESSAGE_ERROR), 60000);
    ASSERT_NE(m, nullptr) << "no denoising progress";
    ASSERT_EQ(GST_MESSAGE_TYPE(m), GST_MESSAGE_ELEMENT);
    const GstStructure* st = gst_message_get_structure(m);
    if (g_strcmp0(gst_structure_get_string(st, "stage"), "denoise") == 0) {
      gst_structure_get_int(st, "step", &step);
      gst_structure_get_int(st, "total", &total);
    }
    gst_message_unref(m);
  }
  const double t0 = MonotonicSeconds();
  EXPECT_EQ(gst_element_set_state(run.pipeline, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  const double seconds = MonotonicSeconds() - t0;
  std::printf("[ timing ] PLAYING->NULL during denoise step %d/%d took %.3f s\n", step, total, seconds);
  EXPECT_LT(step, total) << "generation finished before the cancel: make the clip longer";
  EXPECT_LT(seconds, 2.0);
}

struct Handoffs {
  std::mutex mu;
  std::vector<GstClockTime> pts;
  std::vector<Frame> frames;
  size_t count() {
    std::lock_guard lk(mu);
    return pts.size();
  }
};

void OnHandoff(GstElement*, GstBuffer* buf, GstPad*, gpointer user) {
  auto* h = static_cast<Handoffs*>(user);
  std::lock_guard lk(h->mu);
  h->pts.push_back(GST_BUFFER_PTS(buf));
  h->frames.push_back(Bytes(buf));
}

bool WaitForBuffers(Handoffs& h, size_t n) {
  for (int i = 0; i < 600 && h.count() < n; ++i) g_usleep(50 * 1000);
  return h.count() >= n;
}

// In live mode PLAYING→PAUSED unschedules basesrc's clock wait (the frame waiting is dropped);
// PLAYING again must go on, no picture twice.
TEST(DitsrcLive, PauseAndResumeGoesOn) {
  PipelineRun run("video/x-raw,framerate=50/1 ! fakesink name=sink signal-handoffs=true sync=true");
  g_object_set(run.src, "is-live", TRUE, "num-frames", G_GINT64_CONSTANT(-1), nullptr);
  Handoffs h;
  GstElement* sink = gst_bin_get_by_name(GST_BIN(run.pipeline), "sink");
  g_signal_connect(sink, "handoff", G_CALLBACK(OnHandoff), &h);
  gst_object_unref(sink);
  gst_element_set_state(run.pipeline, GST_STATE_PLAYING);
  ASSERT_TRUE(WaitForBuffers(h, 5));
  EXPECT_EQ(gst_element_set_state(run.pipeline, GST_STATE_PAUSED), GST_STATE_CHANGE_NO_PREROLL);
  const size_t paused_at = h.count();
  gst_element_set_state(run.pipeline, GST_STATE_PLAYING);
  ASSERT_TRUE(WaitForBuffers(h, paused_at + 5)) << "no buffers after resuming";
  gst_element_set_state(run.pipeline, GST_STATE_NULL);
  std::lock_guard lk(h.mu);
  EXPECT_TRUE(std::is_sorted(h.pts.begin(), h.pts.end()));
  EXPECT_EQ(std::adjacent_find(h.pts.begin(), h.pts.end()), h.pts.end()) << "duplicate PTS";
  // Generation goes on across the pause: no picture comes twice.
  std::set<std::string> distinct;
  for (const Frame& f : h.frames) distinct.emplace(f.begin(), f.end());
  EXPECT_EQ(distinct.size(), h.frames.size()) << "a frame came twice";
  EXPECT_EQ(PopMessage(run.bus, GST_MESSAGE_ERROR, 0), nullptr);
}

// ---- live mode ----

void ExpectLatency(Harness& h, gboolean live, GstClockTime min) {
  GstQuery* q = gst_query_new_latency();
  ASSERT_TRUE(gst_pad_peer_query(h.get()->sinkpad, q));
  gboolean is_live = !live;
  GstClockTime lo = 0, hi = 0;
  gst_query_parse_latency(q, &is_live, &lo, &hi);
  EXPECT_EQ(is_live, live);
  EXPECT_EQ(lo, min);
  EXPECT_EQ(hi, GST_CLOCK_TIME_NONE);
  gst_query_unref(q);
}

TEST(DitsrcLive, LatencyIsOneFrameAtTheNegotiatedRate) {
  Harness h("video/x-raw,framerate=25/1");
  g_object_set(h.element(), "is-live", TRUE, nullptr);
  gst_harness_play(h.get());
  ASSERT_TRUE(gst_harness_crank_single_clock_wait(h.get()));  // a live source waits on the clock
  GstBuffer* b = h.Pull();
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(GST_BUFFER_DURATION(b), 40 * GST_MSECOND);
  gst_buffer_unref(b);
  ExpectLatency(h, TRUE, 40 * GST_MSECOND);
}

TEST(DitsrcLive, NotLiveReportsNoLatency) {
  Harness h;
  gst_harness_play(h.get());
  gst_buffer_unref(h.Pull());
  ExpectLatency(h, FALSE, 0);
}

// ---- changes while playing ----

// Seeded runs of one clip and 4 frames of its continuation; `change` is set after the first
// buffer, while clip 0 is still being generated (backpressure holds the worker a few frames ahead).
constexpr int kSeededFrames = kClipFrames + 4;

std::vector<Frame> SeededRun(const char* prompt, const char* change) {
  Harness h;
  h.Blocking();
  g_object_set(h.element(), "seed", G_GINT64_CONSTANT(5), "prompt", prompt, "num-frames",
               static_cast<gint64>(kSeededFrames), nullptr);
  gst_harness_play(h.get());
  std::vector<Frame> frames = h.PullFrames(1);
  if (change != nullptr) g_object_set(h.element(), "prompt", change, nullptr);
  for (Frame& f : h.PullFrames(kSeededFrames - 1)) frames.push_back(std::move(f));
  EXPECT_TRUE(h.WaitEos());
  return frames;
}

TEST(DitsrcPlaying, PromptChangeTakesEffectAtTheNextClip) {
  const char* first = "a red circle moving right";
  const char* second = "a blue square moving up";
  const auto steady = SeededRun(first, nullptr);
  const auto changed = SeededRun(first, second);
  const auto other = SeededRun(second, nullptr);
  ASSERT_EQ(steady.size(), static_cast<size_t>(kSeededFrames));
  ASSERT_EQ(changed.size(), steady.size());
  ASSERT_EQ(other.size(), steady.size());
  EXPECT_NE(steady[0], other[0]) << "the prompt should matter at all";
  for (int i = 0; i < kClipFrames; ++i) EXPECT_EQ(steady[i], changed[i]) << "frame " << i << " of clip 0 changed";
  for (int i = kClipFrames; i < kSeededFrames; ++i) EXPECT_NE(steady[i], changed[i]) << "frame " << i << " of clip 1";
}

// A property set while start() loads the model (after it copied the properties, before the
// element counts as started) reaches the stream before its first clip; a READY-only one is
// refused like any set while streaming. The set happens inside start(), from the engine's
// "loaded model" log line (a GStreamer log function on the state-change thread), so the
// window is hit every run rather than by timing.
struct SetDuringStart {
  GstElement* element;
  bool done = false;
};

void SetPropertiesOnLoadLog(GstDebugCategory* category, GstDebugLevel, const gchar*, const gchar*, gint, GObject*,
                            GstDebugMessage* message, gpointer user) {
  auto* set = static_cast<SetDuringStart*>(user);
  if (set->done || std::string(gst_debug_category_get_name(category)) != "ditsrc") return;
  const gchar* text = gst_debug_message_get(message);
  if (text == nullptr || std::string(text).find("loaded model") == std::string::npos) return;
  set->done = true;
  g_object_set(set->element, "prompt", "a blue square moving up", "width", 128, nullptr);  // width: refused
}

TEST(DitsrcProperties, SetWhileStartingReachesTheFirstClip) {
  Harness h;
  g_object_set(h.element(), "prompt", "a red circle moving right", nullptr);
  SetDuringStart set{h.element()};
  GstDebugCategory* category = nullptr;
  GST_DEBUG_CATEGORY_GET(category, "ditsrc");  // registered by the plugin, loaded for the harness
  ASSERT_NE(category, nullptr);
  const GstDebugLevel threshold = gst_debug_category_get_threshold(category);
  gst_debug_category_set_threshold(category, GST_LEVEL_INFO);
  // The functions, not their macros (which compare a function pointer with void*: -Wpedantic).
  (gst_debug_add_log_function)(SetPropertiesOnLoadLog, &set, nullptr);
  gst_harness_play(h.get());
  (gst_debug_remove_log_function)(SetPropertiesOnLoadLog);
  gst_debug_category_set_threshold(category, threshold);
  ASSERT_TRUE(set.done) << "the engine's load message did not come through the log";
  for (const Frame& f : h.PullFrames(kClipFrames)) EXPECT_FALSE(f.empty());
  const auto tags = TagsUntilEos(h);
  ASSERT_EQ(tags.size(), 1u);
  EXPECT_EQ(tags[0].first, "a blue square moving up") << "the prompt set during start() was lost";
  gint width = -1;
  g_object_get(h.element(), "width", &width, nullptr);
  EXPECT_EQ(width, 0) << "a READY-only property must be refused once start() began";
}

// ---- seeking ----

struct Pulled {
  std::vector<Frame> frames;
  std::vector<GstClockTime> pts;
};

// ditsrc ! appsink (not synchronised), frames pulled through appsink's action signals so that
// the test needs no libgstapp.
struct AppsinkRun : PipelineRun {
  GstElement* filter;
  GstElement* sink;
  explicit AppsinkRun(int64_t num_frames, const std::string& caps = "video/x-raw")
      : PipelineRun(("capsfilter name=filter caps=" + caps + " ! appsink name=sink sync=false").c_str()) {
    filter = gst_bin_get_by_name(GST_BIN(pipeline), "filter");
    sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
    g_object_set(src, "num-frames", static_cast<gint64>(num_frames), nullptr);
  }
  ~AppsinkRun() {
    gst_object_unref(filter);
    gst_object_unref(sink);
  }
  AppsinkRun(const AppsinkRun&) = delete;
  AppsinkRun& operator=(const AppsinkRun&) = delete;

  bool Play() {
    gst_element_set_state(pipeline, GST_STATE_PLAYING);
    return gst_element_get_state(pipeline, nullptr, nullptr, 60 * GST_SECOND) == GST_STATE_CHANGE_SUCCESS;
  }
  // The next sample, or nullptr at EOS (or after 60 s).
  GstSample* Pull() {
    GstSample* sample = nullptr;
    g_signal_emit_by_name(sink, "try-pull-sample", static_cast<GstClockTime>(60 * GST_SECOND), &sample);
    return sample;
  }
  // One buffer waits in appsink at most: ditsrc's streaming thread keeps pace with the test.
  void Backpressure() { g_object_set(sink, "max-buffers", 1u, nullptr); }
  // New caps on the capsfilter: ditsrc renegotiates before its next buffer.
  void Renegotiate(const char* caps) {
    GstCaps* c = gst_caps_from_string(caps);
    g_object_set(filter, "caps", c, nullptr);
    gst_caps_unref(c);
  }
  bool AtEos() {
    gboolean eos = FALSE;
    g_object_get(sink, "eos", &eos, nullptr);
    return eos;
  }
  // The pipeline's answer to the SEEKING query in time.
  struct Seeking {
    bool answered = false, seekable = false;
    gint64 start = -1, end = -1;
  };
  Seeking QuerySeeking() {
    Seeking r;
    GstQuery* q = gst_query_new_seeking(GST_FORMAT_TIME);
    r.answered = gst_element_query(pipeline, q);
    gboolean seekable = FALSE;
    gst_query_parse_seeking(q, nullptr, &seekable, &r.start, &r.end);
    r.seekable = seekable;
    gst_query_unref(q);
    return r;
  }
  // Pulls until EOS: every frame's bytes and PTS.
  Pulled PullToEos() {
    Pulled pulled;
    while (GstSample* sample = Pull()) {
      GstBuffer* b = gst_sample_get_buffer(sample);
      pulled.frames.push_back(Bytes(b));
      pulled.pts.push_back(GST_BUFFER_PTS(b));
      gst_sample_unref(sample);
    }
    EXPECT_TRUE(AtEos());
    return pulled;
  }
  // A flushing, accurate seek to frame `first`, up to frame `stop` (exclusive; -1: to the end).
  bool Seek(uint64_t first, int64_t stop = -1, double rate = 1.0) {
    const auto flags = static_cast<GstSeekFlags>(GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE);
    return gst_element_seek(pipeline, rate, GST_FORMAT_TIME, flags, GST_SEEK_TYPE_SET,
                            static_cast<gint64>(FrameTime(first, kFpsNum, kFpsDen)),
                            stop < 0 ? GST_SEEK_TYPE_NONE : GST_SEEK_TYPE_SET,
                            stop < 0 ? GST_CLOCK_TIME_NONE : FrameTime(static_cast<uint64_t>(stop), kFpsNum, kFpsDen));
  }
};

// What an unseeked run of n frames delivers: the frames a seek must reproduce.
std::vector<Frame> UnseekedFrames(int64_t n, const std::string& caps = "video/x-raw") {
  AppsinkRun run(n, caps);
  EXPECT_TRUE(run.Play());
  Pulled pulled = run.PullToEos();
  EXPECT_EQ(pulled.frames.size(), static_cast<size_t>(n));
  return pulled.frames;
}

void ExpectFramesFrom(const std::vector<Frame>& got, const std::vector<GstClockTime>& pts,
                      const std::vector<Frame>& unseeked, size_t first) {
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(pts[i], FrameTime(first + i, kFpsNum, kFpsDen)) << "buffer " << i << " after the seek";
    ASSERT_LT(first + i, unseeked.size());
    EXPECT_TRUE(got[i] == unseeked[first + i]) << "buffer " << i << " is not frame " << first + i;
  }
}

// Forward into the second clip, from the middle of the first: the stream is made again from its
// start and the frames from the target on are those of a run without the seek.
TEST(DitsrcSeek, ForwardIntoTheNextClipGivesTheSameFramesAsARunWithoutIt) {
  const std::vector<Frame> unseeked = UnseekedFrames(32);
  AppsinkRun run(32);
  ASSERT_TRUE(run.Play());
  for (int i = 0; i < 2; ++i) gst_sample_unref(run.Pull());
  ASSERT_TRUE(run.Seek(20));
  const auto [frames, pts] = run.PullToEos();
  EXPECT_EQ(frames.size(), 12u) << "frames 20 to 31";
  ExpectFramesFrom(frames, pts, unseeked, 20);
  EXPECT_EQ(PopMessage(run.bus, GST_MESSAGE_ERROR, 0), nullptr);
}

// Back, after EOS, with a stop: exactly the frames of [5, 9), then EOS again.
TEST(DitsrcSeek, BackAfterEosToARangeGivesExactlyThatRange) {
  const std::vector<Frame> unseeked = UnseekedFrames(kClipFrames);
  AppsinkRun run(kClipFrames);
  ASSERT_TRUE(run.Play());
  ASSERT_EQ(run.PullToEos().frames.size(), static_cast<size_t>(kClipFrames));
  ASSERT_TRUE(run.Seek(5, 9));
  const auto [frames, pts] = run.PullToEos();
  EXPECT_EQ(frames.size(), 4u);
  ExpectFramesFrom(frames, pts, unseeked, 5);
}

// As a player seeks while paused: the pipeline prerolls the target frame.
TEST(DitsrcSeek, WhilePausedPrerollsTheTargetFrame) {
  const std::vector<Frame> unseeked = UnseekedFrames(kClipFrames);
  AppsinkRun run(kClipFrames);
  gst_element_set_state(run.pipeline, GST_STATE_PAUSED);
  ASSERT_EQ(gst_element_get_state(run.pipeline, nullptr, nullptr, 60 * GST_SECOND), GST_STATE_CHANGE_SUCCESS);
  ASSERT_TRUE(run.Seek(11));
  ASSERT_EQ(gst_element_get_state(run.pipeline, nullptr, nullptr, 60 * GST_SECOND), GST_STATE_CHANGE_SUCCESS);
  GstSample* sample = nullptr;
  g_signal_emit_by_name(run.sink, "try-pull-preroll", static_cast<GstClockTime>(10 * GST_SECOND), &sample);
  ASSERT_NE(sample, nullptr);
  GstBuffer* b = gst_sample_get_buffer(sample);
  EXPECT_EQ(GST_BUFFER_PTS(b), FrameTime(11, kFpsNum, kFpsDen));
  EXPECT_TRUE(Bytes(b) == unseeked[11]);
  gst_sample_unref(sample);
}

// Denoising steps reported on the bus since the last call: a stream made again reports them anew.
int DrainDenoiseSteps(GstBus* bus) {
  const std::vector<Progress> progress = DrainProgress(bus);
  return static_cast<int>(
      std::count_if(progress.begin(), progress.end(), [](const Progress& p) { return p.stage == "denoise"; }));
}

// A seek that moves only the stop keeps the stream where it was: on from there (not from the
// segment's start) to the new stop, the frames those of an unseeked run, nothing made again.
TEST(DitsrcSeek, MovingOnlyTheStopGoesOnFromWhereTheStreamWas) {
  const std::vector<Frame> unseeked = UnseekedFrames(kClipFrames);
  AppsinkRun run(kClipFrames);
  run.Backpressure();  // else the whole clip may be in appsink, the stream at its end, by the seek
  ASSERT_TRUE(run.Play());
  for (int i = 0; i < 3; ++i) gst_sample_unref(run.Pull());
  EXPECT_GT(DrainDenoiseSteps(run.bus), 0);
  const auto flags = static_cast<GstSeekFlags>(GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE);
  ASSERT_TRUE(gst_element_seek(run.pipeline, 1.0, GST_FORMAT_TIME, flags, GST_SEEK_TYPE_NONE, 0, GST_SEEK_TYPE_SET,
                               static_cast<gint64>(FrameTime(12, kFpsNum, kFpsDen))));
  const auto [frames, pts] = run.PullToEos();
  ASSERT_FALSE(pts.empty());
  const uint64_t first = gst_util_uint64_scale(pts.front(), kFpsNum, static_cast<guint64>(kFpsDen) * GST_SECOND);
  EXPECT_GE(first, 3u) << "the stream went back to the segment's start";
  EXPECT_EQ(first + frames.size(), 12u) << "frames " << first << " on, up to the new stop";
  ExpectFramesFrom(frames, pts, unseeked, first);
  EXPECT_EQ(DrainDenoiseSteps(run.bus), 0) << "the clip was made again";
}

// A seek into the middle of the frame ditsrc handed out last (its push blocked behind a full
// appsink, then flushed) shows that frame, not the next one.
TEST(DitsrcSeek, IntoTheLastFrameHandedOutShowsIt) {
  const std::vector<Frame> unseeked = UnseekedFrames(kClipFrames);
  AppsinkRun run(kClipFrames);
  run.Backpressure();
  ASSERT_TRUE(run.Play());
  for (int i = 0; i < 3; ++i) gst_sample_unref(run.Pull());
  g_usleep(300 * 1000);  // frame 3 waits in appsink, frame 4's push is blocked behind it
  const auto flags = static_cast<GstSeekFlags>(GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE);
  const GstClockTime mid4 = (FrameTime(4, kFpsNum, kFpsDen) + FrameTime(5, kFpsNum, kFpsDen)) / 2;
  ASSERT_TRUE(gst_element_seek_simple(run.pipeline, GST_FORMAT_TIME, flags, static_cast<gint64>(mid4)));
  const auto [frames, pts] = run.PullToEos();
  ASSERT_FALSE(frames.empty());
  ExpectFramesFrom(frames, pts, unseeked, 4);
  EXPECT_EQ(frames.size(), static_cast<size_t>(kClipFrames - 4));
}

// After a stop inside a frame (the stream stopped there, that frame out), a seek in time that
// moves only the stop goes on with the next frame: none comes twice.
TEST(DitsrcSeek, StopOnlySeekAfterAStopInsideAFrameGoesOnWithTheNext) {
  const std::vector<Frame> unseeked = UnseekedFrames(kClipFrames);
  AppsinkRun run(kClipFrames);
  ASSERT_TRUE(run.Play());
  const auto flags = static_cast<GstSeekFlags>(GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE);
  const GstClockTime mid5 = (FrameTime(5, kFpsNum, kFpsDen) + FrameTime(6, kFpsNum, kFpsDen)) / 2;
  ASSERT_TRUE(gst_element_seek(run.pipeline, 1.0, GST_FORMAT_TIME, flags, GST_SEEK_TYPE_SET, 0, GST_SEEK_TYPE_SET,
                               static_cast<gint64>(mid5)));
  const auto [first, first_pts] = run.PullToEos();
  ExpectFramesFrom(first, first_pts, unseeked, 0);
  EXPECT_EQ(first.size(), 6u) << "frames 0 to 5, the stop inside frame 5";
  ASSERT_TRUE(gst_element_seek(run.pipeline, 1.0, GST_FORMAT_TIME, flags, GST_SEEK_TYPE_NONE, 0, GST_SEEK_TYPE_SET,
                               static_cast<gint64>(FrameTime(10, kFpsNum, kFpsDen))));
  const auto [rest, rest_pts] = run.PullToEos();
  ExpectFramesFrom(rest, rest_pts, unseeked, 6);
  EXPECT_EQ(rest.size(), 4u) << "frames 6 to 9";
}

// A refused seek leaves nothing behind: the seek after it goes where it says.
TEST(DitsrcSeek, ARefusedSeekDoesNotChangeTheNext) {
  const std::vector<Frame> unseeked = UnseekedFrames(kClipFrames);
  AppsinkRun run(kClipFrames);
  run.Backpressure();
  ASSERT_TRUE(run.Play());
  for (int i = 0; i < 6; ++i) gst_sample_unref(run.Pull());
  // A stop past the end in frames: refused.
  EXPECT_FALSE(gst_element_seek(run.pipeline, 1.0, GST_FORMAT_DEFAULT, GST_SEEK_FLAG_FLUSH, GST_SEEK_TYPE_NONE, 0,
                                GST_SEEK_TYPE_END, 5));
  const auto flags = static_cast<GstSeekFlags>(GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE);
  ASSERT_TRUE(gst_element_seek_simple(run.pipeline, GST_FORMAT_TIME, flags,
                                      static_cast<gint64>(FrameTime(3, kFpsNum, kFpsDen))));
  const auto [frames, pts] = run.PullToEos();
  ExpectFramesFrom(frames, pts, unseeked, 3);
  EXPECT_EQ(frames.size(), static_cast<size_t>(kClipFrames - 3));
}

// Flushing seeks that move only the stop, one after another while frames flow: each keeps the
// stream (a frame basesrc dropped for the flush goes out again, under its own time and offset),
// so every frame is the unseeked run's at its time and none is made again.
TEST(DitsrcSeek, RepeatedStopSeeksKeepTheStream) {
  const std::vector<Frame> unseeked = UnseekedFrames(kClipFrames);
  AppsinkRun run(kClipFrames);
  run.Backpressure();
  ASSERT_TRUE(run.Play());
  gst_sample_unref(run.Pull());
  EXPECT_GT(DrainDenoiseSteps(run.bus), 0);
  const auto flags = static_cast<GstSeekFlags>(GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE);
  std::vector<Frame> frames;
  std::vector<GstClockTime> pts;
  for (int i = 0; i < 12; ++i) {
    const uint64_t stop = i % 2 ? kClipFrames - 1 : kClipFrames;
    ASSERT_TRUE(gst_element_seek(run.pipeline, 1.0, GST_FORMAT_TIME, flags, GST_SEEK_TYPE_NONE, 0, GST_SEEK_TYPE_SET,
                                 static_cast<gint64>(FrameTime(stop, kFpsNum, kFpsDen))));
    GstSample* sample = run.Pull();
    if (sample == nullptr) break;  // at the stop
    GstBuffer* b = gst_sample_get_buffer(sample);
    EXPECT_EQ(GST_BUFFER_PTS(b), FrameTime(GST_BUFFER_OFFSET(b), kFpsNum, kFpsDen));
    frames.push_back(Bytes(b));
    pts.push_back(GST_BUFFER_PTS(b));
    gst_sample_unref(sample);
  }
  ASSERT_FALSE(frames.empty());
  for (size_t i = 0; i < frames.size(); ++i) {
    const uint64_t n = gst_util_uint64_scale(pts[i], kFpsNum, static_cast<guint64>(kFpsDen) * GST_SECOND);
    ASSERT_LT(n, unseeked.size());
    EXPECT_TRUE(frames[i] == unseeked[n]) << "the frame at " << n;
    if (i > 0) {
      EXPECT_GT(pts[i], pts[i - 1]);
    }
  }
  EXPECT_EQ(DrainDenoiseSteps(run.bus), 0) << "the clip was made again";
}

// A non-flushing seek that moves only the stop: the frames go on without a gap, nothing made again.
TEST(DitsrcSeek, NonFlushingStopSeekGoesOnWithoutAGap) {
  const std::vector<Frame> unseeked = UnseekedFrames(kClipFrames);
  AppsinkRun run(kClipFrames);
  run.Backpressure();
  ASSERT_TRUE(run.Play());
  for (int i = 0; i < 2; ++i) gst_sample_unref(run.Pull());
  EXPECT_GT(DrainDenoiseSteps(run.bus), 0);
  // It waits for the streaming thread, which may wait for this thread to pull: made from another.
  std::atomic<bool> seek_ok{false};
  std::thread seeker([&] {
    seek_ok = gst_element_seek(run.pipeline, 1.0, GST_FORMAT_TIME, GST_SEEK_FLAG_ACCURATE, GST_SEEK_TYPE_NONE, 0,
                               GST_SEEK_TYPE_SET, static_cast<gint64>(FrameTime(10, kFpsNum, kFpsDen)));
  });
  const auto [frames, pts] = run.PullToEos();
  seeker.join();
  EXPECT_TRUE(seek_ok);
  ExpectFramesFrom(frames, pts, unseeked, 2);
  EXPECT_EQ(frames.size(), 8u) << "frames 2 to 9";
  EXPECT_EQ(DrainDenoiseSteps(run.bus), 0) << "the clip was made again";
}

// The offset of the first buffer ditsrc pushes after a flush (sinks drop one that ends where the
// segment starts, so this is watched on ditsrc's pad).
struct FirstAfterFlush {
  std::mutex mu;
  bool flushed = false;
  int64_t offset = -1;
};
GstPadProbeReturn WatchFirstAfterFlush(GstPad*, GstPadProbeInfo* info, gpointer user) {
  auto* w = static_cast<FirstAfterFlush*>(user);
  std::lock_guard lk(w->mu);
  if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_EVENT_FLUSH) {
    if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_FLUSH_STOP) w->flushed = true;
  } else if (w->flushed && w->offset < 0) {
    w->offset = static_cast<int64_t>(GST_BUFFER_OFFSET(GST_PAD_PROBE_INFO_BUFFER(info)));
  }
  return GST_PAD_PROBE_OK;
}

// At a rate whose frame times are rounded to whole nanoseconds (3/1: 333333333 ns), a seek to a
// frame's time exactly starts at that frame, not at the one before it.
TEST(DitsrcSeek, ToAFramesTimeExactlyStartsAtThatFrame) {
  AppsinkRun run(kClipFrames, "video/x-raw,framerate=3/1");
  ASSERT_TRUE(run.Play());
  gst_sample_unref(run.Pull());
  FirstAfterFlush watch;
  GstPad* pad = gst_element_get_static_pad(run.src, "src");
  gst_pad_add_probe(pad, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_FLUSH),
                    WatchFirstAfterFlush, &watch, nullptr);
  gst_object_unref(pad);
  const auto flags = static_cast<GstSeekFlags>(GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE);
  ASSERT_TRUE(gst_element_seek_simple(run.pipeline, GST_FORMAT_TIME, flags, static_cast<gint64>(FrameTime(5, 3, 1))));
  GstSample* sample = run.Pull();
  ASSERT_NE(sample, nullptr);
  EXPECT_EQ(GST_BUFFER_PTS(gst_sample_get_buffer(sample)), FrameTime(5, 3, 1));
  gst_sample_unref(sample);
  std::lock_guard lk(watch.mu);
  EXPECT_EQ(watch.offset, 5) << "ditsrc pushed a frame before the target";
}

// The stream's duration is known to seeks relative to its end and to the SEEKING query.
TEST(DitsrcSeek, RelativeToTheEndAndTheSeekingQueryKnowTheDuration) {
  const std::vector<Frame> unseeked = UnseekedFrames(kClipFrames);
  AppsinkRun run(kClipFrames);
  ASSERT_TRUE(run.Play());
  gst_sample_unref(run.Pull());
  const AppsinkRun::Seeking seeking = run.QuerySeeking();
  EXPECT_TRUE(seeking.answered && seeking.seekable);
  EXPECT_EQ(seeking.start, 0);
  EXPECT_EQ(seeking.end, static_cast<gint64>(FrameTime(kClipFrames, kFpsNum, kFpsDen)));
  const auto flags = static_cast<GstSeekFlags>(GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE);
  ASSERT_TRUE(gst_element_seek(run.pipeline, 1.0, GST_FORMAT_TIME, flags, GST_SEEK_TYPE_END,
                               -static_cast<gint64>(FrameTime(4, kFpsNum, kFpsDen)), GST_SEEK_TYPE_NONE, 0));
  const auto [frames, pts] = run.PullToEos();
  EXPECT_EQ(frames.size(), 4u) << "the last 4 frames";
  ExpectFramesFrom(frames, pts, unseeked, kClipFrames - 4);
}

// Past the last frame (num-frames): EOS, no frame, no error.
TEST(DitsrcSeek, PastTheEndIsEos) {
  AppsinkRun run(kClipFrames);
  ASSERT_TRUE(run.Play());
  gst_sample_unref(run.Pull());
  ASSERT_TRUE(run.Seek(kClipFrames + 3));
  GstSample* sample = run.Pull();
  EXPECT_EQ(sample, nullptr);
  if (sample != nullptr) gst_sample_unref(sample);
  EXPECT_TRUE(run.AtEos());
  EXPECT_EQ(PopMessage(run.bus, GST_MESSAGE_ERROR, 0), nullptr);
}

// Frames exist only first to last (reverse playback is refused), and a live source is not seekable.
TEST(DitsrcSeek, ReverseRatesAndLiveStreamsAreRefused) {
  {
    AppsinkRun run(kClipFrames);
    ASSERT_TRUE(run.Play());
    gst_sample_unref(run.Pull());
    EXPECT_FALSE(run.Seek(0, 8, -1.0));
    const AppsinkRun::Seeking seeking = run.QuerySeeking();
    EXPECT_TRUE(seeking.answered && seeking.seekable);
  }
  AppsinkRun live(-1);
  g_object_set(live.src, "is-live", TRUE, nullptr);
  gst_element_set_state(live.pipeline, GST_STATE_PLAYING);
  gst_sample_unref(live.Pull());
  const AppsinkRun::Seeking seeking = live.QuerySeeking();
  EXPECT_TRUE(seeking.answered);
  EXPECT_FALSE(seeking.seekable);
  EXPECT_FALSE(live.Seek(8));
}

// In frames (GST_FORMAT_DEFAULT), as an editor seeks: basesrc converts through ditsrc's CONVERT
// query, and the frames are those of an unseeked run.
TEST(DitsrcSeek, InFramesGivesThoseFrames) {
  const std::vector<Frame> unseeked = UnseekedFrames(kClipFrames);
  AppsinkRun run(kClipFrames);
  ASSERT_TRUE(run.Play());
  gst_sample_unref(run.Pull());
  const auto flags = static_cast<GstSeekFlags>(GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE);
  ASSERT_TRUE(
      gst_element_seek(run.pipeline, 1.0, GST_FORMAT_DEFAULT, flags, GST_SEEK_TYPE_SET, 5, GST_SEEK_TYPE_SET, 9));
  const auto [frames, pts] = run.PullToEos();
  EXPECT_EQ(frames.size(), 4u) << "frames 5 to 8";
  ExpectFramesFrom(frames, pts, unseeked, 5);
  // As gst_element_seek_simple() seeks: a stop of -1, to the end.
  ASSERT_TRUE(gst_element_seek_simple(run.pipeline, GST_FORMAT_DEFAULT, flags, 10));
  const auto [rest, rest_pts] = run.PullToEos();
  EXPECT_EQ(rest.size(), 6u) << "frames 10 to 15";
  ExpectFramesFrom(rest, rest_pts, unseeked, 10);
  // In bytes from the end: the last byte is in the last frame.
  ASSERT_TRUE(
      gst_element_seek(run.pipeline, 1.0, GST_FORMAT_BYTES, flags, GST_SEEK_TYPE_END, -1, GST_SEEK_TYPE_NONE, -1));
  const auto [last, last_pts] = run.PullToEos();
  EXPECT_EQ(last.size(), 1u) << "the last frame";
  ExpectFramesFrom(last, last_pts, unseeked, kClipFrames - 1);
}

// A non-flushing seek in frames goes on in running time (its segment's base is where the stream
// was, as a seek in time keeps it) and keeps the stream's duration; a seek from the end in frames
// gives the last frames.
TEST(DitsrcSeek, InFramesKeepsTheRunningTimeAndSeeksFromTheEnd) {
  const std::vector<Frame> unseeked = UnseekedFrames(32);
  AppsinkRun run(32);
  run.Backpressure();
  ASSERT_TRUE(run.Play());
  GstClockTime last_running = 0;
  for (int i = 0; i < 6; ++i) {
    GstSample* sample = run.Pull();
    ASSERT_NE(sample, nullptr);
    last_running = gst_segment_to_running_time(gst_sample_get_segment(sample), GST_FORMAT_TIME,
                                               GST_BUFFER_PTS(gst_sample_get_buffer(sample)));
    gst_sample_unref(sample);
  }
  // A non-flushing seek waits for the streaming thread, which may be waiting for this thread to
  // pull: it is made from another.
  std::atomic<bool> seek_done{false}, seek_ok{false};
  std::thread seeker([&] {
    seek_ok = gst_element_seek(run.pipeline, 1.0, GST_FORMAT_DEFAULT, GST_SEEK_FLAG_ACCURATE, GST_SEEK_TYPE_SET, 20,
                               GST_SEEK_TYPE_NONE, -1);
    seek_done = true;
  });
  bool jumped = false;
  guint64 next = 6;
  while (GstSample* sample = run.Pull()) {
    GstBuffer* b = gst_sample_get_buffer(sample);
    if (GST_BUFFER_OFFSET(b) != next) {
      EXPECT_EQ(GST_BUFFER_OFFSET(b), 20u) << "the seek's target after offset " << next - 1;
      jumped = true;
    }
    next = GST_BUFFER_OFFSET(b) + 1;
    const GstSegment* segment = gst_sample_get_segment(sample);
    const GstClockTime running = gst_segment_to_running_time(segment, GST_FORMAT_TIME, GST_BUFFER_PTS(b));
    EXPECT_GT(running, last_running) << "running time went back at offset " << GST_BUFFER_OFFSET(b);
    last_running = running;
    if (GST_BUFFER_OFFSET(b) >= 20) {
      EXPECT_EQ(segment->duration, static_cast<gint64>(FrameTime(32, kFpsNum, kFpsDen)));
      EXPECT_TRUE(Bytes(b) == unseeked[GST_BUFFER_OFFSET(b)]) << "offset " << GST_BUFFER_OFFSET(b);
    }
    gst_sample_unref(sample);
  }
  seeker.join();
  EXPECT_TRUE(seek_done && seek_ok);
  EXPECT_TRUE(jumped) << "no frame was skipped: the seek came too late";
  EXPECT_EQ(next, 32u) << "to the end";
  const auto flags = static_cast<GstSeekFlags>(GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE);
  ASSERT_TRUE(
      gst_element_seek(run.pipeline, 1.0, GST_FORMAT_DEFAULT, flags, GST_SEEK_TYPE_END, -4, GST_SEEK_TYPE_NONE, -1));
  const auto [frames, pts] = run.PullToEos();
  EXPECT_EQ(frames.size(), 4u) << "the last 4 frames";
  ExpectFramesFrom(frames, pts, unseeked, 28);
}

// A seek in frames queued in READY, before the rate is negotiated (25/1 here, not the model's
// 8/1): the frames asked for, at their times at the negotiated rate.
TEST(DitsrcSeek, InFramesBeforeNegotiationGivesThoseFrames) {
  const std::vector<Frame> unseeked = UnseekedFrames(40);
  AppsinkRun run(40, "video/x-raw,framerate=25/1");
  gst_element_set_state(run.pipeline, GST_STATE_READY);
  ASSERT_EQ(gst_element_get_state(run.pipeline, nullptr, nullptr, 10 * GST_SECOND), GST_STATE_CHANGE_SUCCESS);
  const auto flags = static_cast<GstSeekFlags>(GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE);
  ASSERT_TRUE(gst_element_send_event(
      run.src, gst_event_new_seek(1.0, GST_FORMAT_DEFAULT, flags, GST_SEEK_TYPE_SET, 20, GST_SEEK_TYPE_SET, 30)));
  ASSERT_TRUE(run.Play());
  const auto [frames, pts] = run.PullToEos();
  ASSERT_EQ(frames.size(), 10u) << "frames 20 to 29";
  for (size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(pts[i], FrameTime(20 + i, 25, 1)) << "frame " << 20 + i;
    EXPECT_TRUE(frames[i] == unseeked[20 + i]) << "frame " << 20 + i;
  }
}

// ---- queries ----

gint64 Convert(GstElement* e, GstFormat from, gint64 value, GstFormat to) {
  gint64 out = -2;
  EXPECT_TRUE(gst_element_query_convert(e, from, value, to, &out))
      << gst_format_get_name(from) << " " << value << " to " << gst_format_get_name(to);
  return out;
}

// At 3/1 in 64x64 RGB (12288 bytes a frame): frames, time and bytes, both ways.
TEST(DitsrcQueries, ConvertBetweenFramesTimeAndBytes) {
  AppsinkRun run(kClipFrames, "video/x-raw,format=RGB,framerate=3/1");
  ASSERT_TRUE(run.Play());
  gst_sample_unref(run.Pull());
  EXPECT_EQ(Convert(run.src, GST_FORMAT_DEFAULT, 5, GST_FORMAT_TIME), 1'666'666'666);
  EXPECT_EQ(Convert(run.src, GST_FORMAT_TIME, 1'666'666'666, GST_FORMAT_DEFAULT), 5);
  EXPECT_EQ(Convert(run.src, GST_FORMAT_TIME, 1'666'666'665, GST_FORMAT_DEFAULT), 4);
  EXPECT_EQ(Convert(run.src, GST_FORMAT_DEFAULT, 2, GST_FORMAT_BYTES), 2 * 12288);
  EXPECT_EQ(Convert(run.src, GST_FORMAT_BYTES, 2 * 12288 + 5, GST_FORMAT_DEFAULT), 2);
  EXPECT_EQ(Convert(run.src, GST_FORMAT_BYTES, 3 * 12288, GST_FORMAT_TIME), 1'000'000'000);
  EXPECT_EQ(Convert(run.src, GST_FORMAT_DEFAULT, -1, GST_FORMAT_TIME), -1) << "none stays none";
  gint64 out = 0;
  EXPECT_FALSE(gst_element_query_convert(run.src, GST_FORMAT_PERCENT, 5, GST_FORMAT_TIME, &out));
}

// ---- renegotiation mid-stream ----

struct Delivered {
  Frame bytes;
  GstClockTime pts, duration;
  guint64 offset;
  int fps_n, fps_d;
  GstVideoFormat format;
};

// Waits (up to 30 s) for the engine to have decoded `frames` frames of its first clip.
bool WaitForDecoded(GstBus* bus, int frames) {
  while (GstMessage* m = PopMessage(bus, GST_MESSAGE_ELEMENT, 30000)) {
    const GstStructure* st = gst_message_get_structure(m);
    int step = 0;
    const bool done = gst_structure_has_name(st, "ditstream-progress") &&
                      g_strcmp0(gst_structure_get_string(st, "stage"), "decode") == 0 &&
                      gst_structure_get_int(st, "step", &step) && step >= frames;
    gst_message_unref(m);
    if (done) return true;
  }
  return false;
}

// Pulls 3 frames, waits until ditsrc has frames queued ahead (decoded past the ones appsink and
// the blocked push hold), has the capsfilter ask for `caps`, then pulls to EOS: every frame with
// the caps it came in, and whether ditsrc posted DURATION_CHANGED.
struct AcrossRenegotiation {
  std::vector<Delivered> delivered;
  bool duration_changed = false;
};
AcrossRenegotiation RunAcrossRenegotiation(const char* first_caps, const char* caps, int64_t frames = kClipFrames) {
  AppsinkRun run(frames, first_caps);
  run.Backpressure();
  EXPECT_TRUE(run.Play());
  std::vector<Delivered> delivered;
  while (GstSample* sample = run.Pull()) {
    GstBuffer* b = gst_sample_get_buffer(sample);
    GstVideoInfo info;
    EXPECT_TRUE(gst_video_info_from_caps(&info, gst_sample_get_caps(sample)));
    delivered.push_back({Bytes(b), GST_BUFFER_PTS(b), GST_BUFFER_DURATION(b), GST_BUFFER_OFFSET(b), info.fps_n,
                         info.fps_d, GST_VIDEO_INFO_FORMAT(&info)});
    gst_sample_unref(sample);
    if (delivered.size() == 3) {
      EXPECT_TRUE(WaitForDecoded(run.bus, 8));
      run.Renegotiate(caps);
    }
  }
  EXPECT_TRUE(run.AtEos());
  bool duration_changed = false;
  while (GstMessage* m =
             PopMessage(run.bus, static_cast<GstMessageType>(GST_MESSAGE_ERROR | GST_MESSAGE_DURATION_CHANGED), 0)) {
    EXPECT_NE(GST_MESSAGE_TYPE(m), GST_MESSAGE_ERROR);
    duration_changed = duration_changed || GST_MESSAGE_SRC(m) == GST_OBJECT(run.src);
    gst_message_unref(m);
  }
  return {std::move(delivered), duration_changed};
}

// Downstream asks for 16/1 after a few frames at 8/1: the frames go on from the last one's end,
// a sixteenth of a second each, never back in time, and the pictures are the stream's next ones.
TEST(DitsrcRenegotiation, ANewRateGoesOnFromTheLastFramesEnd) {
  const std::vector<Frame> unseeked = UnseekedFrames(kClipFrames, "video/x-raw,framerate=8/1");
  const auto [got, duration_changed] =
      RunAcrossRenegotiation("video/x-raw,framerate=8/1", "video/x-raw,framerate=16/1");
  EXPECT_TRUE(duration_changed) << "players must learn that the stream got shorter";
  ASSERT_EQ(got.size(), static_cast<size_t>(kClipFrames));
  size_t first_at_16 = got.size();
  for (size_t i = 0; i < got.size(); ++i) {
    const Delivered& d = got[i];
    EXPECT_EQ(d.offset, i);
    EXPECT_TRUE(d.bytes == unseeked[i]) << "frame " << i;
    EXPECT_EQ(d.duration, FrameTime(1, d.fps_n, d.fps_d)) << "frame " << i << " lasts a frame at its caps' rate";
    EXPECT_EQ(d.pts, i == 0 ? 0 : got[i - 1].pts + got[i - 1].duration) << "frame " << i;
    if (d.fps_n == 16 && first_at_16 == got.size()) first_at_16 = i;
    if (i > first_at_16) {
      EXPECT_EQ(d.fps_n, 16) << "frame " << i;
    }
  }
  EXPECT_GE(first_at_16, 3u);
  ASSERT_LT(first_at_16, got.size()) << "the rate never changed";
  EXPECT_EQ(got.back().pts, FrameTime(first_at_16, 8, 1) + FrameTime(kClipFrames - 1 - first_at_16, 16, 1));
}

// The largest difference between two I420 frames' luma samples, and between their chroma samples.
std::pair<int, int> I420Difference(const Frame& a, const Frame& b, int width, int height) {
  const size_t luma = static_cast<size_t>(width) * height;
  int y = 0, c = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const int d = std::abs(static_cast<int>(a[i]) - static_cast<int>(b[i]));
    (i < luma ? y : c) = std::max(i < luma ? y : c, d);
  }
  return {y, c};
}

// RGB, then I420 after a few frames, in a stream of two clips. The engine makes I420 from the next
// clip on; the frames made before (the rest of the first clip, those queued) are converted, so no
// frame is made again and each timestamp keeps its picture: the engine's own I420 of that frame
// up to rounding (GstVideoConverter from 8-bit RGB, the engine from its float frame), and exactly
// it from the second clip on.
TEST(DitsrcRenegotiation, ANewFormatKeepsEachPictureAtItsTime) {
  constexpr int64_t kFrames = 28;  // 16 + 12 (the second clip continues 4 frames of the first)
  const std::vector<Frame> rgb = UnseekedFrames(kFrames, "video/x-raw,format=RGB");
  const std::vector<Frame> i420 = UnseekedFrames(kFrames, "video/x-raw,format=I420");
  const std::vector<Delivered> got =
      RunAcrossRenegotiation("video/x-raw,format=RGB", "video/x-raw,format=I420", kFrames).delivered;
  ASSERT_EQ(got.size(), static_cast<size_t>(kFrames));
  bool changed = false;
  int converted = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const Delivered& d = got[i];
    EXPECT_EQ(d.offset, i);
    EXPECT_EQ(d.pts, FrameTime(i, kFpsNum, kFpsDen)) << "frame " << i;
    const bool is_i420 = d.format == GST_VIDEO_FORMAT_I420;
    if (changed) {
      EXPECT_TRUE(is_i420) << "frame " << i;
    }
    changed = changed || is_i420;
    if (!is_i420 || d.bytes == i420[i]) {
      EXPECT_TRUE(d.bytes == (is_i420 ? i420 : rgb)[i]) << "frame " << i << " is not the stream's frame " << i;
      continue;
    }
    ++converted;
    EXPECT_LT(i, static_cast<size_t>(kClipFrames)) << "the second clip is made in I420";
    const auto [luma, chroma] = I420Difference(d.bytes, i420[i], kWidth, kHeight);
    EXPECT_LE(luma, 1) << "frame " << i;
    EXPECT_LE(chroma, 2) << "frame " << i;
  }
  EXPECT_TRUE(changed) << "the format never changed";
  EXPECT_GT(converted, 0) << "no frame made before the change came converted";
}

// Live, a new rate is a new latency (one frame): ditsrc asks the pipeline to recompute it, or
// a sink would keep holding frames for the old, longer one.
TEST(DitsrcRenegotiation, ANewLiveRateAsksForANewLatency) {
  AppsinkRun run(-1, "video/x-raw,framerate=8/1");
  g_object_set(run.src, "is-live", TRUE, nullptr);
  gst_element_set_state(run.pipeline, GST_STATE_PLAYING);  // live: no preroll to wait for
  gst_sample_unref(run.Pull());
  while (GstMessage* m = PopMessage(run.bus, GST_MESSAGE_LATENCY, 0)) gst_message_unref(m);
  run.Renegotiate("video/x-raw,framerate=25/1");
  bool asked = false;
  for (int i = 0; i < 20 && !asked; ++i) {
    if (GstSample* sample = run.Pull()) gst_sample_unref(sample);
    while (GstMessage* m = PopMessage(run.bus, GST_MESSAGE_LATENCY, 0)) {
      asked = asked || GST_MESSAGE_SRC(m) == GST_OBJECT(run.src);
      gst_message_unref(m);
    }
  }
  EXPECT_TRUE(asked);
}

// Frames seek (InFramesGivesThoseFrames), so the SEEKING query in frames says so; live, the
// duration in time is unknown (timestamps are running times), so a position never passes it.
TEST(DitsrcQueries, SeekingInFramesAndNoLiveDuration) {
  {
    AppsinkRun run(kClipFrames);
    ASSERT_TRUE(run.Play());
    gst_sample_unref(run.Pull());
    GstQuery* q = gst_query_new_seeking(GST_FORMAT_DEFAULT);
    ASSERT_TRUE(gst_element_query(run.src, q));
    gboolean seekable = FALSE;
    gint64 start = -2, end = -2;
    gst_query_parse_seeking(q, nullptr, &seekable, &start, &end);
    gst_query_unref(q);
    EXPECT_TRUE(seekable);
    EXPECT_EQ(start, 0);
    EXPECT_EQ(end, kClipFrames);
  }
  AppsinkRun live(kClipFrames);
  g_object_set(live.src, "is-live", TRUE, nullptr);
  gst_element_set_state(live.pipeline, GST_STATE_PLAYING);
  gst_sample_unref(live.Pull());
  gint64 duration = 0;
  const gboolean answered = gst_element_query_duration(live.src, GST_FORMAT_TIME, &duration);
  EXPECT_TRUE(!answered || duration == -1) << "a live duration of " << duration;
}

// ---- the bundled model, once it exists ----

TEST(DitsrcBundled, DemoModelStreamsOneClip) {
  const char* root = std::getenv("DS_SOURCE_ROOT");
  if (root == nullptr || !std::filesystem::exists(std::filesystem::path(root) / "models/demo/config.json")) {
    GTEST_SKIP() << "models/demo is not there yet";
  }
  GstHarness* h = gst_harness_new("ditsrc");
  g_object_set(h->element, "threads", 2, nullptr);
  gst_harness_play(h);
  GstBuffer* b = gst_harness_pull(h);
  ASSERT_NE(b, nullptr);
  gst_buffer_unref(b);
  GstCaps* caps = gst_pad_get_current_caps(h->sinkpad);
  GstVideoInfo info;
  EXPECT_TRUE(gst_video_info_from_caps(&info, caps));
  gst_caps_unref(caps);
  EXPECT_EQ(GST_VIDEO_INFO_WIDTH(&info), 64);
  EXPECT_EQ(GST_VIDEO_INFO_HEIGHT(&info), 64);
  EXPECT_EQ(GST_VIDEO_INFO_FPS_N(&info), 8);
  EXPECT_EQ(GST_VIDEO_INFO_FPS_D(&info), 1);
  bool eos = false;
  while (GstEvent* e = eos ? nullptr : gst_harness_pull_event(h)) {
    eos = GST_EVENT_TYPE(e) == GST_EVENT_EOS;
    gst_event_unref(e);
  }
  EXPECT_TRUE(eos);
  EXPECT_EQ(gst_harness_buffers_received(h), 16u) << "one clip of the demo's 16 frames";
  gst_harness_teardown(h);
}

}  // namespace
