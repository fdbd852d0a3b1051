// Fuzz target: a Wan2.1 diffusers component's config.json (the whole input) through the parsers of
// the transformer, VAE, UMT5 text encoder and scheduler configs. Checks: refusals name the file; an
// accepted config is one the model code can build without overflow or division by zero (positive
// sizes, and every width the code multiplies out, heads × head size and the VAE's widths among
// them, fits int).
#include <cmath>
#include <limits>
#include <string_view>

#include "core/config.h"
#include "core/wan/wan_config.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr const char* kName = "fuzz/config.json";
constexpr int64_t kIntMax = std::numeric_limits<int>::max();

template <typename T>
bool Refused(const ds::Result<T>& r) {
  if (r.ok()) return false;
  FUZZ_CHECK(ds::fuzz::Contains(r.status().message(), kName), "error does not name the file: %s",
             r.status().message().c_str());
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = ds::Config::Parse(std::string_view(reinterpret_cast<const char*>(data), size), kName);
  if (!parsed.ok()) return 0;  // the config target checks the JSON layer
  const ds::Config& c = *parsed;

  if (auto t = ds::ParseWanTransformerConfig(c); !Refused(t)) {
    FUZZ_CHECK(t->heads > 0 && t->head_dim >= 6 && t->head_dim % 2 == 0, "heads %d head_dim %d", t->heads, t->head_dim);
    FUZZ_CHECK(int64_t{t->heads} * t->head_dim <= kIntMax, "width %d x %d overflows int", t->heads, t->head_dim);
    FUZZ_CHECK(t->layers > 0 && t->ffn > 0 && t->in_channels > 0 && t->out_channels > 0 && t->text_dim > 0 &&
                   t->rope_max_seq_len > 0,
               "a non-positive size");
    FUZZ_CHECK(t->freq_dim > 0 && t->freq_dim % 2 == 0, "freq_dim %d", t->freq_dim);
    const int64_t volume = int64_t{t->patch[0]} * t->patch[1] * t->patch[2];
    FUZZ_CHECK(t->patch[0] > 0 && t->patch[1] > 0 && t->patch[2] > 0, "patch");
    FUZZ_CHECK(volume * std::max(t->in_channels, t->out_channels) <= kIntMax, "patch volume %lld x channels",
               static_cast<long long>(volume));
    FUZZ_CHECK(std::isfinite(t->eps) && t->eps >= 0.0f, "eps %g", double(t->eps));
  }
  if (auto v = ds::ParseWanVaeConfig(c); !Refused(v)) {
    FUZZ_CHECK(v->base_dim > 0 && v->z_dim > 0 && v->num_res_blocks > 0 && v->out_channels > 0, "a non-positive size");
    FUZZ_CHECK(v->dim_mult.size() >= 2 && v->temporal_downsample.size() + 1 == v->dim_mult.size(), "dim_mult");
    for (int m : v->dim_mult) {
      FUZZ_CHECK(m > 0 && int64_t{m} * v->base_dim <= kIntMax, "width %d x %d", m, v->base_dim);
    }
    FUZZ_CHECK(static_cast<int>(v->latents_mean.size()) == v->z_dim && v->latents_std.size() == v->latents_mean.size(),
               "latent statistics");
    for (float s : v->latents_std) FUZZ_CHECK(std::isfinite(s) && s != 0.0f, "latents_std %g", double(s));
    for (float m : v->latents_mean) FUZZ_CHECK(std::isfinite(m), "latents_mean %g", double(m));
  }
  if (auto u = ds::ParseUmt5Config(c); !Refused(u)) {
    FUZZ_CHECK(u->vocab > 0 && u->d_model > 0 && u->layers > 0 && u->heads > 0 && u->d_kv > 0 && u->d_ff > 0,
               "a non-positive size");
    FUZZ_CHECK(int64_t{u->heads} * u->d_kv <= kIntMax, "inner width %d x %d overflows int", u->heads, u->d_kv);
    FUZZ_CHECK(u->buckets >= 4 && u->buckets % 4 == 0 && u->max_distance > 0, "buckets %d", u->buckets);
    FUZZ_CHECK(std::isfinite(u->eps) && u->eps >= 0.0f, "eps %g", double(u->eps));
  }
  if (auto s = ds::ParseWanSchedulerConfig(c); !Refused(s)) {
    FUZZ_CHECK(std::isfinite(s->shift) && s->shift > 0.0 && s->train_timesteps > 0, "shift %g timesteps %d", s->shift,
               s->train_timesteps);
  }
  return 0;
}
