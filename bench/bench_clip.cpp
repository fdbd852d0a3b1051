// The README's clip end to end through the C API: model load, then generation of the default clip
// (bundled model, default steps and guidance), reporting total time and time to first frame.
//   bench_clip [MODEL] [--runs N] [--threads N]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ditstream.h"

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Timing {
  double start = 0, first = -1;
  int frames = 0;
};

int OnFrame(void* user, const ds_frame*) {
  auto* t = static_cast<Timing*>(user);
  if (t->first < 0) t->first = Now() - t->start;
  ++t->frames;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const char* model = "demo";
  int runs = 5;
  const char* threads = "0";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--runs") && i + 1 < argc) runs = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = argv[++i];
    else model = argv[i];
  }
  ds_generator* gen = ds_create();
  ds_set_option(gen, "model", model);
  ds_set_option(gen, "threads", threads);
  ds_set_option(gen, "prompt", "a red circle moving right");
  const double t0 = Now();
  if (ds_load(gen) != DS_OK) {
    std::fprintf(stderr, "bench_clip: %s\n", ds_error_message(gen));
    return 1;
  }
  const double load_s = Now() - t0;
  ds_model_info info;
  ds_get_model_info(gen, &info);
  double best = 1e30, best_first = 0;
  int frames = 0;
  for (int r = 0; r < runs; ++r) {
    Timing t;
    t.start = Now();
    if (ds_generate(gen, 0, OnFrame, nullptr, &t) != DS_OK) {
      std::fprintf(stderr, "bench_clip: %s\n", ds_error_message(gen));
      return 1;
    }
    const double total = Now() - t.start;
    if (total < best) {
      best = total;
      best_first = t.first;
    }
    frames = t.frames;
  }
  const double video_s = static_cast<double>(frames) * info.fps_den / info.fps_num;
  std::printf("model %s: %d frames %dx%d at %d fps (%.2f s of video), %d steps, guidance %.1f, threads %s\n", model,
              frames, info.native_width, info.native_height, info.fps_num, video_s, info.default_steps,
              info.default_guidance, threads);
  std::printf("  model load          %8.3f s\n", load_s);
  std::printf("  clip (best of %d)    %8.3f s  = %.2f× real time\n", runs, best, video_s / best);
  std::printf("  time to first frame %8.3f s\n", best_first);
  ds_destroy(gen);
  return 0;
}
