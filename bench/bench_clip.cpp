// A clip end to end through the C API: model load, then generation (by default the README's clip:
// bundled model, default steps and guidance), reporting total time, time to first frame, and the
// time of each stage from the progress events (text encoding, denoising per step, decoding).
//   bench_clip [MODEL] [--runs N] [--threads N] [--format rgb|rgba|i420|nv12] [--set name=value]...
// --format: the frames' pixel format (ds_set_pixel_format), made by the engine on its device.
// e.g. a Wan2.1 folder (bench/make_random_wan writes one with random weights):
//   bench_clip /tmp/wan-random --runs 1 --set width=256 --set height=256 --set frames=5 --set steps=2
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ditstream.h"

namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Timing {
  double start = 0, first = -1, text_end = -1, denoise_end = -1, first_step = -1;
  int frames = 0, steps = 0;
};

int OnFrame(void* user, const ds_frame*) {
  auto* t = static_cast<Timing*>(user);
  if (t->first < 0) t->first = Now() - t->start;
  ++t->frames;
  return 0;
}

void OnProgress(void* user, const ds_progress* p) {
  auto* t = static_cast<Timing*>(user);
  const double now = Now() - t->start;
  if (p->stage == DS_STAGE_TEXT && p->step == p->total) t->text_end = now;
  if (p->stage == DS_STAGE_DENOISE) {
    if (p->step == 1) t->first_step = now;
    if (p->step == p->total) t->denoise_end = now;
    t->steps = p->total;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const char* model = "demo";
  int runs = 5;
  const char* threads = "0";
  std::vector<std::string> sets;
  std::string format = "rgb";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--runs") && i + 1 < argc)
      runs = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = argv[++i];
    else if (!std::strcmp(argv[i], "--set") && i + 1 < argc)
      sets.emplace_back(argv[++i]);
    else if (!std::strcmp(argv[i], "--format") && i + 1 < argc)
      format = argv[++i];
    else
      model = argv[i];
  }
  ds_generator* gen = ds_create();
  ds_set_option(gen, "model", model);
  ds_set_option(gen, "threads", threads);
  ds_set_option(gen, "prompt", "a red circle moving right");
  for (const std::string& s : sets) {
    const size_t eq = s.find('=');
    if (eq == std::string::npos || ds_set_option(gen, s.substr(0, eq).c_str(), s.substr(eq + 1).c_str()) != DS_OK) {
      std::fprintf(stderr, "bench_clip: --set %s: %s\n", s.c_str(),
                   eq == std::string::npos ? "expected name=value" : ds_error_message(gen));
      return 2;
    }
  }
  const ds_pixel_format pixels = format == "i420"   ? DS_PIXEL_I420
                                 : format == "nv12" ? DS_PIXEL_NV12
                                 : format == "rgba" ? DS_PIXEL_RGBA
                                                    : DS_PIXEL_RGB;
  if ((pixels == DS_PIXEL_RGB && format != "rgb") || ds_set_pixel_format(gen, pixels) != DS_OK) {
    std::fprintf(stderr, "bench_clip: --format %s: expected rgb, rgba, i420 or nv12\n", format.c_str());
    return 2;
  }
  const double t0 = Now();
  if (ds_load(gen) != DS_OK) {
    std::fprintf(stderr, "bench_clip: %s\n", ds_error_message(gen));
    return 1;
  }
  const double load_s = Now() - t0;
  ds_model_info info;
  ds_get_model_info(gen, &info);
  int width = 0, height = 0, clip_frames = 0;
  ds_get_output_shape(gen, &width, &height, &clip_frames);
  double best = 1e30;
  Timing best_t;
  for (int r = 0; r < runs; ++r) {
    Timing t;
    t.start = Now();
    if (ds_generate(gen, 0, OnFrame, OnProgress, &t) != DS_OK) {
      std::fprintf(stderr, "bench_clip: %s\n", ds_error_message(gen));
      return 1;
    }
    const double total = Now() - t.start;
    if (total < best) {
      best = total;
      best_t = t;
    }
  }
  const double video_s = static_cast<double>(best_t.frames) * info.fps_den / info.fps_num;
  std::printf("model %s (%s): %d frames %dx%d %s at %d fps (%.2f s of video), %d steps, threads %s\n", model,
              info.family, best_t.frames, width, height, format.c_str(), info.fps_num, video_s, best_t.steps, threads);
  std::printf("  model load          %8.3f s\n", load_s);
  std::printf("  clip (best of %d)    %8.3f s  = %.2f× real time\n", runs, best, video_s / best);
  if (best_t.text_end >= 0)
    std::printf("  text encoding       %8.3f s (cached after the first run)\n", best_t.text_end);
  if (best_t.denoise_end >= 0 && best_t.steps > 0) {
    std::printf("  denoising           %8.3f s (%.3f s per step)\n", best_t.denoise_end - best_t.text_end,
                (best_t.denoise_end - best_t.text_end) / best_t.steps);
    std::printf("  decoding            %8.3f s\n", best - best_t.denoise_end);
  }
  std::printf("  time to first frame %8.3f s\n", best_t.first);
  ds_destroy(gen);
  return 0;
}
