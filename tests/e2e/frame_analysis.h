// Reads what a generated clip of the demo model shows: the object's colour and its motion.
// The demo data puts one saturated, bright object on a dark, desaturated background, so object
// pixels are those with HSV saturation and value above a threshold.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ds::testing {

struct ObjectStats {
  int pixels = 0;
  double cx = 0, cy = 0;         // centroid (pixels)
  double r = 0, g = 0, b = 0;    // mean colour of the object pixels in [0, 1]
};

inline ObjectStats FindObject(const std::vector<uint8_t>& rgb, int width, int height) {
  ObjectStats s;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const uint8_t* p = &rgb[(static_cast<size_t>(y) * width + x) * 3];
      const double r = p[0] / 255.0, g = p[1] / 255.0, b = p[2] / 255.0;
      const double mx = std::max({r, g, b}), mn = std::min({r, g, b});
      if (mx < 0.45 || (mx - mn) / mx < 0.45) continue;
      ++s.pixels;
      s.cx += x + 0.5;
      s.cy += y + 0.5;
      s.r += r;
      s.g += g;
      s.b += b;
    }
  }
  if (s.pixels > 0) {
    s.cx /= s.pixels;
    s.cy /= s.pixels;
    s.r /= s.pixels;
    s.g /= s.pixels;
    s.b /= s.pixels;
  }
  return s;
}

inline double HueDegrees(double r, double g, double b) {
  const double mx = std::max({r, g, b}), mn = std::min({r, g, b}), d = mx - mn;
  if (d <= 0) return 0;
  double h;
  if (mx == r) h = std::fmod((g - b) / d, 6.0);
  else if (mx == g) h = (b - r) / d + 2.0;
  else h = (r - g) / d + 4.0;
  h *= 60.0;
  return h < 0 ? h + 360.0 : h;
}

// The six colours of the demo data, 60° apart.
inline std::string NearestColour(double hue) {
  static const char* kNames[] = {"red", "yellow", "green", "cyan", "blue", "magenta"};
  const int i = static_cast<int>(std::lround(hue / 60.0)) % 6;
  return kNames[i];
}

// left/right/up/down/static from the centroid displacement first → last frame; nullopt when the
// object is not visible in both frames.
inline std::optional<std::string> Motion(const ObjectStats& first, const ObjectStats& last) {
  if (first.pixels < 8 || last.pixels < 8) return std::nullopt;
  const double dx = last.cx - first.cx, dy = last.cy - first.cy;
  if (std::hypot(dx, dy) < 5.0) return "static";
  if (std::abs(dx) >= std::abs(dy)) return dx > 0 ? "right" : "left";
  return dy > 0 ? "down" : "up";
}

// Motion over a whole clip: the displacement between the first and the last frame in which the
// object is visible. The demo data lets objects enter and leave the frame (as real footage does),
// so the first or last frame alone may not show it; nullopt when fewer than two frames, at least
// a quarter of the clip apart, show it.
inline std::optional<std::string> ClipMotion(const std::vector<ObjectStats>& frames) {
  constexpr int kVisible = 15;
  int first = -1, last = -1;
  for (int i = 0; i < static_cast<int>(frames.size()); ++i) {
    if (frames[i].pixels < kVisible) continue;
    if (first < 0) first = i;
    last = i;
  }
  if (first < 0 || (last - first) * 4 < static_cast<int>(frames.size())) return std::nullopt;
  return Motion(frames[first], frames[last]);
}

// The frame in which the object is largest (its colour is read there).
inline ObjectStats LargestView(const std::vector<ObjectStats>& frames) {
  ObjectStats best;
  for (const ObjectStats& f : frames) {
    if (f.pixels > best.pixels) best = f;
  }
  return best;
}

}  // namespace ds::testing
