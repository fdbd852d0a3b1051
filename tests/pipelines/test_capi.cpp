// The C API end to end on a small random model: frames in order, determinism, continuation,
// cancellation and errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "ditstream.h"
#include "tests/support/random_model.h"
#include "tests/support/yuv_reference.h"

namespace {

struct Collected {
  std::vector<std::vector<uint8_t>> frames;
  std::vector<int64_t> indices;
  int width = 0, height = 0, progress_calls = 0, denoise_events = 0, decode_events = 0, cancel_at_step = -1;
  ds_generator* gen = nullptr;
};

int OnFrame(void* user, const ds_frame* f) {
  auto* c = static_cast<Collected*>(user);
  c->frames.emplace_back(f->rgb, f->rgb + static_cast<size_t>(f->width) * f->height * 3);
  c->indices.push_back(f->index);
  c->width = f->width;
  c->height = f->height;
  return 0;
}

void OnProgress(void* user, const ds_progress* p) {
  auto* c = static_cast<Collected*>(user);
  ++c->progress_calls;
  if (p->stage == DS_STAGE_DENOISE) ++c->denoise_events;
  if (p->stage == DS_STAGE_DECODE) ++c->decode_events;
  if (p->stage == DS_STAGE_DENOISE && p->step == c->cancel_at_step) ds_cancel(c->gen);
}

class CApi : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("ds_capi_" + std::to_string(::getpid()));
    ds::testing::RandomModelSpec spec;
    spec.frames = 6;
    ASSERT_EQ(ds::testing::WriteRandomModel(dir_.string(), spec, 3), "");
    gen_ = ds_create();
    ASSERT_NE(gen_, nullptr);
    ASSERT_EQ(ds_set_option(gen_, "model", dir_.c_str()), DS_OK);
    ASSERT_EQ(ds_set_option(gen_, "prompt", "a red circle moving left"), DS_OK);
    ASSERT_EQ(ds_set_option(gen_, "threads", "2"), DS_OK);
  }
  void TearDown() override {
    ds_destroy(gen_);
    std::filesystem::remove_all(dir_);
  }
  Collected Generate(int continue_previous = 0) {
    Collected c;
    c.gen = gen_;
    EXPECT_EQ(ds_generate(gen_, continue_previous, OnFrame, OnProgress, &c), DS_OK) << ds_error_message(gen_);
    return c;
  }
  std::filesystem::path dir_;
  ds_generator* gen_ = nullptr;
};

TEST_F(CApi, GeneratesFramesInOrder) {
  ASSERT_EQ(ds_load(gen_), DS_OK) << ds_error_message(gen_);
  ds_model_info info;
  ASSERT_EQ(ds_get_model_info(gen_, &info), DS_OK);
  EXPECT_EQ(info.native_frames, 6);
  EXPECT_EQ(info.fps_num, 8);
  const Collected c = Generate();
  ASSERT_EQ(c.frames.size(), 6u);
  EXPECT_EQ(c.width, 32);
  EXPECT_EQ(c.height, 32);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(c.indices[i], i);
  EXPECT_GT(c.progress_calls, 3 + 6);
  EXPECT_NE(c.frames[0], c.frames[5]);
}

TEST_F(CApi, SameSeedSameFramesOtherSeedOtherFrames) {
  ASSERT_EQ(ds_load(gen_), DS_OK);
  const Collected a = Generate(), b = Generate();
  EXPECT_EQ(a.frames, b.frames);
  ASSERT_EQ(ds_set_option(gen_, "seed", "99"), DS_OK);
  EXPECT_NE(Generate().frames, a.frames);
  ASSERT_EQ(ds_set_option(gen_, "seed", "0"), DS_OK);
  ASSERT_EQ(ds_set_option(gen_, "prompt", "a blue square moving up"), DS_OK);
  EXPECT_NE(Generate().frames, a.frames);
}

TEST_F(CApi, ContinuationCountsOnWithoutRepeats) {
  ASSERT_EQ(ds_load(gen_), DS_OK);
  const Collected first = Generate();
  const Collected next = Generate(1);
  // The random model carries 2 prefix frames, so a continued 6-frame clip adds 4 new frames.
  ASSERT_EQ(next.frames.size(), 4u);
  EXPECT_EQ(next.indices.front(), 6);
  EXPECT_EQ(next.indices.back(), 9);
}

// The prompt-embedding cache fills up over clips of ever new prompt pairs; a clip after that is
// still the clip a fresh generator makes (the cache once freed the prompt's embedding while the
// negative prompt was encoded, and the clip read freed memory).
TEST_F(CApi, ManyPromptPairsLaterMakeTheSameClipAsAFreshGenerator) {
  ASSERT_EQ(ds_load(gen_), DS_OK);
  const char* colours[] = {"red", "green", "blue", "cyan", "magenta", "yellow"};
  for (const char* colour : colours) {
    ASSERT_EQ(ds_set_option(gen_, "prompt", (std::string("a ") + colour + " circle moving left").c_str()), DS_OK);
    ASSERT_EQ(ds_set_option(gen_, "negative-prompt", (std::string("a ") + colour + " square").c_str()), DS_OK);
    Generate();
  }
  const Collected reused = Generate();
  ds_generator* fresh = ds_create();
  ASSERT_NE(fresh, nullptr);
  for (const char* name : {"model", "prompt", "negative-prompt", "threads"}) {
    std::vector<char> value(4096);
    ASSERT_EQ(ds_get_option(gen_, name, value.data(), value.size()), DS_OK);
    ASSERT_EQ(ds_set_option(fresh, name, value.data()), DS_OK);
  }
  ASSERT_EQ(ds_load(fresh), DS_OK);
  Collected c;
  c.gen = fresh;
  ASSERT_EQ(ds_generate(fresh, 0, OnFrame, OnProgress, &c), DS_OK);
  ds_destroy(fresh);
  EXPECT_EQ(reused.frames, c.frames);
}

// A frame callback that tries to reload, regenerate or reconfigure its own generator is refused
// with DS_ERR_STATE (it once freed the running clip's model), and the clip goes on unchanged.
struct Reentry {
  ds_generator* gen = nullptr;
  std::vector<ds_status> statuses;
  std::vector<std::vector<uint8_t>> frames;
};

int OnFrameReenter(void* user, const ds_frame* f) {
  auto* r = static_cast<Reentry*>(user);
  r->frames.emplace_back(f->rgb, f->rgb + static_cast<size_t>(f->width) * f->height * 3);
  if (r->frames.size() == 2) {
    r->statuses.push_back(ds_load(r->gen));
    r->statuses.push_back(ds_generate(r->gen, 0, nullptr, nullptr, nullptr));
    r->statuses.push_back(ds_set_option(r->gen, "seed", "5"));
    r->statuses.push_back(ds_set_pixel_format(r->gen, DS_PIXEL_I420));
    ds_model_info info;
    r->statuses.push_back(ds_get_model_info(r->gen, &info));  // reading is fine
  }
  return 0;
}

TEST_F(CApi, CallbacksCannotChangeTheirOwnGenerator) {
  ASSERT_EQ(ds_load(gen_), DS_OK);
  const Collected plain = Generate();
  Reentry r;
  r.gen = gen_;
  ASSERT_EQ(ds_generate(gen_, 0, OnFrameReenter, nullptr, &r), DS_OK) << ds_error_message(gen_);
  EXPECT_EQ(r.statuses, (std::vector<ds_status>{DS_ERR_STATE, DS_ERR_STATE, DS_ERR_STATE, DS_ERR_STATE, DS_OK}));
  EXPECT_EQ(r.frames, plain.frames);
  // After ds_generate returns, the same calls work again.
  EXPECT_EQ(ds_set_option(gen_, "seed", "5"), DS_OK);
  EXPECT_EQ(ds_load(gen_), DS_OK);
}

// A log sink may replace itself (it once deadlocked on the library's log lock).
int sink_calls = 0;
void SinkThatRemovesItself(void*, ds_log_level, const char*) {
  ++sink_calls;
  ds_set_log_sink(nullptr, nullptr);
}

TEST_F(CApi, LogSinkMayReplaceItself) {
  ds_set_log_sink(SinkThatRemovesItself, nullptr);
  ASSERT_EQ(ds_load(gen_), DS_OK);
  ASSERT_EQ(ds_set_option(gen_, "prompt", "a xyzzy circle moving left"), DS_OK);  // an unknown word: a warning
  Generate();
  EXPECT_EQ(sink_calls, 1) << "the first message reached the sink, which then removed itself";
  ds_set_log_sink(nullptr, nullptr);
}

std::vector<std::string> logged;
void KeepMessages(void*, ds_log_level level, const char* message) {
  if (level == DS_LOG_WARNING) logged.emplace_back(message);
}

// A prompt with no word the model knows (punctuation, another script) generates, and says so.
TEST_F(CApi, PromptWithNoKnownWordIsAWarning) {
  logged.clear();
  ds_set_log_sink(KeepMessages, nullptr);
  ASSERT_EQ(ds_load(gen_), DS_OK);
  ASSERT_EQ(ds_set_option(gen_, "prompt", "!!! \u65e5\u672c"), DS_OK);
  Generate();
  ASSERT_EQ(ds_set_option(gen_, "prompt", "a red circle"), DS_OK);
  Generate();
  ds_set_log_sink(nullptr, nullptr);
  size_t warned = 0;
  for (const std::string& m : logged) warned += m.find("no word of the prompt") != std::string::npos;
  EXPECT_EQ(warned, 1u) << "one warning, for the first prompt only";
}

// A continued clip that the consumer stopped is made again by the next continuation, which
// delivers from the first frame the consumer did not take: the stream is the uninterrupted one.
struct StopAfter {
  Collected c;
  size_t take = 0;
};
int OnFrameStopAfter(void* user, const ds_frame* f) {
  auto* s = static_cast<StopAfter*>(user);
  if (s->c.frames.size() == s->take) return 1;  // this one is refused
  return OnFrame(&s->c, f);
}

TEST_F(CApi, ContinuingAfterAStoppedClipRepeatsNoFrame) {
  ASSERT_EQ(ds_load(gen_), DS_OK);
  Generate();
  const Collected whole = Generate(1);  // 4 new frames, indices 6-9
  ASSERT_EQ(whole.indices, (std::vector<int64_t>{6, 7, 8, 9}));

  Generate();  // the same first clip again
  StopAfter stopped;
  stopped.take = 2;
  stopped.c.gen = gen_;
  EXPECT_EQ(ds_generate(gen_, 1, OnFrameStopAfter, nullptr, &stopped), DS_ERR_CANCELLED);
  ASSERT_EQ(stopped.c.indices, (std::vector<int64_t>{6, 7}));
  const Collected rest = Generate(1);
  EXPECT_EQ(rest.indices, (std::vector<int64_t>{8, 9}));
  ASSERT_EQ(rest.frames.size(), 2u);
  EXPECT_EQ(rest.frames[0], whole.frames[2]);
  EXPECT_EQ(rest.frames[1], whole.frames[3]);
  const Collected next = Generate(1);  // and the stream goes on as the uninterrupted one would
  EXPECT_EQ(next.indices.front(), 10);
}

// A seek into the third clip of a model that continues its clips: the two before it are denoised
// again (the third continues the second's latents), one call each, with no frame decoded or
// delivered; then the third's frames from the target on are those of an unseeked stream.
TEST_F(CApi, SeekMakesTheStreamAgainUpToTheTarget) {
  ASSERT_EQ(ds_load(gen_), DS_OK);
  Generate();
  Generate(1);
  const Collected third = Generate(1);  // the random model's 2 prefix frames: indices 10-13
  ASSERT_EQ(third.indices, (std::vector<int64_t>{10, 11, 12, 13}));
  ASSERT_EQ(ds_seek(gen_, 11), DS_OK) << ds_error_message(gen_);
  for (int clip = 0; clip < 2; ++clip) {
    // The first call after a seek starts the new stream whatever continue_previous says.
    const Collected c = Generate(clip == 0 ? 0 : 1);
    EXPECT_TRUE(c.frames.empty()) << "clip " << clip;
    EXPECT_GT(c.denoise_events, 0) << "clip " << clip << " was not denoised";
    EXPECT_EQ(c.decode_events, 0) << "clip " << clip << ": a frame before the target was decoded";
  }
  const Collected seeked = Generate(1);
  ASSERT_EQ(seeked.indices, (std::vector<int64_t>{11, 12, 13}));
  EXPECT_EQ(seeked.frames, std::vector<std::vector<uint8_t>>(third.frames.begin() + 1, third.frames.end()));
  EXPECT_EQ(Generate(1).indices, (std::vector<int64_t>{14, 15, 16, 17})) << "and the stream goes on";
}

TEST_F(CApi, SeekRefusesNegativeFramesAndAnUnloadedGenerator) {
  EXPECT_EQ(ds_seek(gen_, 3), DS_ERR_STATE);
  ASSERT_EQ(ds_load(gen_), DS_OK);
  EXPECT_EQ(ds_seek(gen_, -1), DS_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(ds_error_message(gen_)).find("-1"), std::string::npos) << ds_error_message(gen_);
  EXPECT_EQ(ds_seek(nullptr, 0), DS_ERR_INVALID_ARGUMENT);
  // Seeking to 0 is a new stream's first frame.
  const Collected first = Generate();
  Generate(1);
  ASSERT_EQ(ds_seek(gen_, 0), DS_OK);
  EXPECT_EQ(Generate(1).frames, first.frames);
}

// A new stream (continue_previous 0) owes nothing to the last one: its first clip, stopped and
// continued, is the new stream's first clip, not one conditioned on the old stream's last.
TEST_F(CApi, ANewStreamsStoppedFirstClipIgnoresTheOldStream) {
  ASSERT_EQ(ds_load(gen_), DS_OK);
  const Collected first = Generate();
  Generate(1);
  StopAfter stopped;
  stopped.take = 2;
  EXPECT_EQ(ds_generate(gen_, 0, OnFrameStopAfter, nullptr, &stopped), DS_ERR_CANCELLED);
  const Collected rest = Generate(1);
  EXPECT_EQ(rest.indices, (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(rest.frames, std::vector<std::vector<uint8_t>>(first.frames.begin() + 2, first.frames.end()));
}

// The CPU backend splits work by the thread count, never the arithmetic: 1 and 2 threads make the
// same bytes (the provenance records the thread count all the same). The bundled model, whose ops
// are large enough to run on both threads (the test model's are not).
TEST_F(CApi, OneAndTwoThreadsMakeTheSameBytes) {
  ASSERT_EQ(ds_set_option(gen_, "model", "demo"), DS_OK);
  ASSERT_EQ(ds_set_option(gen_, "steps", "4"), DS_OK);
  std::vector<std::vector<std::vector<uint8_t>>> runs;
  for (const char* threads : {"1", "2"}) {
    ASSERT_EQ(ds_set_option(gen_, "threads", threads), DS_OK);
    ASSERT_EQ(ds_load(gen_), DS_OK);
    runs.push_back(Generate().frames);
    const Collected next = Generate(1);  // a continuation too: prefix conditioning is in the path
    runs.back().insert(runs.back().end(), next.frames.begin(), next.frames.end());
  }
  EXPECT_EQ(runs[0], runs[1]);
}

TEST_F(CApi, OutputShapeFollowsOptions) {
  ASSERT_EQ(ds_set_option(gen_, "frames", "4"), DS_OK);
  ASSERT_EQ(ds_set_option(gen_, "width", "48"), DS_OK);
  ASSERT_EQ(ds_load(gen_), DS_OK) << ds_error_message(gen_);
  int w = 0, h = 0, f = 0;
  ASSERT_EQ(ds_get_output_shape(gen_, &w, &h, &f), DS_OK);
  EXPECT_EQ(w, 48);
  EXPECT_EQ(h, 32);
  EXPECT_EQ(f, 4);
  const Collected c = Generate();
  EXPECT_EQ(c.frames.size(), 4u);
  EXPECT_EQ(c.width, 48);
}

TEST_F(CApi, CancelStopsPromptly) {
  ASSERT_EQ(ds_set_option(gen_, "steps", "20"), DS_OK);
  ASSERT_EQ(ds_load(gen_), DS_OK);
  Collected c;
  c.gen = gen_;
  c.cancel_at_step = 2;
  EXPECT_EQ(ds_generate(gen_, 0, OnFrame, OnProgress, &c), DS_ERR_CANCELLED);
  EXPECT_TRUE(c.frames.empty());
  ds_reset_cancel(gen_);
  EXPECT_EQ(Generate().frames.size(), 6u);
}

TEST_F(CApi, FrameCallbackCanStop) {
  ASSERT_EQ(ds_load(gen_), DS_OK);
  int seen = 0;
  auto stop_after_two = [](void* user, const ds_frame*) { return ++*static_cast<int*>(user) >= 2 ? 1 : 0; };
  EXPECT_EQ(ds_generate(gen_, 0, stop_after_two, nullptr, &seen), DS_ERR_CANCELLED);
  EXPECT_EQ(seen, 2);
}

TEST_F(CApi, ErrorsAreCodesWithMessages) {
  EXPECT_EQ(ds_generate(gen_, 0, OnFrame, nullptr, nullptr), DS_ERR_STATE);
  EXPECT_NE(std::string(ds_error_message(gen_)).find("ds_load"), std::string::npos);
  EXPECT_EQ(ds_set_option(gen_, "steps", "-1"), DS_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(ds_error_message(gen_)).find("steps"), std::string::npos);
  EXPECT_EQ(ds_set_option(gen_, "no-such-option", "1"), DS_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ds_set_option(gen_, "width", "40"), DS_OK);  // in the table's range, not the model's
  EXPECT_EQ(ds_load(gen_), DS_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(ds_error_message(gen_)).find("width 40"), std::string::npos);
  EXPECT_EQ(ds_set_option(gen_, "width", "0"), DS_OK);
  EXPECT_EQ(ds_set_option(gen_, "model", "/nonexistent/model"), DS_OK);
  EXPECT_EQ(ds_load(gen_), DS_ERR_IO);
  EXPECT_NE(std::string(ds_error_message(gen_)).find("/nonexistent/model"), std::string::npos);
  EXPECT_EQ(ds_set_option(nullptr, "steps", "1"), DS_ERR_INVALID_ARGUMENT);
}

// A frame as delivered in any format: its planes' bytes, strides and the rgb field.
struct PlanarFrame {
  ds_pixel_format format;
  ds_yuv_matrix matrix;
  int planes, width, height;
  bool rgb_set;
  std::vector<uint8_t> plane[3];
  int stride[3];
};

int OnPlanes(void* user, const ds_frame* f) {
  auto* frames = static_cast<std::vector<PlanarFrame>*>(user);
  PlanarFrame p{f->format, f->matrix, f->planes, f->width, f->height, f->rgb != nullptr, {}, {}};
  for (int i = 0; i < f->planes; ++i) {
    const int rows = i == 0 ? f->height : (f->height + 1) / 2;
    p.plane[i].assign(f->data[i], f->data[i] + static_cast<size_t>(f->stride[i]) * rows);
    p.stride[i] = f->stride[i];
  }
  frames->push_back(std::move(p));
  return 0;
}

// The same clip (same seed) in RGB, RGBA, I420 in both matrices and NV12. RGBA is RGB plus an
// opaque alpha; I420's samples are within one level of BT.601 or BT.709 computed in floating point
// from the RGB frames (tests/support/yuv_reference.h); NV12 is I420 with U and V interleaved.
TEST_F(CApi, PixelFormatsDescribeTheSameFrames) {
  ASSERT_EQ(ds_load(gen_), DS_OK) << ds_error_message(gen_);
  const Collected rgb = Generate();
  ASSERT_FALSE(rgb.frames.empty());
  const int w = rgb.width, h = rgb.height, cw = (w + 1) / 2;
  std::vector<PlanarFrame> rgba, i420, i420_709, nv12_709;
  ASSERT_EQ(ds_set_pixel_format(gen_, DS_PIXEL_RGBA), DS_OK);
  ASSERT_EQ(ds_generate(gen_, 0, OnPlanes, nullptr, &rgba), DS_OK) << ds_error_message(gen_);
  ASSERT_EQ(ds_set_pixel_format(gen_, DS_PIXEL_I420), DS_OK);
  ASSERT_EQ(ds_generate(gen_, 0, OnPlanes, nullptr, &i420), DS_OK) << ds_error_message(gen_);
  ASSERT_EQ(ds_set_yuv_matrix(gen_, DS_YUV_BT709), DS_OK);
  ASSERT_EQ(ds_generate(gen_, 0, OnPlanes, nullptr, &i420_709), DS_OK) << ds_error_message(gen_);
  ASSERT_EQ(ds_set_pixel_format(gen_, DS_PIXEL_NV12), DS_OK);
  ASSERT_EQ(ds_generate(gen_, 0, OnPlanes, nullptr, &nv12_709), DS_OK) << ds_error_message(gen_);
  ASSERT_EQ(rgba.size(), rgb.frames.size());
  ASSERT_EQ(i420.size(), rgb.frames.size());
  ASSERT_EQ(i420_709.size(), rgb.frames.size());
  ASSERT_EQ(nv12_709.size(), rgb.frames.size());
  bool matrices_differ = false;
  for (size_t f = 0; f < rgb.frames.size(); ++f) {
    SCOPED_TRACE("frame " + std::to_string(f));
    const std::vector<uint8_t>& src = rgb.frames[f];
    const PlanarFrame& a = rgba[f];
    EXPECT_EQ(a.format, DS_PIXEL_RGBA);
    EXPECT_FALSE(a.rgb_set);
    ASSERT_EQ(a.planes, 1);
    ASSERT_EQ(a.stride[0], 4 * w);
    for (int i = 0; i < w * h; ++i) {
      for (int c = 0; c < 3; ++c) ASSERT_EQ(a.plane[0][4 * i + c], src[3 * i + c]) << "pixel " << i;
      ASSERT_EQ(a.plane[0][4 * i + 3], 255);
    }
    for (const auto& [y, standard, matrix] : {std::tuple{&i420[f], ds::testing::kBt601, DS_YUV_BT601},
                                              std::tuple{&i420_709[f], ds::testing::kBt709, DS_YUV_BT709}}) {
      SCOPED_TRACE(standard.name);
      EXPECT_EQ(y->format, DS_PIXEL_I420);
      EXPECT_EQ(y->matrix, matrix);
      EXPECT_FALSE(y->rgb_set);
      ASSERT_EQ(y->planes, 3);
      ASSERT_EQ(y->stride[0], w);
      ASSERT_EQ(y->stride[1], cw);
      ASSERT_EQ(y->stride[2], cw);
      ASSERT_TRUE(ds::testing::I420Matches(standard, src.data(), w, h, y->plane[0].data(), y->stride[0],
                                           y->plane[1].data(), y->plane[2].data(), y->stride[1]));
    }
    matrices_differ = matrices_differ || i420[f].plane[0] != i420_709[f].plane[0];
    const PlanarFrame& n = nv12_709[f];
    EXPECT_EQ(n.format, DS_PIXEL_NV12);
    EXPECT_EQ(n.matrix, DS_YUV_BT709);
    ASSERT_EQ(n.planes, 2);
    ASSERT_EQ(n.stride[0], w);
    ASSERT_EQ(n.stride[1], 2 * cw);
    EXPECT_EQ(n.plane[0], i420_709[f].plane[0]);
    ASSERT_EQ(n.plane[1].size(), 2 * i420_709[f].plane[1].size());
    for (size_t k = 0; k < i420_709[f].plane[1].size(); ++k) {
      ASSERT_EQ(n.plane[1][2 * k], i420_709[f].plane[1][k]) << "U " << k;
      ASSERT_EQ(n.plane[1][2 * k + 1], i420_709[f].plane[2][k]) << "V " << k;
    }
  }
  EXPECT_TRUE(matrices_differ) << "BT.709's luma equals BT.601's on every frame: the matrix was not applied";
  EXPECT_EQ(ds_set_pixel_format(gen_, static_cast<ds_pixel_format>(7)), DS_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(ds_error_message(gen_)).find("pixel format 7"), std::string::npos) << ds_error_message(gen_);
  EXPECT_EQ(ds_set_yuv_matrix(gen_, static_cast<ds_yuv_matrix>(-1)), DS_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(ds_error_message(gen_)).find("YUV matrix -1"), std::string::npos) << ds_error_message(gen_);
  EXPECT_EQ(ds_set_yuv_matrix(nullptr, DS_YUV_BT709), DS_ERR_INVALID_ARGUMENT);
}

// The provenance JSON, parsed: what the model was asked (the options as resolved: steps set,
// guidance the model's default, the output shape), the model by its folder's name only, and the
// size-query protocol of the buffer.
TEST_F(CApi, ProvenanceRecordsHowToMakeTheVideoAgain) {
  size_t length = 0;
  EXPECT_EQ(ds_get_provenance(gen_, nullptr, 0, &length), DS_ERR_STATE);
  ASSERT_EQ(ds_set_option(gen_, "seed", "7"), DS_OK);
  ASSERT_EQ(ds_set_option(gen_, "steps", "3"), DS_OK);
  ASSERT_EQ(ds_set_option(gen_, "negative-prompt", "blurry \"quoted\""), DS_OK);
  ASSERT_EQ(ds_load(gen_), DS_OK) << ds_error_message(gen_);
  ASSERT_EQ(ds_get_provenance(gen_, nullptr, 0, &length), DS_OK) << ds_error_message(gen_);
  ASSERT_GT(length, 0u);

  std::string small(length, '#');  // one byte short of the NUL
  EXPECT_EQ(ds_get_provenance(gen_, small.data(), small.size(), nullptr), DS_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(small, std::string(length, '#')) << "a buffer that is too small stays untouched";
  EXPECT_NE(std::string(ds_error_message(gen_)).find(std::to_string(length + 1) + " bytes"), std::string::npos)
      << ds_error_message(gen_);

  std::vector<char> buf(length + 1, '#');
  size_t written = 0;
  ASSERT_EQ(ds_get_provenance(gen_, buf.data(), buf.size(), &written), DS_OK) << ds_error_message(gen_);
  EXPECT_EQ(written, length);
  const std::string text(buf.data());
  EXPECT_EQ(text.size(), length);
  EXPECT_EQ(text.find(dir_.parent_path().string()), std::string::npos) << "a local path leaked: " << text;

  const nlohmann::json j = nlohmann::json::parse(text);
  ds_model_info info{};
  ASSERT_EQ(ds_get_model_info(gen_, &info), DS_OK);
  int w = 0, h = 0, frames = 0;
  ASSERT_EQ(ds_get_output_shape(gen_, &w, &h, &frames), DS_OK);
  EXPECT_EQ(j.at("generator"), std::string("ditstream ") + ds_version());
  EXPECT_EQ(j.at("ai_generated"), true);
  EXPECT_EQ(j.at("model").at("name"), dir_.filename().string());
  EXPECT_EQ(j.at("model").at("family"), info.family);
  EXPECT_EQ(j.at("prompt"), "a red circle moving left");
  EXPECT_EQ(j.at("negative_prompt"), "blurry \"quoted\"");
  EXPECT_EQ(j.at("seed"), 7);
  EXPECT_EQ(j.at("steps"), 3);
  EXPECT_EQ(j.at("guidance").get<double>(), info.default_guidance);
  EXPECT_EQ(j.at("shift").get<double>(), info.default_shift);
  EXPECT_EQ(j.at("width"), w);
  EXPECT_EQ(j.at("height"), h);
  EXPECT_EQ(j.at("frames"), frames);
  EXPECT_EQ(j.at("fps").get<double>(), static_cast<double>(info.fps_num) / info.fps_den);
  EXPECT_EQ(j.at("device"), "cpu");
  EXPECT_EQ(j.at("threads"), 2) << "the backend's resolved thread count";
  const nlohmann::json& options = j.at("options");
  EXPECT_EQ(options.size(), static_cast<size_t>(ds_option_count()));
  EXPECT_EQ(options.at("steps"), 3);
  EXPECT_EQ(options.at("guidance").get<double>(), -1.0);  // as set: the sentinel
  EXPECT_EQ(options.at("model"), dir_.filename().string());

  // Options changed after ds_load that only a new ds_load would apply do not change the record:
  // it describes what ds_generate would make now, with the loaded model and device.
  ASSERT_EQ(ds_set_option(gen_, "model", "some-other-model"), DS_OK);
  ASSERT_EQ(ds_set_option(gen_, "device", "reference"), DS_OK);
  std::vector<char> after(length + 64);
  ASSERT_EQ(ds_get_provenance(gen_, after.data(), after.size(), nullptr), DS_OK);
  const nlohmann::json k = nlohmann::json::parse(after.data());
  EXPECT_EQ(k.at("model").at("name"), dir_.filename().string());
  EXPECT_EQ(k.at("options").at("model"), dir_.filename().string());
  EXPECT_EQ(k.at("options").at("device"), j.at("options").at("device"));
}

TEST_F(CApi, OptionTableIsExposed) {
  ASSERT_GT(ds_option_count(), 10);
  EXPECT_EQ(ds_option_at(ds_option_count()), nullptr);
  const ds_option_info* o = ds_option_find("negative_prompt");
  ASSERT_NE(o, nullptr);
  EXPECT_STREQ(o->name, "negative-prompt");
  char buf[64];
  ASSERT_EQ(ds_get_option(gen_, "prompt", buf, sizeof buf), DS_OK);
  EXPECT_STREQ(buf, "a red circle moving left");
  ASSERT_EQ(ds_get_option(gen_, "prompt", buf, 4), DS_OK);
  EXPECT_STREQ(buf, "a r");
}

std::vector<std::string> cache_reports;
void KeepCacheReports(void*, ds_log_level, const char* message) {
  if (std::strstr(message, "first-block cache") != nullptr) cache_reports.emplace_back(message);
}

// The first-block cache on the bundled (trained) model: under a threshold no change passes, the
// frames are the uncached ones to the byte; at 0.4 most of its 16 steps skip the later blocks (its
// first block's residual moves by 10 to 40 % a step), the frames change, and the log says how many.
TEST_F(CApi, CacheThresholdSkipsBlocksOnTheBundledModel) {
  ASSERT_EQ(ds_set_option(gen_, "model", "demo"), DS_OK);
  ASSERT_EQ(ds_load(gen_), DS_OK) << ds_error_message(gen_);
  const Collected plain = Generate();
  ds_set_log_sink(KeepCacheReports, nullptr);
  cache_reports.clear();
  ASSERT_EQ(ds_set_option(gen_, "cache-threshold", "1e-30"), DS_OK);
  EXPECT_EQ(Generate().frames, plain.frames);
  ASSERT_EQ(ds_set_option(gen_, "cache-threshold", "0.4"), DS_OK);
  const Collected cached = Generate();
  ds_set_log_sink(nullptr, nullptr);
  ASSERT_EQ(cached.frames.size(), plain.frames.size());
  EXPECT_NE(cached.frames, plain.frames);
  ASSERT_EQ(cache_reports.size(), 2u);
  EXPECT_NE(cache_reports[0].find("in 0 of 16 forwards"), std::string::npos) << cache_reports[0];
  int reused = 0, forwards = 0;
  const char* at = std::strstr(cache_reports[1].c_str(), "blocks in ");
  ASSERT_NE(at, nullptr) << cache_reports[1];
  ASSERT_EQ(std::sscanf(at, "blocks in %d of %d", &reused, &forwards), 2) << cache_reports[1];
  EXPECT_EQ(forwards, 16);
  EXPECT_GT(reused, 0);
  EXPECT_LT(reused, 16) << "the first step has nothing to reuse";
  ASSERT_EQ(ds_set_option(gen_, "cache-threshold", "0"), DS_OK);
  EXPECT_EQ(Generate().frames, plain.frames) << "no state is left behind";
}

// The header's version macros are the library's version (a header and library from one build).
TEST(CApiVersion, MacrosMatchTheLibrary) {
  EXPECT_EQ(std::to_string(DS_VERSION_MAJOR) + "." + std::to_string(DS_VERSION_MINOR) + "." +
                std::to_string(DS_VERSION_PATCH),
            ds_version());
}

}  // namespace
