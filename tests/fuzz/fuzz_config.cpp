// Fuzz target: a model folder's config.json (the whole input) through Config::Parse, the typed
// getters and ParseModelConfig. Checks: errors name the file; an accepted ModelConfig satisfies
// every invariant the engine relies on (positive sizes, heads divide dims, rope axes, the decoder's
// upsampling stages, the continuation prefix), so no later stage can divide by zero or overflow.
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/model_config.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr const char* kName = "fuzz/config.json";

template <typename T>
void Query(const ds::Config& c, const std::string& path) {
  auto v = c.Get<T>(path);
  if (!v.ok()) FUZZ_CHECK(ds::fuzz::Contains(v.status().message(), kName), "%s", v.status().message().c_str());
  auto w = c.GetOr<T>(path, T{});
  FUZZ_CHECK(!v.ok() || w.ok(), "Get('%s') succeeds but GetOr fails", path.c_str());
  FUZZ_CHECK(c.Has(path) || !v.ok(), "Get('%s') succeeds but Has() is false", path.c_str());
}

void QueryAll(const ds::Config& c, const std::string& path) {
  Query<bool>(c, path);
  Query<int>(c, path);
  Query<int64_t>(c, path);
  Query<float>(c, path);
  Query<double>(c, path);
  Query<std::string>(c, path);
  (void)c.GetIntArray(path);
  (void)c.GetIntArray(path, 3);
  (void)c.GetDoubleArray(path);
}

void CheckModel(const ds::ModelConfig& m, const nlohmann::json& doc) {
  const ds::DitConfig& d = m.dit;
  // Integers are what the file says, not their truncation to int.
  for (int i = 0; i < 3; ++i) {
    FUZZ_CHECK(doc["dit"]["patch"][i].get<int64_t>() == d.patch[i], "dit.patch[%d] read as %d", i, d.patch[i]);
    FUZZ_CHECK(doc["dit"]["rope_axes"][i].get<int64_t>() == d.rope_axes[i], "dit.rope_axes[%d] read as %d", i,
               d.rope_axes[i]);
  }
  for (int v : {m.video.width, m.video.height, m.video.frames, m.video.fps, m.latent_channels, m.downsample,
                m.text.max_tokens, m.text.dim, m.text.heads, m.text.ffn, d.dim, d.heads, d.layers, d.ffn,
                d.freq_dim, d.patch[0], d.patch[1], d.patch[2], m.sampling.steps}) {
    FUZZ_CHECK(v > 0, "a size is %d", v);
  }
  FUZZ_CHECK(m.text.dim % m.text.heads == 0 && d.dim % d.heads == 0, "heads do not divide dims");
  const int64_t axes = int64_t{d.rope_axes[0]} + d.rope_axes[1] + d.rope_axes[2];
  FUZZ_CHECK(axes == (d.pos == ds::PosKind::kRope3d ? d.head_dim() : d.dim), "rope axes sum to %lld",
             static_cast<long long>(axes));
  for (int a : d.rope_axes) FUZZ_CHECK(a >= 0 && a % 2 == 0, "rope axis %d", a);
  FUZZ_CHECK(d.freq_dim % 2 == 0, "odd freq_dim");
  FUZZ_CHECK(!m.decoder.channels.empty(), "no decoder stages");
  for (int ch : m.decoder.channels) FUZZ_CHECK(ch > 0, "decoder channels %d", ch);
  FUZZ_CHECK(int64_t{1} << (m.decoder.channels.size() - 1) == m.downsample, "downsample %d for %zu stages",
             m.downsample, m.decoder.channels.size());
  const int prefix = m.sampling.continuation_prefix_frames;
  FUZZ_CHECK(prefix >= 0 && prefix < m.video.frames && prefix % d.patch[0] == 0, "prefix %d", prefix);
  FUZZ_CHECK(d.in_channels == m.latent_channels + (d.prefix_mask_channel ? 1 : 0) &&
                 d.out_channels == m.latent_channels,
             "DiT channels %d/%d for %d latent channels", d.in_channels, d.out_channels, m.latent_channels);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = ds::Config::Parse(text, kName);
  if (!parsed.ok()) {
    FUZZ_CHECK(ds::fuzz::Contains(parsed.status().message(), kName), "%s", parsed.status().message().c_str());
    return 0;
  }
  const ds::Config& c = *parsed;

  // Every key the document has (two levels deep), plus paths the getters must survive.
  for (const std::string& path : {"", ".", "..", "a.", ".a", "dit.patch.0", "video.width.x"}) QueryAll(c, path);
  const nlohmann::json& doc = c.document();
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    QueryAll(c, it.key());
    if (!it.value().is_object()) continue;
    for (auto jt = it.value().begin(); jt != it.value().end(); ++jt) QueryAll(c, it.key() + "." + jt.key());
  }

  auto model = ds::ParseModelConfig(c);
  if (!model.ok()) {
    FUZZ_CHECK(ds::fuzz::Contains(model.status().message(), kName), "%s", model.status().message().c_str());
    return 0;
  }
  CheckModel(*model, doc);
  return 0;
}
