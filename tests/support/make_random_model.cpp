// make_random_model DIR [SEED] [WIDTH HEIGHT FRAMES] [--demo-size]: writes a seeded random model
// folder. Used by tests of the front ends, which need a model that loads fast and does not depend on
// training; --demo-size gives the bundled demo model's DiT and text-encoder sizes, for benchmarks.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/support/random_model.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: make_random_model DIR [SEED] [WIDTH HEIGHT FRAMES] [--demo-size]\n");
    return 2;
  }
  ds::testing::RandomModelSpec spec;
  if (std::string(argv[argc - 1]) == "--demo-size") {
    --argc;
    spec.dim = 192;
    spec.heads = 6;
    spec.layers = 6;
    spec.ffn = 768;
    spec.latent_channels = 8;
    spec.text_dim = 128;
    spec.text_layers = 2;
    spec.text_heads = 4;
    spec.steps = 16;
  }
  const uint64_t seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1;
  if (argc > 5) {
    spec.width = std::atoi(argv[3]);
    spec.height = std::atoi(argv[4]);
    spec.frames = std::atoi(argv[5]);
  }
  const std::string err = ds::testing::WriteRandomModel(argv[1], spec, seed);
  if (!err.empty()) {
    std::fprintf(stderr, "make_random_model: %s\n", err.c_str());
    return 1;
  }
  return 0;
}
