// Fuzz target: a safetensors file (the whole input) read as a Wan2.1 checkpoint with the original
// names and no config (ComfyUI's single files), whose transformer and VAE configs come from the
// tensor shapes. Checks beyond "no crash": a refusal names the file; an accepted transformer config
// is one the model code can build (positive sizes, heads that split the width into even heads of
// at least 6, an even time-embedding width, the output head a whole number of patches), and an
// accepted VAE config has Wan2.1's 16 latent channels and a positive width.
#include <string>

#include "core/wan/wan_config.h"
#include "core/weights.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ds::fuzz::MemFile file;
  file.Set(data, size);
  auto weights = ds::Weights::Open(file.path());
  if (!weights.ok()) return 0;  // the safetensors target checks the file layer
  for (const std::string prefix : {"", "model.diffusion_model."}) {
    auto c = ds::WanTransformerConfigFromShapes(*weights, prefix, nullptr);
    if (!c.ok()) {
      FUZZ_CHECK(ds::fuzz::Contains(c.status().message(), file.path()), "error does not name the file: %s",
                 c.status().message().c_str());
      continue;
    }
    auto pe = weights->Shape(prefix + "patch_embedding.weight");
    FUZZ_CHECK(pe.ok() && pe->size() == 5, "accepted without a 5-dim patch_embedding.weight");
    FUZZ_CHECK(c->heads > 0 && c->head_dim >= 6 && c->head_dim % 2 == 0 &&
                   static_cast<int64_t>(c->heads) * c->head_dim == (*pe)[0],
               "width %lld split into %d heads of %d", static_cast<long long>((*pe)[0]), c->heads, c->head_dim);
    FUZZ_CHECK(c->patch[0] > 0 && c->patch[1] > 0 && c->patch[2] > 0, "patch %d x %d x %d", c->patch[0], c->patch[1],
               c->patch[2]);
    FUZZ_CHECK(c->in_channels > 0 && c->out_channels > 0 && c->ffn > 0 && c->text_dim > 0 && c->layers > 0,
               "in %d out %d ffn %d text %d layers %d", c->in_channels, c->out_channels, c->ffn, c->text_dim,
               c->layers);
    FUZZ_CHECK(c->freq_dim > 0 && c->freq_dim % 2 == 0, "freq_dim %d", c->freq_dim);
  }
  auto v = ds::WanVaeConfigFromShapes(*weights);
  if (!v.ok()) {
    FUZZ_CHECK(ds::fuzz::Contains(v.status().message(), file.path()), "error does not name the file: %s",
               v.status().message().c_str());
  } else {
    FUZZ_CHECK(v->z_dim == 16 && v->base_dim > 0, "VAE z_dim %d base_dim %d", v->z_dim, v->base_dim);
  }
  return 0;
}
