// The first-block cache's trade (the cache-threshold option): for each threshold, the time of a
// clip, the forwards that skipped the later blocks (from the engine's log), and how far the frames
// moved from the uncached clip of the same seed (PSNR over RGB; a measure of drift, not of quality).
//   bench_block_cache [MODEL] [--seeds N] [--thresholds 0.02,0.05,...] [--set name=value]...
// By default: the bundled demo model (a trained model, so the drift is what users would see),
// 4 seeds, thresholds 0.02 to 0.4. Times are the median over seeds, compared with threshold 0 in
// the same run.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ditstream.h"

namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Clip {
  std::vector<std::vector<uint8_t>> frames;
  double seconds = 0;
};

int OnFrame(void* user, const ds_frame* f) {
  auto* c = static_cast<Clip*>(user);
  c->frames.emplace_back(f->rgb, f->rgb + static_cast<size_t>(f->width) * f->height * 3);
  return 0;
}

struct Skips {
  int reused = 0, forwards = 0;
};

// "clip N: the first-block cache skipped the later blocks in R of F forwards..."
void OnLog(void* user, ds_log_level, const char* message) {
  const char* at = std::strstr(message, "skipped the later blocks in ");
  if (at == nullptr) return;
  auto* s = static_cast<Skips*>(user);
  int r = 0, f = 0;
  if (std::sscanf(at, "skipped the later blocks in %d of %d", &r, &f) == 2) {
    s->reused += r;
    s->forwards += f;
  }
}

double Psnr(const Clip& a, const Clip& b) {
  double se = 0;
  size_t n = 0;
  for (size_t i = 0; i < std::min(a.frames.size(), b.frames.size()); ++i) {
    for (size_t j = 0; j < a.frames[i].size(); ++j) {
      const double d = static_cast<double>(a.frames[i][j]) - b.frames[i][j];
      se += d * d;
    }
    n += a.frames[i].size();
  }
  if (n == 0) return 0;
  const double mse = se / static_cast<double>(n);
  return mse == 0 ? INFINITY : 10.0 * std::log10(255.0 * 255.0 / mse);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const char* model = "demo";
  int seeds = 4;
  std::string thresholds = "0.02,0.05,0.1,0.2,0.4";
  std::vector<std::string> sets;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--seeds") && i + 1 < argc)
      seeds = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--thresholds") && i + 1 < argc)
      thresholds = argv[++i];
    else if (!std::strcmp(argv[i], "--set") && i + 1 < argc)
      sets.emplace_back(argv[++i]);
    else if (argv[i][0] != '-')
      model = argv[i];
    else {
      std::fprintf(stderr, "usage: %s [MODEL] [--seeds N] [--thresholds a,b,...] [--set name=value]...\n", argv[0]);
      return 2;
    }
  }
  std::vector<std::string> levels = {"0"};
  for (size_t b = 0; b <= thresholds.size();) {
    const size_t e = std::min(thresholds.find(',', b), thresholds.size());
    if (e > b) levels.push_back(thresholds.substr(b, e - b));
    b = e + 1;
  }

  ds_generator* gen = ds_create();
  Skips skips;
  ds_set_log_sink(OnLog, &skips);
  auto set = [&](const char* name, const std::string& value) {
    if (ds_set_option(gen, name, value.c_str()) != DS_OK) {
      std::fprintf(stderr, "%s=%s: %s\n", name, value.c_str(), ds_error_message(gen));
      std::exit(1);
    }
  };
  set("model", model);
  for (const std::string& s : sets) {
    const size_t eq = s.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "--set %s: expected name=value\n", s.c_str());
      return 2;
    }
    set(s.substr(0, eq).c_str(), s.substr(eq + 1));
  }
  if (ds_load(gen) != DS_OK) {
    std::fprintf(stderr, "load: %s\n", ds_error_message(gen));
    return 1;
  }

  std::vector<Clip> uncached(static_cast<size_t>(seeds));
  std::printf("%-10s %10s %8s %12s %10s\n", "threshold", "clip (s)", "speedup", "skipped", "PSNR (dB)");
  double base_seconds = 0;
  for (const std::string& level : levels) {
    set("cache-threshold", level);
    skips = {};
    std::vector<double> seconds, psnr;
    for (int s = 0; s < seeds; ++s) {
      set("seed", std::to_string(s + 1));
      Clip clip;
      const double start = Now();
      if (ds_generate(gen, 0, OnFrame, nullptr, &clip) != DS_OK) {
        std::fprintf(stderr, "generate: %s\n", ds_error_message(gen));
        return 1;
      }
      clip.seconds = Now() - start;
      seconds.push_back(clip.seconds);
      if (level == "0") {
        uncached[static_cast<size_t>(s)] = std::move(clip);
      } else {
        psnr.push_back(Psnr(clip, uncached[static_cast<size_t>(s)]));
      }
    }
    const double t = Median(seconds);
    if (level == "0") base_seconds = t;
    char skipped[32], quality[32];
    std::snprintf(skipped, sizeof skipped, "%d/%d", skips.reused, skips.forwards);
    if (psnr.empty()) {
      std::snprintf(quality, sizeof quality, "-");
    } else {
      std::snprintf(quality, sizeof quality, "%.1f", Median(psnr));
    }
    std::printf("%-10s %10.3f %7.2fx %12s %10s\n", level.c_str(), t, base_seconds / t, level == "0" ? "-" : skipped,
                quality);
  }
  ds_set_log_sink(nullptr, nullptr);
  ds_destroy(gen);
  return 0;
}
