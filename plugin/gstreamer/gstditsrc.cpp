// ditsrc: streams the frames of the ditstream engine as raw video.
//
// Threads: start()/stop() run on the state-change thread, set_caps()/fill() on the streaming
// thread. A worker thread owns ds_generate() and feeds a bounded queue that fill() pops: a slow
// consumer holds generation back, and the streaming thread never blocks inside the engine, so
// unlock() can always wake it.
#include "gstditsrc.h"

#include <gst/base/gstpushsrc.h>
#include <gst/video/video.h>

#include <algorithm>
#include <condition_variable>
#include <cstdarg>
#include <cstring>
#include <deque>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ditsrc_options.h"
#include "ditstream.h"
#include "frame_converter.h"
#include "frame_copy.h"
#include "pixel_formats.h"
#include "timeline.h"

GST_DEBUG_CATEGORY_STATIC(ditsrc_debug);
#define GST_CAT_DEFAULT ditsrc_debug

namespace {

// Frames generated ahead of the consumer: enough to hide per-frame decode jitter, few enough that
// backpressure reaches the engine quickly and memory stays small at large sizes.
constexpr size_t kQueueDepth = 4;
constexpr int64_t kEndless = -1;

enum Prop : guint { kPropNumFrames = 1, kPropIsLive, kPropProvenance, kPropTableFirst };

// A frame as the engine delivered it, in the negotiated format: its planes one after the other,
// each of rows[i] rows of stride[i] bytes.
struct Item {
  enum Kind { kFrame, kEnd, kError } kind = kFrame;
  std::vector<uint8_t> bytes;
  ds_pixel_format format = DS_PIXEL_RGB;
  ds_yuv_matrix matrix = DS_YUV_BT601;  // I420's and NV12's
  int planes = 0, stride[3] = {}, rows[3] = {};
  int width = 0, height = 0;
  std::string error;
  // The first frame of a clip: its prompt and provenance JSON (ds_get_provenance), sent as tags
  // ahead of it. Empty otherwise, or with the provenance property off.
  std::string title, provenance;
};

struct State {
  std::mutex worker_mu;  // serialises starting and joining the worker; taken before mu
  std::mutex mu;         // guards everything below
  std::condition_variable cv;

  // Properties. values[i] is table option i as text: what get_property returns, start() applies.
  ds_generator* check = nullptr;  // validates values in set_property; never loads
  std::vector<std::string> values;
  std::map<int, std::string> pending;  // between-clip options changed while started
  int64_t num_frames = 0;
  bool provenance = true;

  // From start() to stop().
  ds_generator* gen = nullptr;
  ds_model_info model{};
  bool started = false;
  // start() has taken its copy of the properties and is loading the model (without the lock):
  // a property set now must queue in `pending` as if started, or it would be lost for the run.
  bool starting = false;
  bool running() const { return started || starting; }
  GstVideoInfo info{};
  bool negotiated = false;
  // The pixel format and YUV matrix the engine is to make: the negotiated ones, handed to the
  // generator before its next clip (pending_format), as it takes them only between clips.
  ds_pixel_format made_format = DS_PIXEL_RGB;
  ds_yuv_matrix made_matrix = DS_YUV_BT601;
  bool pending_format = false;
  // Frames made before a format change, converted to the new one (streaming thread only).
  ditsrc::FrameConverter converter;

  // The stream.
  std::thread worker;
  bool quit = false;      // the worker must return
  bool flushing = false;  // from unlock() to unlock_stop()
  std::deque<Item> queue;
  // The last frame fill() handed to basesrc (frame pushed − 1), kept until the next: basesrc drops
  // a filled buffer when a flush comes before it is pushed, and a seek to that frame puts it back.
  std::optional<Item> lent;
  int64_t total = kEndless;   // frames in the stream
  int64_t want = kEndless;    // frames the current worker has to produce
  int64_t generated = 0;      // frames the current worker produced
  bool can_continue = false;  // a clip ran at this size: the next one continues it
  bool ended = false;         // fill() reached the end item (or an error)
  bool failed = false;        // that was an error item: a seek makes the stream again
  uint64_t pushed = 0;        // frames handed downstream: index of the next one
  ditsrc::Timeline timeline;  // the frames' times, at the rates negotiated so far (not live)
  // A seek's target time, turned into a frame index by the next fill() (the rate may not be
  // negotiated yet when a seek arrives), which starts the engine's stream afresh there (ds_seek).
  GstClockTime seek_to = GST_CLOCK_TIME_NONE;
  // A seek in frames made before the rate was negotiated (queued in READY): its frames, which the
  // first negotiation turns into the segment's times (-1: none).
  int64_t unnegotiated_seek_start = -1, unnegotiated_seek_stop = -1;
  int64_t prepared_seek_start = -1, prepared_seek_stop = -1;  // the same, until DoSeek accepts it
  GstClockTime anchor = GST_CLOCK_TIME_NONE;                  // live: running time of frame anchor_frame
  uint64_t anchor_frame = 0;
  // The worker's alone (not guarded): the tags of the clip it is generating, until its first frame.
  std::string clip_title, clip_provenance;
};

}  // namespace

struct GstDitSrc {
  GstPushSrc parent;
  State* s;
};
struct GstDitSrcClass {
  GstPushSrcClass parent_class;
};

G_DEFINE_TYPE(GstDitSrc, gst_dit_src, GST_TYPE_PUSH_SRC)
#define GST_TYPE_DIT_SRC (gst_dit_src_get_type())
#define GST_DIT_SRC(obj) (G_TYPE_CHECK_INSTANCE_CAST((obj), GST_TYPE_DIT_SRC, GstDitSrc))

namespace {

// ---- option values ----

int OptionIndex(const char* name) {
  for (int i = 0; i < ds_option_count(); ++i) {
    if (g_strcmp0(ds_option_at(i)->name, name) == 0) return i;
  }
  return -1;
}

// A numeric option's current property value (0, "use the model's", when the table lacks it).
double OptionNumber(const State& s, const char* name) {
  const int i = OptionIndex(name);
  return i < 0 ? 0.0 : g_ascii_strtod(s.values[i].c_str(), nullptr);
}

// Applies every property to a fresh generator; returns the first failure.
ds_status ApplyAll(ds_generator* gen, const std::vector<std::string>& values) {
  for (int i = 0; i < static_cast<int>(values.size()); ++i) {
    const ds_status st = ds_set_option(gen, ds_option_at(i)->name, values[i].c_str());
    if (st != DS_OK) return st;
  }
  return DS_OK;
}

// Hands the between-clip changes to the generator (worker thread, mu held); returns refusals.
std::vector<std::string> ApplyPending(State& s) {
  std::vector<std::string> refused;
  for (const auto& [i, text] : s.pending) {
    if (ds_set_option(s.gen, ds_option_at(i)->name, text.c_str()) != DS_OK) {
      refused.emplace_back(ds_error_message(s.gen));
    }
  }
  s.pending.clear();
  return refused;
}

// ---- timing ----

// Frame n's time from the start of a stream at info's rate: computed from the index, so it never
// drifts.
GstClockTime FrameTime(const GstVideoInfo& info, uint64_t n) {
  return gst_util_uint64_scale(n, static_cast<guint64>(info.fps_d) * GST_SECOND, static_cast<guint64>(info.fps_n));
}

GstClockTime RunningTimeNow(GstElement* element) {
  GstClock* clock = gst_element_get_clock(element);
  if (clock == nullptr) return GST_CLOCK_TIME_NONE;
  const GstClockTime now = gst_clock_get_time(clock), base = gst_element_get_base_time(element);
  gst_object_unref(clock);
  return now > base ? now - base : 0;
}

// Live: the first frame of a run is stamped with the running time at which it became available,
// the next ones follow at the frame rate and basesrc waits until each is due. When generation
// falls more than a frame behind the clock we restamp from now (a gap, flagged DISCONT) instead of
// delivering ever later frames, so no buffer is later than one frame duration: the latency we report.
GstClockTime LivePts(State& s, GstClockTime now, uint64_t n, GstClockTime duration, bool* discont) {
  if (!GST_CLOCK_TIME_IS_VALID(now)) return FrameTime(s.info, n);
  if (!GST_CLOCK_TIME_IS_VALID(s.anchor)) {
    s.anchor = now;
    s.anchor_frame = n;
  }
  const GstClockTime pts = s.anchor + FrameTime(s.info, n - s.anchor_frame);
  if (now <= pts + duration) return pts;
  s.anchor = now;
  s.anchor_frame = n;
  *discont = true;
  return now;
}

void Stamp(GstDitSrc* self, GstBuffer* buf) {
  State& s = *self->s;
  const bool live = gst_base_src_is_live(GST_BASE_SRC(self));
  const GstClockTime now = live ? RunningTimeNow(GST_ELEMENT(self)) : GST_CLOCK_TIME_NONE;
  std::lock_guard lk(s.mu);
  const uint64_t n = s.pushed++;
  const GstClockTime start = s.timeline.Time(n), duration = s.timeline.Time(n + 1) - start;
  bool discont = false;
  GST_BUFFER_PTS(buf) = live ? LivePts(s, now, n, duration, &discont) : start;
  // Raw frames decode when they are presented; a DTS also keeps basesrc's do-timestamp from
  // stamping arrival times over the frames' own.
  GST_BUFFER_DTS(buf) = GST_BUFFER_PTS(buf);
  GST_BUFFER_DURATION(buf) = duration;
  GST_BUFFER_OFFSET(buf) = n;
  GST_BUFFER_OFFSET_END(buf) = n + 1;
  if (discont) GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DISCONT);
}

// ---- the worker ----

int OnFrame(void* user, const ds_frame* f) {
  State& s = *static_cast<GstDitSrc*>(user)->s;
  Item item;
  item.width = f->width;
  item.height = f->height;
  item.format = f->format;
  item.matrix = f->matrix;
  item.title = std::move(s.clip_title);
  item.provenance = std::move(s.clip_provenance);
  s.clip_title.clear();
  s.clip_provenance.clear();
  item.planes = f->planes;
  for (int i = 0; i < f->planes; ++i) {
    item.stride[i] = f->stride[i];
    item.rows[i] = i == 0 ? f->height : (f->height + 1) / 2;  // I420's and NV12's chroma planes
    item.bytes.insert(item.bytes.end(), f->data[i], f->data[i] + static_cast<size_t>(f->stride[i]) * item.rows[i]);
  }
  std::unique_lock lk(s.mu);
  s.cv.wait(lk, [&] { return s.quit || s.queue.size() < kQueueDepth; });
  if (s.quit) return 1;
  s.queue.push_back(std::move(item));
  ++s.generated;
  s.cv.notify_all();
  return (s.want != kEndless && s.generated >= s.want) ? 1 : 0;  // stop decoding frames nobody wants
}

const char* StageName(ds_stage stage) {
  switch (stage) {
    case DS_STAGE_TEXT:
      return "text";
    case DS_STAGE_DENOISE:
      return "denoise";
    case DS_STAGE_DECODE:
      return "decode";
  }
  return "unknown";
}

void OnProgress(void* user, const ds_progress* p) {
  auto* self = static_cast<GstDitSrc*>(user);
  GstStructure* st =
      gst_structure_new("ditstream-progress", "stage", G_TYPE_STRING, StageName(p->stage), "step", G_TYPE_INT, p->step,
                        "total", G_TYPE_INT, p->total, "clip", G_TYPE_INT, p->clip, nullptr);
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), st));
}

// The whole prompt (ds_get_option cuts a value at the buffer's size: grow until it fits), as
// valid UTF-8 for a tag (GstTagList refuses other strings; the engine takes only UTF-8 prompts,
// so this is a guard).
std::string PromptForTag(ds_generator* gen) {
  std::string buf(1024, '\0');
  while (ds_get_option(gen, "prompt", buf.data(), buf.size()) == DS_OK && std::strlen(buf.c_str()) + 1 == buf.size()) {
    buf.assign(buf.size() * 2, '\0');
  }
  gchar* valid = g_utf8_make_valid(buf.c_str(), -1);
  std::string prompt(valid);
  g_free(valid);
  return prompt;
}

// The next clip's prompt and provenance record, for its tags (worker thread: it alone uses the
// generator while generating).
void CaptureClipTags(GstDitSrc* self) {
  State& s = *self->s;
  size_t length = 0;
  if (ds_get_provenance(s.gen, nullptr, 0, &length) != DS_OK) {
    GST_WARNING_OBJECT(self, "no provenance tags: %s", ds_error_message(s.gen));
    return;
  }
  std::string json(length + 1, '\0');
  if (ds_get_provenance(s.gen, json.data(), json.size(), nullptr) != DS_OK) return;
  json.resize(length);
  s.clip_title = PromptForTag(s.gen);
  s.clip_provenance = std::move(json);
}

// Generates clip after clip until the stream has its frames, then queues an end (or error) item.
void RunWorker(GstDitSrc* self) {
  State& s = *self->s;
  for (;;) {
    std::vector<std::string> refused;
    bool cont = false, tags = false;
    {
      std::lock_guard lk(s.mu);
      if (s.quit) return;
      refused = ApplyPending(s);
      if (s.pending_format &&
          (ds_set_pixel_format(s.gen, s.made_format) != DS_OK || ds_set_yuv_matrix(s.gen, s.made_matrix) != DS_OK)) {
        refused.emplace_back(ds_error_message(s.gen));
      }
      s.pending_format = false;
      cont = s.can_continue;
      tags = s.provenance;
    }
    for (const std::string& m : refused) {
      GST_ELEMENT_WARNING(self, RESOURCE, SETTINGS, ("Property change refused: %s", m.c_str()), (nullptr));
    }
    s.clip_title.clear();  // a run stopped before its first frame must not tag the next one
    s.clip_provenance.clear();
    if (tags) CaptureClipTags(self);
    const ds_status st = ds_generate(s.gen, cont, OnFrame, OnProgress, self);
    std::lock_guard lk(s.mu);
    // Even a clip stopped by a flush continues: the engine makes it again and goes on after the
    // frames it had handed over. Only a new size (SetCaps) or a restart (Start) starts afresh.
    s.can_continue = true;
    if (s.quit) return;
    const bool done = s.want != kEndless && s.generated >= s.want;
    if (st == DS_OK && !done) continue;
    Item end;
    end.kind = done && (st == DS_OK || st == DS_ERR_CANCELLED) ? Item::kEnd : Item::kError;
    if (end.kind == Item::kError) end.error = ds_error_message(s.gen);
    s.queue.push_back(std::move(end));
    s.cv.notify_all();
    return;
  }
}

GstFlowReturn StartWorker(GstDitSrc* self, std::string* error);

// Starts the worker unless it runs; an error is posted without the locks held (a bus sync handler
// may query the element).
GstFlowReturn EnsureWorker(GstDitSrc* self) {
  std::string error;
  const GstFlowReturn ret = StartWorker(self, &error);
  if (!error.empty()) GST_ELEMENT_ERROR(self, STREAM, FAILED, ("%s", error.c_str()), (nullptr));
  return ret;
}

GstFlowReturn StartWorker(GstDitSrc* self, std::string* error) {
  State& s = *self->s;
  std::lock_guard wl(s.worker_mu);
  std::lock_guard lk(s.mu);
  if (s.flushing) return GST_FLOW_FLUSHING;
  if (!s.negotiated) return GST_FLOW_NOT_NEGOTIATED;
  if (s.ended) return GST_FLOW_EOS;
  if (s.worker.joinable()) return GST_FLOW_OK;
  if (GST_CLOCK_TIME_IS_VALID(s.seek_to)) {
    // The frame showing at the target time, of a stream made afresh (the same seed and settings
    // make the same frames), where the engine's next clip starts delivering.
    s.pushed = s.timeline.FrameAt(s.seek_to);
    s.seek_to = GST_CLOCK_TIME_NONE;
    if (ds_seek(s.gen, static_cast<int64_t>(s.pushed)) != DS_OK) {
      *error = "Seek to frame " + std::to_string(s.pushed) + " failed: " + ds_error_message(s.gen);
      return GST_FLOW_ERROR;
    }
  }
  if (s.total != kEndless && static_cast<int64_t>(s.pushed) >= s.total) return GST_FLOW_EOS;
  s.want = s.total == kEndless ? kEndless : s.total - static_cast<int64_t>(s.pushed);
  s.generated = 0;
  s.quit = false;
  ds_reset_cancel(s.gen);  // a flush or an earlier stop may have left a cancellation pending
  s.worker = std::thread(RunWorker, self);
  return GST_FLOW_OK;
}

void StopWorker(State& s) {
  std::lock_guard wl(s.worker_mu);
  if (!s.worker.joinable()) return;
  {
    std::lock_guard lk(s.mu);
    s.quit = true;
    ds_cancel(s.gen);
    s.cv.notify_all();
  }
  s.worker.join();
  std::lock_guard lk(s.mu);
  s.quit = false;
  s.queue.clear();
  s.lent.reset();
}

// ---- caps ----

// RGB and RGBA (sRGB), then I420 and NV12 (for hardware encoders), chroma sited at the centre of
// each 2×2 block (its mean: "jpeg"); RGB first because it needs no conversion. `fields` fills in
// the rest of both structures; every frame is progressive and one view. Colorimetry is left open
// here: caps compare it as strings, and downstream may spell one the engine makes in another way
// (V4L2 encoders list "2:4:5:4", BT.601 with BT.709's transfer), so GetCaps and Fixate judge each
// by what it means (EngineMakes).
GstCaps* FormatCaps(const char* fields) {
  gchar* text = g_strdup_printf(
      "video/x-raw, format=(string){ RGB, RGBA }, interlace-mode=(string)progressive, "
      "multiview-mode=(string)mono, %s; "
      "video/x-raw, format=(string){ I420, NV12 }, chroma-site=(string)jpeg, interlace-mode=(string)progressive, "
      "multiview-mode=(string)mono, %s",
      fields, fields);
  GstCaps* caps = gst_caps_from_string(text);
  g_free(text);
  return caps;
}

// The highest frame rate: the fps option's bound, so that a rate downstream picks is one the
// property could have set.
int MaxRate() {
  const ds_option_info* fps = ds_option_find("fps");
  return fps ? static_cast<int>(fps->max) : G_MAXINT;
}

GstCaps* TemplateCaps() {
  const ds_option_info* w = ds_option_find("width");
  const ds_option_info* h = ds_option_find("height");
  const int max_w = w ? static_cast<int>(w->max) : G_MAXINT, max_h = h ? static_cast<int>(h->max) : G_MAXINT;
  gchar* fields = g_strdup_printf(
      "width=(int)[ 1, %d ], height=(int)[ 1, %d ], framerate=(fraction)[ 1/%d, %d/1 ], "
      "pixel-aspect-ratio=(fraction)1/1",
      max_w, max_h, G_MAXINT, MaxRate());
  GstCaps* caps = FormatCaps(fields);
  g_free(fields);
  return caps;
}

// A property set to non-zero fixes the size; otherwise any size the model supports.
void SetSize(GstStructure* st, const char* field, int property, int lo, int hi, int step) {
  if (property > 0) {
    gst_structure_set(st, field, G_TYPE_INT, property, nullptr);
    return;
  }
  GValue range = G_VALUE_INIT;
  g_value_init(&range, GST_TYPE_INT_RANGE);
  gst_value_set_int_range_step(&range, lo, hi - (hi - lo) % MAX(step, 1), MAX(step, 1));
  gst_structure_take_value(st, field, &range);
}

// Frame rate from the fps property when non-zero.
bool FixedRate(const State& s, int* num, int* den) {
  const double fps = OptionNumber(s, "fps");
  if (fps <= 0) return false;
  gst_util_double_to_fraction(fps, num, den);
  return true;
}

GstCaps* ModelCaps(const State& s) {
  GstCaps* caps = FormatCaps("pixel-aspect-ratio=(fraction)1/1");
  const ds_model_info& m = s.model;
  int num = 0, den = 1;
  const bool fixed_rate = FixedRate(s, &num, &den);
  for (guint i = 0; i < gst_caps_get_size(caps); ++i) {
    GstStructure* st = gst_caps_get_structure(caps, i);
    SetSize(st, "width", static_cast<int>(OptionNumber(s, "width")), m.min_width, m.max_width, m.width_step);
    SetSize(st, "height", static_cast<int>(OptionNumber(s, "height")), m.min_height, m.max_height, m.height_step);
    if (fixed_rate) {
      gst_structure_set(st, "framerate", GST_TYPE_FRACTION, num, den, nullptr);
    } else {
      gst_structure_set(st, "framerate", GST_TYPE_FRACTION_RANGE, 1, G_MAXINT, MaxRate(), 1, nullptr);
    }
  }
  return caps;
}

// Whether the engine makes YUV of this colorimetry: limited range with a BT.601 or BT.709 matrix
// (the transfer function and primaries do not change the bytes).
bool EngineMakes(const GstVideoColorimetry& c) {
  return c.range == GST_VIDEO_COLOR_RANGE_16_235 &&
         (c.matrix == GST_VIDEO_COLOR_MATRIX_BT601 || c.matrix == GST_VIDEO_COLOR_MATRIX_BT709);
}

// Whether RGB of this colorimetry is what the engine makes: sRGB (full range, BT.709 primaries,
// the sRGB transfer), each part either that or left unknown. RGB that claims BT.2020 primaries or
// a YUV matrix would be mislabelled: a converter has to make it.
bool EngineMakesRgb(const GstVideoColorimetry& c) {
  auto either = [](auto value, auto unknown, auto want) { return value == unknown || value == want; };
  return either(c.range, GST_VIDEO_COLOR_RANGE_UNKNOWN, GST_VIDEO_COLOR_RANGE_0_255) &&
         either(c.matrix, GST_VIDEO_COLOR_MATRIX_UNKNOWN, GST_VIDEO_COLOR_MATRIX_RGB) &&
         either(c.transfer, GST_VIDEO_TRANSFER_UNKNOWN, GST_VIDEO_TRANSFER_SRGB) &&
         either(c.primaries, GST_VIDEO_COLOR_PRIMARIES_UNKNOWN, GST_VIDEO_COLOR_PRIMARIES_BT709);
}

// Whether a structure of ditsrc's caps (or an intersection with them) is its YUV one: the formats
// of a structure are all YUV or all RGB (FormatCaps), so the first tells.
bool IsYuvStructure(const GstStructure* st) {
  const GValue* f = gst_structure_get_value(st, "format");
  if (f != nullptr && GST_VALUE_HOLDS_LIST(f) && gst_value_list_get_size(f) > 0) f = gst_value_list_get_value(f, 0);
  if (f == nullptr || !G_VALUE_HOLDS_STRING(f)) return false;
  const char* name = g_value_get_string(f);
  return g_str_equal(name, "I420") || g_str_equal(name, "NV12");
}

// Whether the engine makes the colorimetry a caps string names, in YUV or RGB.
bool EngineMakes(const GValue* v, bool yuv) {
  GstVideoColorimetry c;
  return G_VALUE_HOLDS_STRING(v) && gst_video_colorimetry_from_string(&c, g_value_get_string(v)) &&
         (yuv ? EngineMakes(c) : EngineMakesRgb(c));
}

// Drops from caps (after the intersection with downstream's) the colorimetries the engine does not
// make, and the structures left with none: a downstream that wants only BT.2020 or full-range YUV,
// or RGB in anything but sRGB, then sees no such caps here, and a converter in between does the
// work.
GstCaps* KeepColorimetriesTheEngineMakes(GstCaps* caps) {
  caps = gst_caps_make_writable(caps);
  for (guint i = gst_caps_get_size(caps); i-- > 0;) {
    GstStructure* st = gst_caps_get_structure(caps, i);
    const GValue* v = gst_structure_get_value(st, "colorimetry");
    if (v == nullptr) continue;
    const bool yuv = IsYuvStructure(st);
    if (!GST_VALUE_HOLDS_LIST(v)) {
      if (!EngineMakes(v, yuv)) gst_caps_remove_structure(caps, i);
      continue;
    }
    GValue kept = G_VALUE_INIT;
    g_value_init(&kept, GST_TYPE_LIST);
    for (guint k = 0; k < gst_value_list_get_size(v); ++k) {
      if (EngineMakes(gst_value_list_get_value(v, k), yuv)) {
        gst_value_list_append_value(&kept, gst_value_list_get_value(v, k));
      }
    }
    if (gst_value_list_get_size(&kept) == 0) {
      gst_caps_remove_structure(caps, i);
    } else if (gst_value_list_get_size(&kept) == 1) {
      gst_structure_set_value(st, "colorimetry", gst_value_list_get_value(&kept, 0));  // a list of one is no value
    } else {
      gst_structure_set_value(st, "colorimetry", &kept);
    }
    g_value_unset(&kept);
  }
  return caps;
}

GstCaps* GetCaps(GstBaseSrc* bsrc, GstCaps* filter) {
  State& s = *GST_DIT_SRC(bsrc)->s;
  GstCaps* caps = nullptr;
  {
    std::lock_guard lk(s.mu);
    if (s.started) caps = ModelCaps(s);
  }
  if (caps == nullptr) caps = gst_pad_get_pad_template_caps(GST_BASE_SRC_PAD(bsrc));
  if (filter != nullptr) {
    GstCaps* both = gst_caps_intersect_full(filter, caps, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref(caps);
    caps = KeepColorimetriesTheEngineMakes(both);
  }
  return caps;
}

// Properties first (already fixed by get_caps), then what downstream left open goes to the
// model's native size and rate; RGB first because it needs no conversion. YUV colorimetry left open
// becomes the one GStreamer assumes for a YUV frame of its height (bt709 above 576 lines, else
// bt601), stated in the caps; a list downstream left takes that one if listed, else the first the
// engine makes.
GstCaps* Fixate(GstBaseSrc* bsrc, GstCaps* caps) {
  State& s = *GST_DIT_SRC(bsrc)->s;
  int w, h, num, den;
  {
    std::lock_guard lk(s.mu);
    w = s.model.native_width;
    h = s.model.native_height;
    if (!FixedRate(s, &num, &den)) {
      num = s.model.fps_num;
      den = MAX(s.model.fps_den, 1);
    }
  }
  // Downstream's caps (through a converter, its passthrough structure comes first) may lead with
  // a colorimetry the engine does not make: skip to the first structure it can produce.
  caps = KeepColorimetriesTheEngineMakes(caps);
  if (gst_caps_is_empty(caps)) return caps;
  caps = gst_caps_truncate(caps);
  GstStructure* st = gst_caps_get_structure(caps, 0);
  // What downstream asked for beyond these (HDR mastering metadata, …) the frames do not have: the
  // caps leave it out, so that a downstream that requires it refuses them.
  gst_structure_filter_and_map_in_place(
      st,
      [](GQuark field, GValue*, gpointer) -> gboolean {
        static constexpr const char* kMade[] = {
            "format",      "width",          "height",         "framerate",       "colorimetry",
            "chroma-site", "interlace-mode", "multiview-mode", "multiview-flags", "pixel-aspect-ratio"};
        const char* name = g_quark_to_string(field);
        return std::any_of(std::begin(kMade), std::end(kMade), [&](const char* m) { return g_str_equal(m, name); });
      },
      nullptr);
  gst_structure_fixate_field_nearest_int(st, "width", w);
  gst_structure_fixate_field_nearest_int(st, "height", h);
  gst_structure_fixate_field_nearest_fraction(st, "framerate", num, den);
  gst_structure_fixate_field_string(st, "format", "RGB");
  const char* format = gst_structure_get_string(st, "format");
  if (format != nullptr && (g_str_equal(format, "I420") || g_str_equal(format, "NV12"))) {
    int height = 0;
    gst_structure_get_int(st, "height", &height);
    const char* preferred = height > 576 ? "bt709" : "bt601";
    const GValue* v = gst_structure_get_value(st, "colorimetry");
    if (v == nullptr) {
      gst_structure_set(st, "colorimetry", G_TYPE_STRING, preferred, nullptr);
    } else if (GST_VALUE_HOLDS_LIST(v)) {
      std::string pick;  // the preferred one when listed, else the first the engine makes
      for (guint k = 0; k < gst_value_list_get_size(v); ++k) {
        const GValue* c = gst_value_list_get_value(v, k);
        if (!EngineMakes(c, true)) continue;
        if (pick.empty() || g_str_equal(g_value_get_string(c), preferred)) pick = g_value_get_string(c);
      }
      if (!pick.empty()) gst_structure_set(st, "colorimetry", G_TYPE_STRING, pick.c_str(), nullptr);
    }
  }
  if (gst_structure_has_field(st, "pixel-aspect-ratio")) {
    gst_structure_fixate_field_nearest_fraction(st, "pixel-aspect-ratio", 1, 1);
  }
  return GST_BASE_SRC_CLASS(gst_dit_src_parent_class)->fixate(bsrc, caps);
}

// The engine's YUV matrix for negotiated I420 or NV12 caps; false for a colorimetry it does not make (full
// range, or another matrix), which the caps never offer but a caller of set_caps may still pass.
bool EngineMatrix(const GstVideoInfo& info, ds_yuv_matrix* matrix) {
  const GstVideoColorimetry& c = info.colorimetry;
  if (!EngineMakes(c)) return false;
  switch (c.matrix) {
    case GST_VIDEO_COLOR_MATRIX_BT601:
      *matrix = DS_YUV_BT601;
      return true;
    case GST_VIDEO_COLOR_MATRIX_BT709:
      *matrix = DS_YUV_BT709;
      return true;
    default:
      return false;
  }
}

// Points the generator at the negotiated size (mu held, no worker running).
bool ApplySize(GstDitSrc* self, int width, int height) {
  State& s = *self->s;
  const std::string w = std::to_string(width), h = std::to_string(height);
  int gw = 0, gh = 0;
  if (ds_set_option(s.gen, "width", w.c_str()) != DS_OK || ds_set_option(s.gen, "height", h.c_str()) != DS_OK ||
      ds_get_output_shape(s.gen, &gw, &gh, nullptr) != DS_OK) {
    GST_WARNING_OBJECT(self, "size %dx%d refused: %s", width, height, ds_error_message(s.gen));
    return false;
  }
  return gw == width && gh == height;
}

// A seek in frames made before the rate was known, at the times the negotiated rate gives its
// frames (mu held, streaming thread: the segment goes out before the first buffer).
void PlaceUnnegotiatedSeek(GstDitSrc* self) {
  State& s = *self->s;
  GstSegment& segment = GST_BASE_SRC(self)->segment;
  GST_OBJECT_LOCK(self);
  if (s.unnegotiated_seek_start >= 0) {
    const auto start = static_cast<guint64>(s.timeline.Time(static_cast<uint64_t>(s.unnegotiated_seek_start)));
    segment.start = segment.time = segment.position = start;
    s.seek_to = start;
  }
  if (s.unnegotiated_seek_stop >= 0) {
    segment.stop = static_cast<guint64>(s.timeline.Time(static_cast<uint64_t>(s.unnegotiated_seek_stop)));
  }
  GST_OBJECT_UNLOCK(self);
  s.unnegotiated_seek_start = s.unnegotiated_seek_stop = -1;
}

gboolean SetCaps(GstBaseSrc* bsrc, GstCaps* caps) {
  auto* self = GST_DIT_SRC(bsrc);
  State& s = *self->s;
  GstVideoInfo info;
  if (!gst_video_info_from_caps(&info, caps) || info.fps_n <= 0 || info.fps_d <= 0) {
    GST_WARNING_OBJECT(self, "unusable caps %" GST_PTR_FORMAT, static_cast<gpointer>(caps));
    return FALSE;
  }
  ds_yuv_matrix matrix = DS_YUV_BT601;
  if (GST_VIDEO_INFO_IS_YUV(&info) && !EngineMatrix(info, &matrix)) {
    gchar* colorimetry = gst_video_colorimetry_to_string(&info.colorimetry);
    GST_WARNING_OBJECT(self, "YUV colorimetry %s refused: the engine makes bt601 and bt709 (limited range)",
                       colorimetry ? colorimetry : "(unknown)");
    g_free(colorimetry);
    return FALSE;
  }
  const ds_pixel_format format = ditsrc::EngineFormatOf(GST_VIDEO_INFO_FORMAT(&info));
  bool resize, reformat;
  {
    std::lock_guard lk(s.mu);
    if (!s.started) return FALSE;
    resize = !s.negotiated || info.width != s.info.width || info.height != s.info.height;
    // By what the engine makes: another spelling of the same colorimetry, or another transfer
    // function or primaries, changes no byte.
    reformat = !s.negotiated || format != s.made_format || matrix != s.made_matrix;
  }
  // A new size cannot continue the old clip: start over. A new format or colorimetry goes to the
  // generator before its next clip; the frames made until then are converted (WriteFrame).
  if (resize) StopWorker(s);
  std::unique_lock lk(s.mu);
  if (resize) {
    if (!ApplySize(self, info.width, info.height)) return FALSE;
    s.can_continue = false;
  }
  // The rate downstream negotiated is the one the frames are stamped with: the engine's record
  // (provenance) says it too. The worker may be generating (a rate change alone does not stop it),
  // so the rate goes to the generator the way property changes do, before the next clip.
  const bool rate_changed = s.negotiated && (info.fps_n != s.info.fps_n || info.fps_d != s.info.fps_d);
  if (rate_changed || !s.negotiated) {
    char fps[G_ASCII_DTOSTR_BUF_SIZE];
    g_ascii_dtostr(fps, sizeof fps, static_cast<double>(info.fps_n) / info.fps_d);
    if (const int i = OptionIndex("fps"); i >= 0) s.pending[i] = fps;
  }
  if (reformat) {
    s.made_format = format;
    s.made_matrix = matrix;
    s.pending_format = true;
  }
  if (!s.negotiated) {
    s.timeline.Reset(info.fps_n, info.fps_d);
    if (s.unnegotiated_seek_start >= 0 || s.unnegotiated_seek_stop >= 0) PlaceUnnegotiatedSeek(self);
  } else if (rate_changed) {
    // A new rate holds from the next frame to push on: the timestamps go on from the last frame's
    // end (and a live stream's schedule from its anchor), as if the stream had had it from there.
    s.timeline.ChangeRate(s.pushed, info.fps_n, info.fps_d);
    if (GST_CLOCK_TIME_IS_VALID(s.anchor)) {
      s.anchor += FrameTime(s.info, s.pushed - s.anchor_frame);
      s.anchor_frame = s.pushed;
    }
  }
  s.info = info;
  s.negotiated = true;
  // The stream's length in time, for the SEEKING query and seeks relative to the end (live, the
  // timestamps are running times: no length in time).
  const bool live = gst_base_src_is_live(bsrc), finite = s.total != kEndless;
  if (finite && !live) {
    GST_OBJECT_LOCK(self);
    bsrc->segment.duration = static_cast<gint64>(s.timeline.Time(static_cast<uint64_t>(s.total)));
    GST_OBJECT_UNLOCK(self);
  }
  lk.unlock();
  // A new rate changes the latency (one frame) and the length: the pipeline asks again. Posted
  // without the lock, since a bus sync handler may query the element.
  if (rate_changed && live) gst_element_post_message(GST_ELEMENT(self), gst_message_new_latency(GST_OBJECT(self)));
  if (rate_changed && finite && !live) {
    gst_element_post_message(GST_ELEMENT(self), gst_message_new_duration_changed(GST_OBJECT(self)));
  }
  return TRUE;
}

// A printf-formatted std::string (GLib's, so that the element needs nothing beyond GLib for it).
std::string Printf(const char* format, ...) G_GNUC_PRINTF(1, 2);
std::string Printf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  gchar* text = g_strdup_vprintf(format, args);
  va_end(args);
  std::string out(text);
  g_free(text);
  return out;
}

// What the model makes, in words, for a negotiation error: sizes and rate from the properties or
// the model's ranges.
std::string WhatTheModelMakes(const State& s) {
  const ds_model_info& m = s.model;
  auto dimension = [&](const char* name, int lo, int hi, int step) {
    const int fixed = static_cast<int>(OptionNumber(s, name));
    return fixed > 0 ? Printf("%s %d (property)", name, fixed)
                     : Printf("%s %d to %d in steps of %d", name, lo, hi, MAX(step, 1));
  };
  int num = 0, den = 1;
  const std::string rate = FixedRate(s, &num, &den) ? Printf("framerate %d/%d (fps property)", num, den)
                                                    : Printf("framerate up to %d/1", MaxRate());
  return Printf("RGB, RGBA, I420 or NV12 (YUV in BT.601 or BT.709, limited range), %s, %s, %s",
                dimension("width", m.min_width, m.max_width, m.width_step).c_str(),
                dimension("height", m.min_height, m.max_height, m.height_step).c_str(), rate.c_str());
}

// basesrc's negotiation, with the reason when downstream accepts nothing the model makes (basesrc
// alone says only "not-negotiated"): what ditsrc makes, and what downstream accepts in the details.
gboolean Negotiate(GstBaseSrc* bsrc) {
  if (GST_BASE_SRC_CLASS(gst_dit_src_parent_class)->negotiate(bsrc)) return TRUE;
  auto* self = GST_DIT_SRC(bsrc);
  GstCaps* theirs = gst_pad_peer_query_caps(GST_BASE_SRC_PAD(bsrc), nullptr);
  if (theirs == nullptr) return FALSE;
  GstCaps* ours = GetCaps(bsrc, nullptr);
  GstCaps* common = GetCaps(bsrc, theirs);  // what downstream accepts of ours, colorimetries judged
  std::string made;
  {
    State& s = *self->s;
    std::lock_guard lk(s.mu);
    if (s.started && gst_caps_is_empty(common)) {
      made = Printf("model '%s' makes here: %s", s.model.family ? s.model.family : "", WhatTheModelMakes(s).c_str());
    }
  }
  if (!made.empty()) {
    gchar* theirs_text = gst_caps_to_string(theirs);
    gchar* ours_text = gst_caps_to_string(ours);
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                      ("Downstream accepts no video that %s. A videoconvert, videoscale or videorate in between "
                       "converts.",
                       made.c_str()),
                      ("downstream accepts %s; ditsrc makes %s", theirs_text, ours_text));
    g_free(theirs_text);
    g_free(ours_text);
  }
  gst_caps_unref(common);
  gst_caps_unref(ours);
  gst_caps_unref(theirs);
  return FALSE;
}

// Like videotestsrc: without a video pool, basesrc hands out blocksize (4096-byte) buffers.
gboolean DecideAllocation(GstBaseSrc* bsrc, GstQuery* query) {
  GstCaps* caps = nullptr;
  gst_query_parse_allocation(query, &caps, nullptr);
  GstVideoInfo info;
  if (caps == nullptr || !gst_video_info_from_caps(&info, caps)) return FALSE;
  GstBufferPool* pool = nullptr;
  guint size = info.size, min = 0, max = 0;
  const bool update = gst_query_get_n_allocation_pools(query) > 0;
  if (update) {
    gst_query_parse_nth_allocation_pool(query, 0, &pool, &size, &min, &max);
    size = MAX(size, static_cast<guint>(info.size));
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (pool == nullptr) pool = gst_video_buffer_pool_new();
    GstStructure* config = gst_buffer_pool_get_config(pool);
    gst_buffer_pool_config_set_params(config, caps, size, min, max);
    if (gst_query_find_allocation_meta(query, GST_VIDEO_META_API_TYPE, nullptr)) {
      gst_buffer_pool_config_add_option(config, GST_BUFFER_POOL_OPTION_VIDEO_META);
    }
    if (gst_buffer_pool_set_config(pool, config)) break;
    gst_clear_object(&pool);  // downstream's pool refused our parameters: use our own
  }
  if (pool == nullptr) return FALSE;
  if (update) {
    gst_query_set_nth_allocation_pool(query, 0, pool, size, min, max);
  } else {
    gst_query_add_allocation_pool(query, pool, size, min, max);
  }
  gst_object_unref(pool);
  return GST_BASE_SRC_CLASS(gst_dit_src_parent_class)->decide_allocation(bsrc, query);
}

// ---- start / stop / flushing ----

void PostStartError(GstDitSrc* self, ds_status st, const std::string& text) {
  switch (st) {
    case DS_ERR_IO:
      GST_ELEMENT_ERROR(self, RESOURCE, NOT_FOUND, ("%s", text.c_str()), (nullptr));
      break;
    case DS_ERR_OUT_OF_MEMORY:
      GST_ELEMENT_ERROR(self, RESOURCE, NO_SPACE_LEFT, ("%s", text.c_str()), (nullptr));
      break;
    default:
      GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("%s", text.c_str()), (nullptr));
      break;
  }
}

// Loads the model (READY→PAUSED), so that a missing or bad model fails the state change.
gboolean Start(GstBaseSrc* bsrc) {
  auto* self = GST_DIT_SRC(bsrc);
  State& s = *self->s;
  std::vector<std::string> values;
  int64_t num_frames;
  {
    std::lock_guard lk(s.mu);
    values = s.values;
    num_frames = s.num_frames;
    s.pending.clear();
    s.starting = true;
  }
  auto not_starting = [&s] {
    std::lock_guard lk(s.mu);
    s.starting = false;
  };
  ds_generator* gen = ds_create();
  if (gen == nullptr) {
    not_starting();
    PostStartError(self, DS_ERR_OUT_OF_MEMORY, "Out of memory creating the generator.");
    return FALSE;
  }
  ds_status st = ApplyAll(gen, values);
  if (st == DS_OK) st = ds_load(gen);
  ds_model_info model{};
  int clip_frames = 0;
  if (st == DS_OK) st = ds_get_model_info(gen, &model);
  if (st == DS_OK) st = ds_get_output_shape(gen, nullptr, nullptr, &clip_frames);
  if (st != DS_OK) {
    const int mi = OptionIndex("model");
    const std::string name = mi < 0 ? std::string() : values[mi], message = ds_error_message(gen);
    // ds_load keeps a model whose settings it then refused (a size or clip length it does not make):
    // say the settings are wrong, not the model.
    const bool loaded = ds_get_model_info(gen, &model) == DS_OK;
    PostStartError(self, st,
                   (loaded ? "Settings not supported by model '" : "Could not load model '") + name + "': " + message);
    ds_destroy(gen);
    not_starting();
    return FALSE;
  }
  std::lock_guard lk(s.mu);
  s.gen = gen;
  s.model = model;
  s.total = num_frames == 0 ? clip_frames : num_frames;
  s.starting = false;
  s.started = true;
  s.negotiated = s.ended = s.failed = s.can_continue = s.flushing = s.quit = false;
  s.pushed = 0;
  s.seek_to = GST_CLOCK_TIME_NONE;
  // basesrc applies a queued seek after start().
  s.unnegotiated_seek_start = s.unnegotiated_seek_stop = s.prepared_seek_start = s.prepared_seek_stop = -1;
  s.anchor = GST_CLOCK_TIME_NONE;
  return TRUE;
}

gboolean Stop(GstBaseSrc* bsrc) {
  State& s = *GST_DIT_SRC(bsrc)->s;
  StopWorker(s);
  ds_generator* gen;
  {
    std::lock_guard lk(s.mu);
    gen = s.gen;
    s.gen = nullptr;
    s.started = s.negotiated = false;
    s.queue.clear();
    s.lent.reset();
    s.pending.clear();
  }
  ds_destroy(gen);
  return TRUE;
}

// Wakes fill(). Generation goes on: a flush, and a seek that leaves the stream where it is (one
// that moves only the stop), cost nothing; DoSeek, Stop and a new size stop the worker themselves
// when the stream must be made afresh.
gboolean Unlock(GstBaseSrc* bsrc) {
  State& s = *GST_DIT_SRC(bsrc)->s;
  std::lock_guard lk(s.mu);
  s.flushing = true;
  s.cv.notify_all();
  return TRUE;
}

// After a flush fill() goes on with the frames queued (a live stream restamped from the clock).
gboolean UnlockStop(GstBaseSrc* bsrc) {
  State& s = *GST_DIT_SRC(bsrc)->s;
  std::lock_guard lk(s.mu);
  s.flushing = false;
  s.anchor = GST_CLOCK_TIME_NONE;
  return TRUE;
}

// ---- data flow ----

void CopyFrame(const Item& item, GstVideoFrame* f) {
  const uint8_t* src = item.bytes.data();
  for (int i = 0; i < item.planes; ++i) {
    const ditsrc::Plane dst{static_cast<uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(f, i)),
                            GST_VIDEO_FRAME_PLANE_STRIDE(f, i)};
    ditsrc::CopyPlane(src, item.stride[i], item.stride[i], item.rows[i], dst);
    src += static_cast<size_t>(item.stride[i]) * item.rows[i];
  }
}

GstFlowReturn WriteFrame(GstDitSrc* self, const Item& item, GstBuffer* buf) {
  GstVideoInfo info;
  {
    std::lock_guard lk(self->s->mu);
    info = self->s->info;
  }
  if (item.width != GST_VIDEO_INFO_WIDTH(&info) || item.height != GST_VIDEO_INFO_HEIGHT(&info)) {
    GST_ELEMENT_ERROR(self, STREAM, FAILED,
                      ("The engine produced %dx%d frames where %dx%d were negotiated.", item.width, item.height,
                       GST_VIDEO_INFO_WIDTH(&info), GST_VIDEO_INFO_HEIGHT(&info)),
                      (nullptr));
    return GST_FLOW_ERROR;
  }
  GstVideoFrame frame;
  if (!gst_video_frame_map(&frame, &info, buf, GST_MAP_WRITE)) {
    GST_ELEMENT_ERROR(self, RESOURCE, WRITE, ("Could not map the output buffer."), (nullptr));
    return GST_FLOW_ERROR;
  }
  ds_yuv_matrix matrix = DS_YUV_BT601;
  const bool as_negotiated = item.format == ditsrc::EngineFormatOf(GST_VIDEO_INFO_FORMAT(&info)) &&
                             item.planes == static_cast<int>(GST_VIDEO_INFO_N_PLANES(&info)) &&
                             (!GST_VIDEO_INFO_IS_YUV(&info) || (EngineMatrix(info, &matrix) && item.matrix == matrix));
  bool written = true;
  if (as_negotiated) {
    CopyFrame(item, &frame);
  } else {
    // Made before a renegotiation, in the format of then.
    const ditsrc::EnginePlanes planes{item.format, item.matrix, item.width,        item.height,      item.planes,
                                      item.stride, item.rows,   item.bytes.data(), item.bytes.size()};
    written = self->s->converter.Convert(planes, &frame);
  }
  gst_video_frame_unmap(&frame);
  if (!written) {
    GST_ELEMENT_ERROR(self, STREAM, FAILED,
                      ("The engine produced frames in format %d (matrix %d) that cannot be converted to the "
                       "negotiated %s.",
                       static_cast<int>(item.format), static_cast<int>(item.matrix),
                       gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&info))),
                      (nullptr));
    return GST_FLOW_ERROR;
  }
  Stamp(self, buf);
  return GST_FLOW_OK;
}

// A clip's tags, ahead of its first frame: title = the prompt, comment = the provenance JSON,
// application = the engine. Through basesrc's send_event, which queues them to go out after the
// segment and before the next buffer (gst_element_send_event would take the state lock, which a
// state change may hold while it waits for this thread).
void SendClipTags(GstDitSrc* self, const Item& item) {
  GstTagList* tags = gst_tag_list_new(GST_TAG_TITLE, item.title.c_str(), GST_TAG_COMMENT, item.provenance.c_str(),
                                      GST_TAG_APPLICATION_NAME, "ditstream", nullptr);
  gst_tag_list_set_scope(tags, GST_TAG_SCOPE_GLOBAL);  // about the whole file, as a title is
  GST_ELEMENT_CLASS(gst_dit_src_parent_class)->send_event(GST_ELEMENT(self), gst_event_new_tag(tags));
}

GstFlowReturn Fill(GstPushSrc* psrc, GstBuffer* buf) {
  auto* self = GST_DIT_SRC(psrc);
  State& s = *self->s;
  const GstFlowReturn ret = EnsureWorker(self);
  if (ret != GST_FLOW_OK) return ret;
  Item item;
  {
    std::unique_lock lk(s.mu);
    s.cv.wait(lk, [&] { return s.flushing || !s.queue.empty(); });
    if (s.flushing) return GST_FLOW_FLUSHING;
    item = std::move(s.queue.front());
    s.queue.pop_front();
    s.cv.notify_all();
    if (item.kind != Item::kFrame) s.ended = true;
    if (item.kind == Item::kError) s.failed = true;
  }
  switch (item.kind) {
    case Item::kEnd:
      return GST_FLOW_EOS;
    case Item::kError:
      GST_ELEMENT_ERROR(self, STREAM, FAILED, ("Video generation failed: %s", item.error.c_str()), (nullptr));
      return GST_FLOW_ERROR;
    case Item::kFrame:
      break;
  }
  if (!item.provenance.empty()) SendClipTags(self, item);
  const GstFlowReturn written = WriteFrame(self, item, buf);
  if (written == GST_FLOW_OK) {
    std::lock_guard lk(s.mu);
    s.lent = std::move(item);
  }
  return written;
}

// Basesrc waits on the clock for the times returned here, which only a live source should.
void GetTimes(GstBaseSrc* bsrc, GstBuffer* buf, GstClockTime* start, GstClockTime* end) {
  if (!gst_base_src_is_live(bsrc) || !GST_BUFFER_PTS_IS_VALID(buf)) return;
  *start = GST_BUFFER_PTS(buf);
  if (GST_BUFFER_DURATION_IS_VALID(buf)) *end = *start + GST_BUFFER_DURATION(buf);
}

// The frame rate in use: the negotiated one, else the one fixate() will pick.
bool CurrentRate(const State& s, int* num, int* den) {
  if (s.negotiated) {
    *num = GST_VIDEO_INFO_FPS_N(&s.info);
    *den = GST_VIDEO_INFO_FPS_D(&s.info);
    return true;
  }
  if (FixedRate(s, num, den)) return true;
  *num = s.model.fps_num;
  *den = MAX(s.model.fps_den, 1);
  return s.started && *num > 0;
}

// Live latency: one frame duration. The engine's time per frame is unknown (and bursty: a clip is
// denoised as a whole, then decoded frame by frame), but LivePts() restamps rather than be late by
// more than a frame, so one frame is what a sink must allow for. Max: unbounded, since generation
// waits for the consumer instead of dropping.
gboolean AnswerLatency(GstDitSrc* self, GstQuery* query) {
  State& s = *self->s;
  int num = 0, den = 1;
  {
    std::lock_guard lk(s.mu);
    if (!CurrentRate(s, &num, &den)) return FALSE;
  }
  const bool live = gst_base_src_is_live(GST_BASE_SRC(self));
  const GstClockTime frame = gst_util_uint64_scale_int(GST_SECOND, den, num);
  gst_query_set_latency(query, live, live ? frame : 0, GST_CLOCK_TIME_NONE);
  return TRUE;
}

// The stream's timeline (mu held): the negotiated one, else at the rate fixate() will pick.
bool CurrentTimeline(const State& s, ditsrc::Timeline* timeline) {
  if (s.negotiated) {
    *timeline = s.timeline;
    return true;
  }
  int num = 0, den = 1;
  if (!CurrentRate(s, &num, &den)) return false;
  timeline->Reset(num, den);
  return true;
}

gboolean AnswerDuration(GstDitSrc* self, GstQuery* query) {
  State& s = *self->s;
  GstFormat format;
  gst_query_parse_duration(query, &format, nullptr);
  if (gst_base_src_is_live(GST_BASE_SRC(self))) {
    // Live timestamps are running times, from whenever the pipeline started: the stream has no
    // length in time to compare positions with.
    gst_query_set_duration(query, format, -1);
    return TRUE;
  }
  ditsrc::Timeline timeline;
  std::lock_guard lk(s.mu);
  if (format != GST_FORMAT_TIME || !s.started || s.total == kEndless || !CurrentTimeline(s, &timeline)) return FALSE;
  gst_query_set_duration(query, GST_FORMAT_TIME, static_cast<gint64>(timeline.Time(static_cast<uint64_t>(s.total))));
  return TRUE;
}

// A position in frames or bytes (a seek's or a conversion's) as a frame index (END: from the
// stream's end), or false. *frame stays -1 for no position (a seek's stop of -1: to the end).
bool FrameIndex(GstFormat format, GstSeekType type, int64_t value, int64_t total, guint64 frame_bytes, int64_t* frame) {
  if (type == GST_SEEK_TYPE_NONE || (type == GST_SEEK_TYPE_SET && value == -1)) return true;
  if (format == GST_FORMAT_BYTES) {
    if (frame_bytes == 0) return false;
    // The frame holding the byte: rounded down, before the end too (-1 is in the last frame).
    const guint64 magnitude = value < 0 ? 0 - static_cast<guint64>(value) : static_cast<guint64>(value);
    value = value < 0 ? -static_cast<int64_t>((magnitude + frame_bytes - 1) / frame_bytes)
                      : static_cast<int64_t>(magnitude / frame_bytes);
  } else if (format != GST_FORMAT_DEFAULT) {
    return false;
  }
  if (type == GST_SEEK_TYPE_END) {
    if (total == kEndless || value > 0) return false;
    value += total;
  }
  *frame = MAX(value, int64_t{0});
  return true;
}

// Between time, frames (GST_FORMAT_DEFAULT) and bytes (once a format is negotiated): basesrc
// converts seeks and position and duration queries in frames or bytes through it.
gboolean AnswerConvert(GstDitSrc* self, GstQuery* query) {
  State& s = *self->s;
  GstFormat from, to;
  gint64 value;
  gst_query_parse_convert(query, &from, &value, &to, nullptr);
  if (from == to || value == -1) {
    gst_query_set_convert(query, from, value, to, value);
    return TRUE;
  }
  if (value < 0) return FALSE;
  ditsrc::Timeline timeline;
  guint64 frame_bytes = 0;
  {
    std::lock_guard lk(s.mu);
    if (!CurrentTimeline(s, &timeline)) return FALSE;
    if (s.negotiated) frame_bytes = GST_VIDEO_INFO_SIZE(&s.info);
  }
  uint64_t frames = 0;
  if (from == GST_FORMAT_TIME) {
    frames = timeline.FrameAt(static_cast<uint64_t>(value));
  } else {
    int64_t frame = -1;
    if (!FrameIndex(from, GST_SEEK_TYPE_SET, value, kEndless, frame_bytes, &frame)) return FALSE;
    frames = static_cast<uint64_t>(frame);
  }
  uint64_t out = 0;
  switch (to) {
    case GST_FORMAT_DEFAULT:
      out = frames;
      break;
    case GST_FORMAT_TIME:
      out = timeline.Time(frames);
      break;
    case GST_FORMAT_BYTES:
      if (frame_bytes == 0 || frames > G_MAXINT64 / frame_bytes) return FALSE;
      out = frames * frame_bytes;
      break;
    default:
      return FALSE;
  }
  if (out > static_cast<uint64_t>(G_MAXINT64)) return FALSE;
  gst_query_set_convert(query, from, value, to, static_cast<gint64>(out));
  return TRUE;
}

// The SEEKING query in frames (basesrc answers it in time only): seeks in frames work.
gboolean AnswerSeekingInFrames(GstDitSrc* self, GstQuery* query) {
  GstFormat format;
  gst_query_parse_seeking(query, &format, nullptr, nullptr, nullptr);
  if (format != GST_FORMAT_DEFAULT) return FALSE;
  State& s = *self->s;
  int64_t total;
  {
    std::lock_guard lk(s.mu);
    total = s.total;
  }
  const bool seekable = !gst_base_src_is_live(GST_BASE_SRC(self));
  gst_query_set_seeking(query, GST_FORMAT_DEFAULT, seekable, 0, seekable && total != kEndless ? total : -1);
  return TRUE;
}

gboolean Query(GstBaseSrc* bsrc, GstQuery* query) {
  auto* self = GST_DIT_SRC(bsrc);
  switch (GST_QUERY_TYPE(query)) {
    case GST_QUERY_LATENCY:
      if (AnswerLatency(self, query)) return TRUE;
      break;
    case GST_QUERY_DURATION:
      if (AnswerDuration(self, query)) return TRUE;
      break;
    case GST_QUERY_CONVERT:
      return AnswerConvert(self, query);
    case GST_QUERY_SEEKING:
      if (AnswerSeekingInFrames(self, query)) return TRUE;
      break;
    default:
      break;
  }
  return GST_BASE_SRC_CLASS(gst_dit_src_parent_class)->query(bsrc, query);
}

// Seekable unless live: the same seed and settings make the same frames, so a seek starts the
// engine's stream afresh at the target frame (ds_seek). Exact; what the frames before it cost is
// the model's: a clip that continues the previous one needs that one denoised again.
gboolean IsSeekable(GstBaseSrc* bsrc) { return !gst_base_src_is_live(bsrc); }

// Seeks in frames or bytes (basesrc hands over seeks in any format but time). basesrc's default
// starts them from a blank segment, which loses the running time a non-flushing seek must go on
// from (its base) and the duration, and cannot seek from the end: here the current segment is
// the start, and the positions become the times of those frames on the stream's timeline.
gboolean PrepareSeekSegment(GstBaseSrc* bsrc, GstEvent* event, GstSegment* segment) {
  auto* self = GST_DIT_SRC(bsrc);
  State& s = *self->s;
  gdouble rate;
  GstFormat format;
  GstSeekFlags flags;
  GstSeekType start_type, stop_type;
  gint64 start, stop;
  gst_event_parse_seek(event, &rate, &format, &flags, &start_type, &start, &stop_type, &stop);
  if (format == GST_FORMAT_TIME) {
    return gst_segment_do_seek(segment, rate, format, flags, start_type, start, stop_type, stop, nullptr);
  }
  ditsrc::Timeline timeline;
  int64_t first = -1, last = -1;
  {
    std::lock_guard lk(s.mu);
    const guint64 frame_bytes = s.negotiated ? GST_VIDEO_INFO_SIZE(&s.info) : 0;
    if (!CurrentTimeline(s, &timeline) || !FrameIndex(format, start_type, start, s.total, frame_bytes, &first) ||
        !FrameIndex(format, stop_type, stop, s.total, frame_bytes, &last)) {
      GST_WARNING_OBJECT(self, "seek in %s refused: no such position", gst_format_get_name(format));
      return FALSE;
    }
    // Before negotiation the rate is a guess (the caps may bring another): the first
    // negotiation puts these frames at their real times.
    s.prepared_seek_start = s.negotiated ? -1 : first;
    s.prepared_seek_stop = s.negotiated ? -1 : last;
  }
  GST_OBJECT_LOCK(self);
  gst_segment_copy_into(&bsrc->segment, segment);
  GST_OBJECT_UNLOCK(self);
  auto time = [&](int64_t frame) { return frame < 0 ? -1 : static_cast<gint64>(timeline.Time(frame)); };
  return gst_segment_do_seek(
      segment, rate, GST_FORMAT_TIME, flags, start_type == GST_SEEK_TYPE_NONE ? GST_SEEK_TYPE_NONE : GST_SEEK_TYPE_SET,
      time(first), stop_type == GST_SEEK_TYPE_NONE ? GST_SEEK_TYPE_NONE : GST_SEEK_TYPE_SET, time(last), nullptr);
}

// The seek this thread is making, from the SEEK event as it reaches ditsrc (pad or element):
// basesrc's do_seek sees only the segment, in which a seek that sets no start (moves only the
// stop) cannot be told from one to the segment's start. Thread-local, since basesrc runs a seek in
// the thread that makes it (two threads may seek at once); a seek queued in READY runs later in
// another thread and counts as one that sets a start.
struct SeekInFlight {
  bool active = false, stop_only = false;
};
thread_local SeekInFlight t_seek;

class SeekScope {
 public:
  explicit SeekScope(GstEvent* event) : saved_(t_seek) {
    if (GST_EVENT_TYPE(event) != GST_EVENT_SEEK) return;
    GstSeekType start_type = GST_SEEK_TYPE_NONE;
    gst_event_parse_seek(event, nullptr, nullptr, nullptr, &start_type, nullptr, nullptr, nullptr);
    t_seek = {true, start_type == GST_SEEK_TYPE_NONE};
  }
  ~SeekScope() { t_seek = saved_; }
  SeekScope(const SeekScope&) = delete;
  SeekScope& operator=(const SeekScope&) = delete;

 private:
  SeekInFlight saved_;
};

gboolean SendEvent(GstElement* element, GstEvent* event) {
  SeekScope scope(event);
  return GST_ELEMENT_CLASS(gst_dit_src_parent_class)->send_event(element, event);
}

gboolean Event(GstBaseSrc* bsrc, GstEvent* event) {
  SeekScope scope(event);
  return GST_BASE_SRC_CLASS(gst_dit_src_parent_class)->event(bsrc, event);
}

// Whether a seek to `position` can go on with the stream as it is (ditsrc::EffectOfSeek), the
// worker and its queue kept; the last frame handed out goes back at the queue's head when the seek
// wants it again. `moved`: the seek changed the position (else it moved only the stop). A stream
// that failed is made again.
bool KeepStreamAt(State& s, GstClockTime position, bool moved) {
  std::lock_guard lk(s.mu);
  if (!s.negotiated || s.failed || GST_CLOCK_TIME_IS_VALID(s.seek_to) || !GST_CLOCK_TIME_IS_VALID(position)) {
    return false;
  }
  if (!s.worker.joinable() && !s.ended) return false;
  switch (ditsrc::EffectOfSeek(s.timeline, s.pushed, position, moved, s.lent.has_value() && !s.ended)) {
    case ditsrc::SeekEffect::kKeep:
      return true;
    case ditsrc::SeekEffect::kPutBackLast:
      s.queue.push_front(std::move(*s.lent));
      s.lent.reset();
      --s.pushed;
      s.cv.notify_all();
      return true;
    case ditsrc::SeekEffect::kRestart:
      return false;
  }
  return false;
}

// Runs with the streaming thread stopped (basesrc holds the stream lock), in the thread that made
// the seek (t_seek tells whether it sets a start). Forward playback only:
// frames exist only as a clip is generated, first to last.
gboolean DoSeek(GstBaseSrc* bsrc, GstSegment* segment) {
  auto* self = GST_DIT_SRC(bsrc);
  State& s = *self->s;
  int64_t frames_start, frames_stop;  // a seek in frames before negotiation: applied if accepted
  const bool stop_only = t_seek.active && t_seek.stop_only;
  {
    std::lock_guard lk(s.mu);
    frames_start = std::exchange(s.prepared_seek_start, -1);
    frames_stop = std::exchange(s.prepared_seek_stop, -1);
  }
  if (segment->rate < 0) {
    GST_WARNING_OBJECT(self, "seek refused: reverse playback (rate %f) is not supported", segment->rate);
    return FALSE;
  }
  // basesrc applies a seek queued in READY without asking is_seekable(); a live source plays from
  // now. (The seek to 0 basesrc makes at every start is no seek.)
  if (gst_base_src_is_live(bsrc) && segment->position != 0) {
    GST_WARNING_OBJECT(self, "seek refused: a live source is not seekable");
    return FALSE;
  }
  // A non-flushing seek goes on in running time from where the stream stopped. basesrc prepares a
  // seek in frames before it stops the stream (PrepareSeekSegment), so a frame may have gone out
  // since: the base comes from the position now, as basesrc computes it for seeks in time.
  if (!(segment->flags & GST_SEGMENT_FLAG_RESET)) {
    GST_OBJECT_LOCK(self);
    const guint64 now = gst_segment_to_running_time(&bsrc->segment, GST_FORMAT_TIME, bsrc->segment.position);
    GST_OBJECT_UNLOCK(self);
    if (GST_CLOCK_TIME_IS_VALID(now)) segment->base = now;
  }
  // The position: the new start, or, for a seek that moves only the stop, where the stream is now
  // (basesrc's segment is still the one before the seek; it prepared the seek from a copy, before
  // the last frame may have gone out).
  if (stop_only) {
    GST_OBJECT_LOCK(self);
    if (GST_CLOCK_TIME_IS_VALID(bsrc->segment.position)) segment->position = bsrc->segment.position;
    GST_OBJECT_UNLOCK(self);
  }
  if (!KeepStreamAt(s, segment->position, !stop_only)) {
    StopWorker(s);
    std::lock_guard lk(s.mu);
    s.queue.clear();
    s.ended = s.failed = false;
    s.seek_to = segment->position;
  }
  std::lock_guard lk(s.mu);
  segment->time = segment->start;
  if (s.negotiated && s.total != kEndless) {
    segment->duration = static_cast<gint64>(s.timeline.Time(static_cast<uint64_t>(s.total)));
  }
  s.unnegotiated_seek_start = frames_start;  // -1 for any other seek, which replaces one
  s.unnegotiated_seek_stop = frames_stop;
  return TRUE;
}

// ---- properties ----

// A property change the element's state does not allow (a READY-only property while streaming):
// not a programming error but the application's timing, so a bus warning and the element's log
// rather than a GLib warning (which gst-check and G_DEBUG=fatal-warnings make fatal).
void RefuseWhileStreaming(GstDitSrc* self, const char* name) {
  GST_WARNING_OBJECT(self, "%s can only change in the NULL or READY state: the change is ignored", name);
  GST_ELEMENT_WARNING(self, CORE, STATE_CHANGE,
                      ("Property '%s' can only change in the NULL or READY state; the change is ignored.", name),
                      (nullptr));
}

void SetTableProperty(GstDitSrc* self, int i, const GValue* value) {
  State& s = *self->s;
  const ds_option_info& o = *ds_option_at(i);
  // NULL for a string property is GLib's "back to the default".
  const bool reset = G_VALUE_HOLDS_STRING(value) && g_value_get_string(value) == nullptr;
  const std::string text = reset ? o.default_value : ditsrc::ValueToText(value);
  std::string refused;
  bool streaming = false;
  {
    std::lock_guard lk(s.mu);
    if (s.running() && !o.applies_between_clips) {
      streaming = true;
    } else if (ds_set_option(s.check, o.name, text.c_str()) != DS_OK) {
      refused = ds_error_message(s.check);
    } else {
      s.values[i] = text;
      if (s.running()) s.pending[i] = text;  // ApplyPending: before the next clip
    }
  }
  if (streaming) RefuseWhileStreaming(self, o.name);
  if (!refused.empty()) g_warning("ditsrc: %s=\"%s\" refused: %s", o.name, text.c_str(), refused.c_str());
}

void SetProperty(GObject* object, guint id, const GValue* value, GParamSpec* pspec) {
  auto* self = GST_DIT_SRC(object);
  State& s = *self->s;
  if (id >= kPropTableFirst) {
    SetTableProperty(self, static_cast<int>(id - kPropTableFirst), value);
    return;
  }
  bool started;
  {
    std::lock_guard lk(s.mu);
    started = s.running();
    if (!started && id == kPropNumFrames) s.num_frames = g_value_get_int64(value);
    if (id == kPropProvenance) s.provenance = g_value_get_boolean(value);  // read at each clip
  }
  if (id == kPropProvenance) return;
  if (started) {
    RefuseWhileStreaming(self, pspec->name);
  } else if (id == kPropIsLive) {
    gst_base_src_set_live(GST_BASE_SRC(self), g_value_get_boolean(value));
  } else if (id != kPropNumFrames) {
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

void GetProperty(GObject* object, guint id, GValue* value, GParamSpec* pspec) {
  auto* self = GST_DIT_SRC(object);
  State& s = *self->s;
  if (id >= kPropTableFirst) {
    std::string text;
    {
      std::lock_guard lk(s.mu);
      text = s.values[id - kPropTableFirst];
    }
    ditsrc::TextToValue(text, value);
    return;
  }
  switch (id) {
    case kPropNumFrames: {
      std::lock_guard lk(s.mu);
      g_value_set_int64(value, s.num_frames);
      break;
    }
    case kPropIsLive:
      g_value_set_boolean(value, gst_base_src_is_live(GST_BASE_SRC(self)));
      break;
    case kPropProvenance: {
      std::lock_guard lk(s.mu);
      g_value_set_boolean(value, s.provenance);
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
      break;
  }
}

void InstallProperties(GObjectClass* gobject_class) {
  const auto ready = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(
      gobject_class, kPropNumFrames,
      g_param_spec_int64("num-frames", "Number of frames",
                         "Frames to produce before EOS: -1 = endless (clip after clip, each continuing the "
                         "previous one's motion), 0 = one clip (the frames property, or the model's clip length)",
                         -1, G_MAXINT64, 0, ready));
  g_object_class_install_property(
      gobject_class, kPropIsLive,
      g_param_spec_boolean("is-live", "Is live",
                           "Act as a live source: frames follow the pipeline clock at the frame rate", FALSE, ready));
  g_object_class_install_property(
      gobject_class, kPropProvenance,
      g_param_spec_boolean(
          "provenance", "Provenance tags",
          "Tag each clip: title = the prompt, comment = a JSON record of how it was generated "
          "(AI-generated, engine, model, prompt, seed, sampling, size; no local paths), which "
          "muxers write into the file",
          TRUE, static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING)));
  for (int i = 0; i < ds_option_count(); ++i) {
    const ds_option_info& o = *ds_option_at(i);
    if (g_object_class_find_property(gobject_class, o.name) != nullptr) {
      GST_WARNING("option '%s' clashes with a property of the element: not exposed", o.name);
      continue;
    }
    if (GParamSpec* p = ditsrc::ParamSpecFor(o)) g_object_class_install_property(gobject_class, kPropTableFirst + i, p);
  }
}

void Finalize(GObject* object) {
  State* s = GST_DIT_SRC(object)->s;
  StopWorker(*s);
  ds_destroy(s->gen);
  ds_destroy(s->check);
  delete s;
  G_OBJECT_CLASS(gst_dit_src_parent_class)->finalize(object);
}

void LogToGst(void*, ds_log_level level, const char* message) {
  static constexpr GstDebugLevel kLevels[] = {GST_LEVEL_ERROR, GST_LEVEL_WARNING, GST_LEVEL_INFO, GST_LEVEL_DEBUG};
  const GstDebugLevel gst_level = (level >= 0 && level <= DS_LOG_DEBUG) ? kLevels[level] : GST_LEVEL_LOG;
  GST_CAT_LEVEL_LOG(ditsrc_debug, gst_level, nullptr, "%s", message);
}

}  // namespace

static void gst_dit_src_class_init(GstDitSrcClass* klass) {
  auto* gobject_class = G_OBJECT_CLASS(klass);
  auto* element_class = GST_ELEMENT_CLASS(klass);
  auto* basesrc_class = GST_BASE_SRC_CLASS(klass);
  gobject_class->set_property = SetProperty;
  gobject_class->get_property = GetProperty;
  gobject_class->finalize = Finalize;
  InstallProperties(gobject_class);

  gst_element_class_set_static_metadata(element_class, "ditstream video generator", "Source/Video",
                                        "Generates video from a text prompt with a diffusion transformer",
                                        "ditstream developers");
  GstCaps* caps = TemplateCaps();
  gst_element_class_add_pad_template(element_class, gst_pad_template_new("src", GST_PAD_SRC, GST_PAD_ALWAYS, caps));
  gst_caps_unref(caps);

  basesrc_class->get_caps = GetCaps;
  basesrc_class->fixate = Fixate;
  basesrc_class->negotiate = Negotiate;
  basesrc_class->set_caps = SetCaps;
  basesrc_class->decide_allocation = DecideAllocation;
  basesrc_class->start = Start;
  basesrc_class->stop = Stop;
  basesrc_class->unlock = Unlock;
  basesrc_class->unlock_stop = UnlockStop;
  basesrc_class->is_seekable = IsSeekable;
  basesrc_class->do_seek = DoSeek;
  basesrc_class->prepare_seek_segment = PrepareSeekSegment;
  basesrc_class->event = Event;
  element_class->send_event = SendEvent;
  basesrc_class->get_times = GetTimes;
  basesrc_class->query = Query;
  GST_PUSH_SRC_CLASS(klass)->fill = Fill;
}

static void gst_dit_src_init(GstDitSrc* self) {
  self->s = new State();
  State& s = *self->s;
  s.check = ds_create();
  // The table's defaults, which the GParamSpecs advertise too.
  for (int i = 0; i < ds_option_count(); ++i) s.values.emplace_back(ds_option_at(i)->default_value);
  gst_base_src_set_format(GST_BASE_SRC(self), GST_FORMAT_TIME);
  gst_base_src_set_live(GST_BASE_SRC(self), FALSE);
}

gboolean gst_dit_src_register(GstPlugin* plugin) {
  GST_DEBUG_CATEGORY_INIT(ditsrc_debug, "ditsrc", 0, "ditstream video source, and the engine's log");
  ds_set_log_sink(LogToGst, nullptr);
  return gst_element_register(plugin, "ditsrc", GST_RANK_NONE, GST_TYPE_DIT_SRC);
}
