#include "core/model_config.h"

#include "core/config.h"

namespace ds {
namespace {

// Three non-negative ints, small enough that sums and products of them cannot overflow.
Result<std::array<int, 3>> Triple(const Config& c, std::string_view path) {
  constexpr int64_t kMax = 1 << 16;
  DS_ASSIGN_OR_RETURN(std::vector<int64_t> v, c.GetIntArray(path, 3));
  for (int64_t x : v) {
    if (x < 0 || x > kMax) {
      return Error(Code::kModel, "{}: '{}' must hold three integers in [0, {}], got [{}, {}, {}]", c.name(), path,
                   kMax, v[0], v[1], v[2]);
    }
  }
  return std::array<int, 3>{static_cast<int>(v[0]), static_cast<int>(v[1]), static_cast<int>(v[2])};
}

Status Positive(const Config& c, std::string_view path, int64_t v) {
  if (v <= 0) return Error(Code::kModel, "{}: '{}' must be positive, got {}", c.name(), path, v);
  return Status::Ok();
}

#define DS_READ(dst, type, path)                          \
  do {                                                    \
    DS_ASSIGN_OR_RETURN(auto ds_v_, c.Get<type>(path));   \
    dst = ds_v_;                                          \
  } while (0)
#define DS_READ_OR(dst, type, path, fallback)                      \
  do {                                                             \
    DS_ASSIGN_OR_RETURN(auto ds_v_, c.GetOr<type>(path, fallback)); \
    dst = ds_v_;                                                   \
  } while (0)

Status ParseDit(const Config& c, ModelConfig& m) {
  DitConfig& d = m.dit;
  std::string kind, pos;
  DS_READ(kind, std::string, "dit.block_kind");
  if (kind == "mmdit") d.block_kind = BlockKind::kMmdit;
  else if (kind == "cross") d.block_kind = BlockKind::kCross;
  else if (kind == "dit") d.block_kind = BlockKind::kDit;
  else return Error(Code::kModel, "{}: 'dit.block_kind' must be dit, cross or mmdit, got '{}'", c.name(), kind);
  DS_READ(d.in_channels, int, "dit.in_channels");
  DS_READ(d.out_channels, int, "dit.out_channels");
  DS_ASSIGN_OR_RETURN(d.patch, Triple(c, "dit.patch"));
  DS_READ(d.dim, int, "dit.dim");
  DS_READ(d.heads, int, "dit.heads");
  DS_READ(d.layers, int, "dit.layers");
  DS_READ(d.ffn, int, "dit.ffn");
  DS_READ_OR(d.freq_dim, int, "dit.freq_dim", 256);
  DS_READ_OR(pos, std::string, "dit.pos", std::string("rope3d"));
  if (pos == "rope3d") d.pos = PosKind::kRope3d;
  else if (pos == "sincos3d") d.pos = PosKind::kSinCos3d;
  else return Error(Code::kModel, "{}: 'dit.pos' must be rope3d or sincos3d, got '{}'", c.name(), pos);
  DS_ASSIGN_OR_RETURN(d.rope_axes, Triple(c, "dit.rope_axes"));
  DS_READ_OR(d.rope_theta, double, "dit.rope_theta", 10000.0);
  std::string qk;
  DS_READ_OR(qk, std::string, "dit.qk_norm", std::string("rms"));
  d.qk_norm = qk == "rms";
  DS_READ_OR(d.prefix_mask_channel, bool, "dit.prefix_mask_channel", false);
  for (auto [path, v] : {std::pair{"dit.in_channels", d.in_channels}, {"dit.out_channels", d.out_channels},
                         {"dit.dim", d.dim}, {"dit.heads", d.heads}, {"dit.layers", d.layers},
                         {"dit.ffn", d.ffn}, {"dit.freq_dim", d.freq_dim}, {"dit.patch[0]", d.patch[0]},
                         {"dit.patch[1]", d.patch[1]}, {"dit.patch[2]", d.patch[2]}}) {
    DS_TRY(Positive(c, path, v));
  }
  if (d.dim % d.heads != 0) {
    return Error(Code::kModel, "{}: 'dit.heads' ({}) must divide 'dit.dim' ({})", c.name(), d.heads, d.dim);
  }
  const int axes_sum = d.rope_axes[0] + d.rope_axes[1] + d.rope_axes[2];
  const int want = d.pos == PosKind::kRope3d ? d.head_dim() : d.dim;
  if (axes_sum != want || d.rope_axes[0] % 2 || d.rope_axes[1] % 2 || d.rope_axes[2] % 2) {
    return Error(Code::kModel, "{}: 'dit.rope_axes' must be three even numbers summing to {} ({}), got {}+{}+{}",
                 c.name(), want, d.pos == PosKind::kRope3d ? "head_dim" : "dim", d.rope_axes[0], d.rope_axes[1],
                 d.rope_axes[2]);
  }
  if (d.freq_dim % 2 != 0) return Error(Code::kModel, "{}: 'dit.freq_dim' must be even", c.name());
  return Status::Ok();
}

}  // namespace

Result<ModelConfig> ParseModelConfig(const Config& c) {
  ModelConfig m;
  DS_READ(m.family, std::string, "family");
  DS_READ(m.video.width, int, "video.width");
  DS_READ(m.video.height, int, "video.height");
  DS_READ(m.video.frames, int, "video.frames");
  DS_READ(m.video.fps, int, "video.fps");
  DS_READ(m.latent_channels, int, "latent.channels");
  DS_READ(m.downsample, int, "latent.downsample");
  DS_READ_OR(m.text.vocab, std::string, "text.vocab", std::string("vocab.txt"));
  DS_READ(m.text.max_tokens, int, "text.max_tokens");
  DS_READ(m.text.dim, int, "text.dim");
  DS_READ(m.text.layers, int, "text.layers");
  DS_READ(m.text.heads, int, "text.heads");
  DS_READ(m.text.ffn, int, "text.ffn");
  DS_TRY(ParseDit(c, m));
  m.dit.text_dim = m.text.dim;
  m.dit.pooled_dim = m.text.dim;
  DS_ASSIGN_OR_RETURN(std::vector<int64_t> ch, c.GetIntArray("decoder.channels"));
  for (int64_t v : ch) {
    DS_TRY(Positive(c, "decoder.channels[]", v));
    m.decoder.channels.push_back(static_cast<int>(v));
  }
  DS_READ_OR(m.sampling.steps, int, "sampling.steps", 16);
  DS_READ_OR(m.sampling.guidance, double, "sampling.guidance", 4.0);
  DS_READ_OR(m.sampling.shift, double, "sampling.shift", 1.0);
  DS_READ_OR(m.sampling.continuation_prefix_frames, int, "sampling.continuation_prefix_frames", 0);

  for (auto [path, v] : {std::pair{"video.width", m.video.width}, {"video.height", m.video.height},
                         {"video.frames", m.video.frames}, {"video.fps", m.video.fps},
                         {"latent.channels", m.latent_channels}, {"latent.downsample", m.downsample},
                         {"text.max_tokens", m.text.max_tokens}, {"text.dim", m.text.dim},
                         {"text.heads", m.text.heads}, {"text.ffn", m.text.ffn}, {"sampling.steps", m.sampling.steps}}) {
    DS_TRY(Positive(c, path, v));
  }
  if (m.text.dim % m.text.heads != 0) {
    return Error(Code::kModel, "{}: 'text.heads' ({}) must divide 'text.dim' ({})", c.name(), m.text.heads, m.text.dim);
  }
  const int want_in = m.latent_channels + (m.dit.prefix_mask_channel ? 1 : 0);
  if (m.dit.in_channels != want_in || m.dit.out_channels != m.latent_channels) {
    return Error(Code::kModel, "{}: 'dit.in_channels'/'dit.out_channels' must be {}/{} for {} latent channels, got {}/{}",
                 c.name(), want_in, m.latent_channels, m.latent_channels, m.dit.in_channels, m.dit.out_channels);
  }
  if (m.decoder.channels.empty() || m.decoder.channels.size() > 16) {
    return Error(Code::kModel, "{}: 'decoder.channels' must hold 1 to 16 entries, got {}", c.name(),
                 m.decoder.channels.size());
  }
  if ((1 << (static_cast<int>(m.decoder.channels.size()) - 1)) != m.downsample) {
    return Error(Code::kModel, "{}: 'decoder.channels' has {} upsampling stages, 'latent.downsample' {} needs log2 of it",
                 c.name(), m.decoder.channels.size() - 1, m.downsample);
  }
  if (m.sampling.continuation_prefix_frames < 0 || m.sampling.continuation_prefix_frames >= m.video.frames ||
      m.sampling.continuation_prefix_frames % m.dit.patch[0] != 0) {
    return Error(Code::kModel, "{}: 'sampling.continuation_prefix_frames' ({}) must be a multiple of the temporal patch below the clip length",
                 c.name(), m.sampling.continuation_prefix_frames);
  }
  return m;
}

}  // namespace ds
