#include "tests/faults/fault_util.h"

#include <stdlib.h>

#include <filesystem>

#include "tests/faults/alloc_hook.h"

namespace faults {

ScratchDir::ScratchDir(const char* name) {
  std::string pattern = (std::filesystem::temp_directory_path() / (std::string("ds-faults-") + name + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "cannot create " << pattern;
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

ds::testing::RandomModelSpec SmallSpec() {
  ds::testing::RandomModelSpec spec;
  spec.frames = 4;
  spec.steps = 3;
  return spec;
}

Generator::Generator(const std::string& model, int threads) : gen_(ds_create()) {
  if (gen_ == nullptr) throw std::bad_alloc();
  EXPECT_EQ(ds_set_option(gen_, "model", model.c_str()), DS_OK);
  EXPECT_EQ(ds_set_option(gen_, "threads", std::to_string(threads).c_str()), DS_OK);
  EXPECT_EQ(ds_set_option(gen_, "seed", "7"), DS_OK);
}

ds_status Generator::Generate(Clip& clip, int continue_previous) {
  auto on_frame = [](void* user, const ds_frame* f) {
    const AllocationPause pause;  // the test's bookkeeping is not the engine's to survive
    auto* c = static_cast<Clip*>(user);
    c->frames.emplace_back(f->rgb, f->rgb + static_cast<size_t>(f->width) * f->height * 3);
    c->indices.push_back(f->index);
    return c->on_frame ? c->on_frame(*f) : 0;
  };
  auto on_progress = [](void* user, const ds_progress* p) {
    const AllocationPause pause;  // the test's bookkeeping is not the engine's to survive
    auto* c = static_cast<Clip*>(user);
    c->progress.push_back(*p);
    if (c->on_progress) c->on_progress(*p);
  };
  return ds_generate(gen_, continue_previous, on_frame, on_progress, &clip);
}

Clip Reference(const std::string& model, int64_t seed) {
  Generator g(model);
  EXPECT_EQ(ds_set_option(g.get(), "seed", std::to_string(seed).c_str()), DS_OK);
  EXPECT_EQ(g.Load(), DS_OK) << g.error();
  Clip clip;
  EXPECT_EQ(g.Generate(clip), DS_OK) << g.error();
  return clip;
}

}  // namespace faults
