#include "core/wan/wan_transformer.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include "core/config.h"
#include "core/wan/wan_weights.h"
#include "core/weights.h"

namespace ds {
namespace {

// Rows of the FFN hidden activation computed at once: bounds its memory (2048 × 8960 floats for
// the 1.3B, 73 MB) independently of the token count, with GEMMs still large enough to run at speed.
constexpr int64_t kFfnChunkRows = 2048;

// A [rows, cols] view of a contiguous tensor with the same number of elements (e.g. a Conv3d
// weight [D, C, pt, ph, pw] as the [D, C·pt·ph·pw] matrix of the equivalent linear).
Tensor AsMatrix(const Tensor& t, int64_t rows, int64_t cols) { return Mat(t.f32(), rows, cols); }

// diffusers Timesteps(freq_dim, flip_sin_to_cos=True, downscale_freq_shift=0), in float32 as torch
// computes it: [cos(t·f_k), sin(t·f_k)], f_k = exp(−ln(10000)·k/half).
void TimestepFeatures(float t, int freq_dim, float* out) {
  const int half = freq_dim / 2;
  const float neg_log = static_cast<float>(-std::log(10000.0));
  for (int k = 0; k < half; ++k) {
    const float exponent = neg_log * static_cast<float>(k) / static_cast<float>(half);
    const float arg = t * std::exp(exponent);
    out[k] = std::cos(arg);
    out[half + k] = std::sin(arg);
  }
}

}  // namespace

// Activations, all in the backend's memory (BackendBuffer), the time path and the modulation
// vectors too: a forward's ops then read only backend memory, so a GPU backend records them once
// and replays them (Backend::RunRecorded). The latent, the time step's sinusoid and the context
// are copied in before the ops, the velocity out after them.
struct WanTransformer::Workspace {
  uint64_t backend = 0;  // Backend::id() of the buffers' backend, 0 before any
  std::array<int, 3> grid = {0, 0, 0};
  int n = 0, text_len = 0;
  int64_t ffn_rows = 0;  // rows of the FFN hidden activation computed at once
  // qkv [n, 3D]: the self-attention's q, k and v side by side (one fused GEMM writes all three;
  // separate ones write their columns); the cross-attention's q reuses the q columns.
  BackendBuffer x, a, qkv, o, f, hidden, hid, ctx, ck, cv, out, patches, cos, sin;
  // The forward's inputs: the latent [C, T, H, W], the time step's sinusoid [1, freq_dim] and the
  // text context [L, text_dim]; its output, the velocity [C_out, T, H, W]. The time path: tmp and temb [1, D], e =
  // time_proj(silu(temb)) [1, 6D]; mod [1, 6D] = a block's table + e, head_mod [2, D] = the head's table + temb.
  BackendBuffer latent, velocity, t_features, context, tmp, temb, e, mod, head_mod;
  std::unique_ptr<OpRecording> recording;  // the forward's ops, as the backend recorded them
  // The first-block cache, its buffers allocated by the first forward that uses it, and its
  // forward's three recorded parts per slot (each reads that slot's buffers): the embeddings and
  // the first block; the rest of the blocks and the head; the kept residual and the head.
  FirstBlockCache cache;
  std::array<std::unique_ptr<OpRecording>, FirstBlockCache::kSlots> cached_first, cached_rest, cached_reuse;
  void DropRecordings() {
    recording.reset();
    for (auto* parts : {&cached_first, &cached_rest, &cached_reuse}) {
      for (auto& r : *parts) r.reset();
    }
  }
  // One block's matrices widened (to float32 on the CPU, BF16 on a GPU) where the backend's linear
  // does not take them as stored, and the block that points at them: on the CPU 189 MB for the
  // 1.3B's BF16, against 2.8 GB saved on its 30 blocks; nothing on a GPU for a BF16 checkpoint.
  std::array<BackendBuffer, 10> wide;
  BackendBuffer wide_qkv;  // a fused qkv's three matrices widened, [3D, D]
  Block widened;
  std::vector<float> tfeat;
};

WanTransformer::WanTransformer() : ws_(std::make_unique<Workspace>()) {}
WanTransformer::WanTransformer(WanTransformer&&) noexcept = default;
WanTransformer& WanTransformer::operator=(WanTransformer&&) noexcept = default;
WanTransformer::~WanTransformer() = default;

Result<WanTransformer> WanTransformer::Load(const std::string& path, const std::vector<LoraSpec>& loras) {
  namespace fs = std::filesystem;
  DS_ASSIGN_OR_RETURN(WanLora lora, WanLora::Open(loras));
  WanTransformer m;
  DS_ASSIGN_OR_RETURN(m.weights_, OpenWanWeights(path, "transformer"));
  DS_ASSIGN_OR_RETURN(WanCheckpointNaming naming, DetectWanTransformerNaming(*m.weights_));
  std::error_code ec;
  const fs::path dir = fs::is_directory(path, ec) ? fs::path(path) : fs::path(path).parent_path();
  const std::string config_path = (dir / "config.json").string();
  if (naming.naming == WanNaming::kDiffusers) {
    DS_ASSIGN_OR_RETURN(Config c, Config::Load(config_path));
    DS_ASSIGN_OR_RETURN(m.cfg_, ParseWanTransformerConfig(c));
  } else {
    // The original repos ship a WanModel config.json; single files (ComfyUI) have none.
    std::optional<Config> original;
    if (fs::is_regular_file(config_path, ec)) {
      DS_ASSIGN_OR_RETURN(original, Config::Load(config_path));
    }
    DS_ASSIGN_OR_RETURN(m.cfg_,
                        WanTransformerConfigFromShapes(*m.weights_, naming.prefix, original ? &*original : nullptr));
  }
  const WanTransformerConfig& c = m.cfg_;
  const int64_t d = c.dim(), pv = c.patch_volume();
  WanTensorReader r(*m.weights_, naming, WanTransformerOriginalName, &lora);
  Tensor pe = r.get("patch_embedding.weight", {d, c.in_channels, c.patch[0], c.patch[1], c.patch[2]});
  m.host_.patch.b = r.get("patch_embedding.bias", {d});
  if (r.status().ok()) m.host_.patch.w = AsMatrix(pe, d, c.in_channels * pv);
  m.host_.t_fc1 = r.linear("condition_embedder.time_embedder.linear_1", d, c.freq_dim);
  m.host_.t_fc2 = r.linear("condition_embedder.time_embedder.linear_2", d, d);
  m.host_.t_proj = r.linear("condition_embedder.time_proj", 6 * d, d);
  m.host_.txt_fc1 = r.linear("condition_embedder.text_embedder.linear_1", d, c.text_dim);
  m.host_.txt_fc2 = r.linear("condition_embedder.text_embedder.linear_2", d, d);
  Tensor head = r.get("scale_shift_table", {1, 2, d});
  if (r.status().ok()) m.host_.head_table = AsMatrix(head, 2, d);
  m.host_.proj_out = r.linear("proj_out", c.out_channels * pv, d);
  m.host_.blocks.resize(c.layers);
  for (int i = 0; i < c.layers; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    Block& b = m.host_.blocks[i];
    Tensor table = r.get(p + "scale_shift_table", {1, 6, d});
    if (r.status().ok()) b.table = AsMatrix(table, 6, d);
    b.q = r.stored_linear(p + "attn1.to_q", d, d, &b.scales[0]);
    b.k = r.stored_linear(p + "attn1.to_k", d, d, &b.scales[1]);
    b.v = r.stored_linear(p + "attn1.to_v", d, d, &b.scales[2]);
    b.o = r.stored_linear(p + "attn1.to_out.0", d, d, &b.scales[3]);
    b.norm_q = r.get(p + "attn1.norm_q.weight", {d});
    b.norm_k = r.get(p + "attn1.norm_k.weight", {d});
    b.cq = r.stored_linear(p + "attn2.to_q", d, d, &b.scales[4]);
    b.ck = r.stored_linear(p + "attn2.to_k", d, d, &b.scales[5]);
    b.cv = r.stored_linear(p + "attn2.to_v", d, d, &b.scales[6]);
    b.co = r.stored_linear(p + "attn2.to_out.0", d, d, &b.scales[7]);
    b.cnorm_q = r.get(p + "attn2.norm_q.weight", {d});
    b.cnorm_k = r.get(p + "attn2.norm_k.weight", {d});
    if (c.cross_attn_norm) {
      b.norm2_w = r.get(p + "norm2.weight", {d});
      b.norm2_b = r.get(p + "norm2.bias", {d});
    }
    b.fc1 = r.stored_linear(p + "ffn.net.0.proj", c.ffn, d, &b.scales[8]);
    b.fc2 = r.stored_linear(p + "ffn.net.2", d, c.ffn, &b.scales[9]);
  }
  DS_TRY(r.status());
  DS_TRY(lora.CheckAllUsed());
  WarnUnusedWanTensors(*m.weights_, "transformer");
  return m;
}

Status WanTransformer::EnsureGeometry(Backend& be, int T, int H, int W, int text_len) {
  const WanTransformerConfig& c = cfg_;
  const auto& p = c.patch;
  if (T <= 0 || H <= 0 || W <= 0 || T % p[0] != 0 || H % p[1] != 0 || W % p[2] != 0) {
    return Error(Code::kUnsupported, "latent grid {}x{}x{} is not a positive multiple of the patch {}x{}x{}", T, H, W,
                 p[0], p[1], p[2]);
  }
  const std::array<int, 3> grid = {T / p[0], H / p[1], W / p[2]};
  for (int g : grid) {
    if (g > c.rope_max_seq_len) {
      return Error(Code::kUnsupported, "latent grid {}x{}x{} exceeds the RoPE table of {} positions per axis", T, H, W,
                   c.rope_max_seq_len);
    }
  }
  if (text_len <= 0) return Error(Code::kInvalidArgument, "the text context must have at least one row");
  if (ws_->backend != be.id() || ws_->grid != grid || ws_->text_len != text_len) ws_ = std::make_unique<Workspace>();
  Workspace& ws = *ws_;
  if (ws.backend != 0) return Status::Ok();  // ready for this backend and geometry

  ws.grid = grid;
  ws.text_len = text_len;
  ws.n = grid[0] * grid[1] * grid[2];
  const int64_t n = ws.n, d = c.dim(), pv = c.patch_volume(), L = text_len;
  // The host computes the FFN hidden activation in row chunks (2048 × 8960 floats for the 1.3B,
  // 73 MB) to bound its memory; a GPU runs it in one GEMM, faster, unless that one activation would
  // take over an eighth of what the backend can still hold (the 14B's 1.8 GB at 480p on a 24 GB
  // card): then in as many rows as fit that eighth.
  const DType hidden_dtype = HiddenDType(be);
  if (be.device() == Device::kCpu) {
    ws.ffn_rows = std::min(n, kFfnChunkRows);
  } else {
    const int64_t row_bytes = static_cast<int64_t>(c.ffn) * static_cast<int64_t>(DTypeSize(hidden_dtype));
    const int64_t budget = static_cast<int64_t>(be.WorkingSetBudget());
    ws.ffn_rows = budget == 0 || n * row_bytes <= budget / 8
                      ? n
                      : std::min(n, std::max(kFfnChunkRows, budget / 8 / row_bytes / 256 * 256));
  }
  auto alloc = [&](BackendBuffer& buf, int64_t rows, int64_t cols, DType dtype = DType::kF32) -> Status {
    DS_ASSIGN_OR_RETURN(buf, be.NewBuffer(dtype, {rows, cols}));
    return Status::Ok();
  };
  for (BackendBuffer* buf : {&ws.x, &ws.f}) DS_TRY(alloc(*buf, n, d));
  DS_TRY(alloc(ws.a, n, d, NormDType(be)));
  const DType attention_dtype = AttentionDType(be);
  DS_TRY(alloc(ws.qkv, n, 3 * d, attention_dtype));
  DS_TRY(alloc(ws.o, n, d, attention_dtype));
  DS_TRY(alloc(ws.hidden, ws.ffn_rows, c.ffn, hidden_dtype));
  for (BackendBuffer* buf : {&ws.hid, &ws.ctx, &ws.ck, &ws.cv}) DS_TRY(alloc(*buf, L, d));
  DS_TRY(alloc(ws.patches, n, c.in_channels * pv));
  DS_TRY(alloc(ws.out, n, c.out_channels * pv));
  DS_ASSIGN_OR_RETURN(ws.latent, be.NewBuffer(DType::kF32, {c.in_channels, T, H, W}));
  DS_ASSIGN_OR_RETURN(ws.velocity, be.NewBuffer(DType::kF32, {c.out_channels, T, H, W}));
  ws.tfeat.resize(c.freq_dim);
  DS_TRY(alloc(ws.t_features, 1, c.freq_dim));
  DS_TRY(alloc(ws.context, L, c.text_dim));
  for (BackendBuffer* buf : {&ws.tmp, &ws.temb}) DS_TRY(alloc(*buf, 1, d));
  for (BackendBuffer* buf : {&ws.e, &ws.mod}) DS_TRY(alloc(*buf, 1, 6 * d));
  DS_TRY(alloc(ws.head_mod, 2, d));

  rope_ = BuildRope3d(grid[0], grid[1], grid[2], c.rope_axes(), 10000.0);
  const int64_t half = c.head_dim / 2;
  DS_TRY(alloc(ws.cos, n, half));
  DS_TRY(alloc(ws.sin, n, half));
  DS_TRY(be.CopyToBackend(Mat(rope_.cos.data(), n, half), ws.cos.tensor));
  DS_TRY(be.CopyToBackend(Mat(rope_.sin.data(), n, half), ws.sin.tensor));
  // Only now is the workspace ready: after a failure above (out of memory) the next Forward starts
  // over instead of running on the buffers that are missing.
  ws.backend = be.id();
  return Status::Ok();
}

// Whether, on `be`, every block's matrices `which` (positions in Block::scales' order) reach
// linear in BF16: stored so, or widened to it from F16/F8 where the backend multiplies BF16 weights.
// Only unscaled float32 matrices stay float32.
bool WanTransformer::ReachLinearInBf16(const Backend& be, std::initializer_list<int> which) const {
  if (be.WidenedWeightDType() != DType::kBF16) return false;
  for (const Block& b : host_.blocks) {
    const std::array<const Linear*, 10> all = {&b.q, &b.k, &b.v, &b.o, &b.cq, &b.ck, &b.cv, &b.co, &b.fc1, &b.fc2};
    for (int j : which) {
      if (all[static_cast<size_t>(j)]->w.dtype == DType::kF32 && b.scales[static_cast<size_t>(j)] == 1.0f) return false;
    }
  }
  return true;
}

// The FFN's hidden rows only feed fc2. They are kept in BF16 (half the memory and traffic; the
// rounding PyTorch's bf16 pipeline makes too) where every block's fc1 and fc2 reach linear in BF16.
DType WanTransformer::HiddenDType(const Backend& be) const {
  return ReachLinearInBf16(be, {8, 9}) ? DType::kBF16 : DType::kF32;
}

// q/k/v (the fused GEMM's output, normalised and rotated in place) and the attention output o are
// BF16 where the matrices that write and read them (q, k, v, o, the cross-attention's q and o)
// reach linear in BF16: the attention then reads its inputs and writes o without conversion
// passes, as PyTorch's bf16 pipeline does.
DType WanTransformer::AttentionDType(const Backend& be) const {
  return ReachLinearInBf16(be, {0, 1, 2, 3, 4, 7}) ? DType::kBF16 : DType::kF32;
}

// The normalised rows `a` feed only q/k/v, the cross-attention's q and fc1: BF16 (written so by the
// norms, read without a rounding pass by the GEMMs) where all of those reach linear in BF16 and
// the cross-attention norm writes them (without it `a` is a copy of x).
DType WanTransformer::NormDType(const Backend& be) const {
  return cfg_.cross_attn_norm && ReachLinearInBf16(be, {0, 1, 2, 4, 8}) ? DType::kBF16 : DType::kF32;
}

Result<const WanTransformer::Params*> WanTransformer::ParamsFor(Backend& be) {
  if (be.device() == Device::kCpu) return &host_;
  if (device_backend_ == be.id()) return device_params_.get();
  ReleaseDeviceWeights();
  auto params = std::make_unique<Params>(host_);
  auto place = [&](Tensor& t) -> Status {
    if (t.data == nullptr) return Status::Ok();
    // Weights here are vectors [D] or matrices [out, in], float32 or the checkpoint's 16-bit type.
    BackendBuffer buf;
    if (t.ndim == 1) {
      DS_ASSIGN_OR_RETURN(buf, be.NewBuffer(t.dtype, {t.shape[0]}));
    } else {
      DS_ASSIGN_OR_RETURN(buf, be.NewBuffer(t.dtype, {t.shape[0], t.shape[1]}));
    }
    DS_TRY(be.CopyToBackend(t, buf.tensor));
    t = buf.tensor;
    device_storage_.push_back(std::move(buf));
    return Status::Ok();
  };
  auto place_linear = [&](Linear& l) -> Status {
    DS_TRY(place(l.w));
    return place(l.b);
  };
  // q, k, v into consecutive rows of one matrix (and their biases into one vector), each then a
  // view of its rows; separately when their dtypes or biases differ.
  auto place_qkv = [&](Block& b) -> Status {
    const std::array<Linear*, 3> parts = {&b.q, &b.k, &b.v};
    const int64_t d = b.q.out(), in = b.q.in();
    bool fusable = true;
    for (const Linear* l : parts) {
      fusable = fusable && l->w.dtype == b.q.w.dtype && l->out() == d && l->in() == in &&
                (l->b.data != nullptr) == (b.q.b.data != nullptr) &&
                (l->b.data == nullptr || l->b.dtype == b.q.b.dtype);
    }
    if (!fusable) {
      for (Linear* l : parts) DS_TRY(place_linear(*l));
      return Status::Ok();
    }
    DS_ASSIGN_OR_RETURN(BackendBuffer w, be.NewBuffer(b.q.w.dtype, {3 * d, in}));
    BackendBuffer bias;
    if (b.q.b.data != nullptr) {
      DS_ASSIGN_OR_RETURN(bias, be.NewBuffer(b.q.b.dtype, {3 * d}));
    }
    for (size_t j = 0; j < parts.size(); ++j) {
      const int64_t r0 = static_cast<int64_t>(j) * d;
      DS_TRY(be.CopyToBackend(parts[j]->w, Rows(w.tensor, r0, d)));
      parts[j]->w = Rows(w.tensor, r0, d);
      if (bias.tensor.data != nullptr) {
        DS_TRY(be.CopyToBackend(parts[j]->b, Rows(bias.tensor, r0, d)));
        parts[j]->b = Rows(bias.tensor, r0, d);
      }
    }
    b.qkv = Linear{w.tensor, bias.tensor};
    device_storage_.push_back(std::move(w));
    if (bias.tensor.data != nullptr) device_storage_.push_back(std::move(bias));
    return Status::Ok();
  };
  for (Linear* l : {&params->patch, &params->t_fc1, &params->t_fc2, &params->t_proj, &params->txt_fc1, &params->txt_fc2,
                    &params->proj_out}) {
    DS_TRY(place_linear(*l));
  }
  DS_TRY(place(params->head_table));
  for (Block& b : params->blocks) {
    DS_TRY(place_qkv(b));
    for (Linear* l : {&b.o, &b.cq, &b.ck, &b.cv, &b.co, &b.fc1, &b.fc2}) DS_TRY(place_linear(*l));
    for (Tensor* t : {&b.table, &b.norm_q, &b.norm_k, &b.cnorm_q, &b.cnorm_k, &b.norm2_w, &b.norm2_b})
      DS_TRY(place(*t));
  }
  device_params_ = std::move(params);
  device_backend_ = be.id();
  return device_params_.get();
}

void WanTransformer::ReleaseDeviceWeights() {
  if (ws_) ws_->DropRecordings();  // they read the weights being freed
  device_params_.reset();
  device_backend_ = 0;
  device_storage_.clear();
}

Status WanTransformer::Forward(Backend& be, const float* latent, int T, int H, int W, float timestep,
                               const float* context, int text_len, float* velocity, const BlockCacheUse& cache) {
  // Weights first: the workspace is sized against the memory they leave.
  DS_ASSIGN_OR_RETURN(const Params* params, ParamsFor(be));
  DS_TRY(EnsureGeometry(be, T, H, W, text_len));
  const Params& P = *params;
  const WanTransformerConfig& c = cfg_;
  Workspace& ws = *ws_;
  const int64_t L = text_len;

  // The inputs into backend memory, the ops (recorded by a backend that replays them), the output back.
  DS_TRY(be.CopyToBackend(Tensor::View(const_cast<float*>(latent), DType::kF32, {c.in_channels, T, H, W}),
                          ws.latent.tensor));
  TimestepFeatures(timestep, c.freq_dim, ws.tfeat.data());
  DS_TRY(be.CopyToBackend(Mat(ws.tfeat.data(), 1, c.freq_dim), ws.t_features.tensor));
  DS_TRY(be.CopyToBackend(Mat(const_cast<float*>(context), L, c.text_dim), ws.context.tensor));
  if (cache.threshold > 0) {
    DS_TRY(CachedForwardOps(be, P, cache));
  } else {
    DS_TRY(be.RunRecorded(ws.recording, [&]() -> Status {
      EmbedOps(be, P);
      DS_TRY(BlockOps(be, P, 0, P.blocks.size()));
      HeadOps(be, P);
      return Status::Ok();
    }));
  }
  return be.CopyToHost(ws.velocity.tensor, Tensor::View(velocity, DType::kF32, {c.out_channels, T, H, W}));
}

Status WanTransformer::CachedForwardOps(Backend& be, const Params& P, const BlockCacheUse& use) {
  Workspace& ws = *ws_;
  DS_TRY(FirstBlockCache::CheckSlot(use.slot));
  const auto slot = static_cast<size_t>(use.slot);
  FirstBlockCache& fbc = ws.cache;
  Tensor x = ws.x.tensor;
  DS_TRY(fbc.Prepare(be, ws.n, cfg_.dim()));
  DS_TRY(be.RunRecorded(ws.cached_first[slot], [&]() -> Status {
    EmbedOps(be, P);
    fbc.BeforeFirstBlock(be, x);
    DS_TRY(BlockOps(be, P, 0, 1));
    fbc.AfterFirstBlock(be, x, use.slot);
    return Status::Ok();
  }));
  DS_ASSIGN_OR_RETURN(const bool reuse, fbc.Reuses(be, use.slot, use.threshold));
  if (reuse) {
    return be.RunRecorded(ws.cached_reuse[slot], [&]() -> Status {
      fbc.AddRest(be, x, use.slot);
      HeadOps(be, P);
      return Status::Ok();
    });
  }
  DS_TRY(be.RunRecorded(ws.cached_rest[slot], [&]() -> Status {
    fbc.BeforeRest(be, x, use.slot);
    DS_TRY(BlockOps(be, P, 1, P.blocks.size()));
    fbc.AfterRest(be, x, use.slot);
    HeadOps(be, P);
    return Status::Ok();
  }));
  fbc.Computed(use.slot);
  return Status::Ok();
}

void WanTransformer::ResetBlockCache() { ws_->cache.Reset(); }

FirstBlockCache::Stats WanTransformer::block_cache_stats(int slot) const { return ws_->cache.stats(slot); }

// The patch, time and text embeddings of the latent, time features and context in the workspace.
void WanTransformer::EmbedOps(Backend& be, const Params& P) {
  const WanTransformerConfig& c = cfg_;
  Workspace& ws = *ws_;
  Tensor x = ws.x.tensor, patches = ws.patches.tensor;
  be.patchify(ws.latent.tensor, c.patch, patches);
  P.patch(be, patches, x);

  // Time: temb = MLP(sinusoid(t)) feeds the head; e = time_proj(silu(temb)) every block's modulation.
  Tensor tmp = ws.tmp.tensor, temb = ws.temb.tensor, e = ws.e.tensor;
  P.t_fc1(be, ws.t_features.tensor, tmp);
  be.silu(tmp);
  P.t_fc2(be, tmp, temb);
  be.copy(temb, tmp);
  be.silu(tmp);
  P.t_proj(be, tmp, e);

  // Text: ctx = linear_2(gelu_tanh(linear_1(context))); zero rows become a constant vector.
  Tensor hid = ws.hid.tensor, ctx = ws.ctx.tensor;
  P.txt_fc1(be, ws.context.tensor, hid);
  be.gelu_tanh(hid);
  P.txt_fc2(be, hid, ctx);
}

Status WanTransformer::BlockOps(Backend& be, const Params& P, size_t first, size_t last) {
  for (size_t i = first; i < last; ++i) {
    DS_ASSIGN_OR_RETURN(const Block* b, Widen(be, P.blocks[i]));
    RunBlock(be, *b);
  }
  return Status::Ok();
}

// Head: modulation from the table and temb itself (not the 6D projection), then the velocity.
void WanTransformer::HeadOps(Backend& be, const Params& P) {
  const WanTransformerConfig& c = cfg_;
  Workspace& ws = *ws_;
  Tensor x = ws.x.tensor, temb = ws.temb.tensor;
  Tensor head_mod = ws.head_mod.tensor;
  be.copy(P.head_table, head_mod);
  for (int64_t row : {0, 1}) {
    Tensor r = Rows(head_mod, row, 1);
    be.add(r, temb);
  }
  Tensor a = ws.f.tensor;  // f32 (ws.a may be BF16, which only the blocks' GEMMs take)
  be.layer_norm_modulate(x, Row(head_mod, 0), Row(head_mod, 1), c.eps, a);
  Tensor out = ws.out.tensor, velocity = ws.velocity.tensor;
  P.proj_out(be, a, out);
  be.unpatchify(out, c.patch, /*channels_last=*/true, velocity);  // Wan's head orders channels last
}

Result<const WanTransformer::Block*> WanTransformer::Widen(Backend& be, const Block& b) {
  Workspace& ws = *ws_;
  // The order of Block::scales.
  const std::array<const Linear*, 10> from = {&b.q, &b.k, &b.v, &b.o, &b.cq, &b.ck, &b.cv, &b.co, &b.fc1, &b.fc2};
  // A matrix the backend multiplies as stored (F32 anywhere, BF16 on a GPU) is used in place; the
  // others are widened to BF16 on a GPU, to F32 on the CPU (WidenedWeightDType).
  auto as_stored = [&](size_t j) { return b.scales[j] == 1.0f && be.LinearAcceptsWeights(from[j]->w.dtype); };
  bool all_as_stored = true;
  for (size_t j = 0; j < from.size(); ++j) all_as_stored = all_as_stored && as_stored(j);
  if (all_as_stored) return &b;
  ws.widened = b;
  const std::array<Linear*, 10> to = {&ws.widened.q,  &ws.widened.k,  &ws.widened.v,  &ws.widened.o,   &ws.widened.cq,
                                      &ws.widened.ck, &ws.widened.cv, &ws.widened.co, &ws.widened.fc1, &ws.widened.fc2};
  const DType wide = be.WidenedWeightDType();
  auto ensure = [&](BackendBuffer& buf, int64_t rows, int64_t cols) -> Status {
    if (buf.tensor.data == nullptr || buf.tensor.numel() != rows * cols || buf.tensor.dtype != wide) {
      buf = {};
      DS_ASSIGN_OR_RETURN(buf, be.NewBuffer(wide, {rows, cols}));
    }
    return Status::Ok();
  };
  // A fused qkv stays fused when all three are used as stored, or all three widened (into
  // consecutive rows of one matrix); when only some are, the block runs them as three GEMMs.
  const bool fused = b.qkv.w.data != nullptr && !as_stored(0) && !as_stored(1) && !as_stored(2);
  const bool fused_as_stored = b.qkv.w.data != nullptr && as_stored(0) && as_stored(1) && as_stored(2);
  if (!fused && !fused_as_stored) ws.widened.qkv = {};
  if (fused) {
    const int64_t d = b.q.out();
    DS_TRY(ensure(ws.wide_qkv, 3 * d, b.q.in()));
    ws.widened.qkv.w = ws.wide_qkv.tensor;
  }
  for (size_t j = 0; j < from.size(); ++j) {
    const Tensor& w = from[j]->w;
    if (as_stored(j)) continue;
    Tensor dst;
    if (fused && j < 3) {
      dst = Rows(ws.wide_qkv.tensor, static_cast<int64_t>(j) * w.shape[0], w.shape[0]);
    } else {
      DS_TRY(ensure(ws.wide[j], w.shape[0], w.shape[1]));
      dst = ws.wide[j].tensor;
    }
    be.widen(w, dst, b.scales[j]);
    to[j]->w = dst;
  }
  return &ws.widened;
}

// b: the block's weights in the backend's memory. Its modulation is its table plus the time
// projection e, six [D] vectors.
void WanTransformer::RunBlock(Backend& be, const Block& b) {
  const WanTransformerConfig& c = cfg_;
  Workspace& ws = *ws_;
  const int64_t n = ws.n, d = c.dim(), heads = c.heads, dh = c.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
  Tensor m = ws.mod.tensor;
  be.copy(ws.e.tensor, m);
  be.add(m, Tensor::View(b.table.data, DType::kF32, {1, 6 * d}, b.table.device));
  auto mod = [&](int which) { return Slice(Row(m, 0), which * d, d); };
  auto heads_view = [&](const Tensor& t) { return SplitHeads(t, heads); };
  Tensor x = ws.x.tensor, a = ws.a.tensor, f = ws.f.tensor, o = ws.o.tensor;
  Tensor q = Cols(ws.qkv.tensor, 0, d), k = Cols(ws.qkv.tensor, d, d), v = Cols(ws.qkv.tensor, 2 * d, d);

  // Self-attention: q/k RMSNorm over the full width, then RoPE per head (one pass where fused).
  be.layer_norm_modulate(x, mod(0), mod(1), c.eps, a);
  if (b.qkv.w.data != nullptr) {
    b.qkv(be, a, ws.qkv.tensor);
  } else {
    b.q(be, a, q);
    b.k(be, a, k);
    b.v(be, a, v);
  }
  be.rms_norm_rope(q, b.norm_q, c.eps, ws.cos.tensor, ws.sin.tensor, heads);
  be.rms_norm_rope(k, b.norm_k, c.eps, ws.cos.tensor, ws.sin.tensor, heads);
  Tensor qh = heads_view(q), oh = heads_view(o);
  be.attention(qh, heads_view(k), heads_view(v), scale, oh);
  const Tensor gate_attn = mod(2), gate_ffn = mod(5);
  b.o.AddTo(be, o, &gate_attn, x, f);

  // Cross-attention to the projected text: affine LN, no modulation, no gate, no RoPE.
  if (c.cross_attn_norm) {
    be.layer_norm(x, &b.norm2_w, &b.norm2_b, c.eps, a);
  } else {
    be.copy(x, a);
  }
  Tensor ctx = ws.ctx.tensor, ck = ws.ck.tensor, cv = ws.cv.tensor;
  b.cq(be, a, q);
  be.rms_norm(q, b.cnorm_q, c.eps);
  b.ck(be, ctx, ck);
  be.rms_norm(ck, b.cnorm_k, c.eps);
  b.cv(be, ctx, cv);
  be.attention(qh, heads_view(ck), heads_view(cv), scale, oh);
  b.co.AddTo(be, o, nullptr, x, f);

  // Feed-forward in row chunks (on the host), so the hidden activation stays small; each chunk's
  // rows of x take their gated residual as soon as fc2 has them (a holds the normalised rows).
  be.layer_norm_modulate(x, mod(3), mod(4), c.eps, a);
  for (int64_t r0 = 0; r0 < n; r0 += ws.ffn_rows) {
    const int64_t rows = std::min(ws.ffn_rows, n - r0);
    Tensor h = Rows(ws.hidden.tensor, 0, rows), fr = Rows(f, r0, rows), xr = Rows(x, r0, rows);
    b.fc1.GeluTanh(be, Rows(a, r0, rows), h);
    b.fc2.AddTo(be, h, &gate_ffn, xr, fr);
  }
}

bool WanTransformer::ForwardReplays() const { return ws_ && ws_->recording && ws_->recording->replays(); }

bool WanTransformer::CachedForwardReplays(int slot, bool reused) const {
  if (!ws_ || slot < 0 || slot >= FirstBlockCache::kSlots) return false;
  const auto s = static_cast<size_t>(slot);
  const std::unique_ptr<OpRecording>& second = reused ? ws_->cached_reuse[s] : ws_->cached_rest[s];
  return ws_->cached_first[s] && ws_->cached_first[s]->replays() && second && second->replays();
}

void WanTransformer::ReleaseWorkspace() {
  ws_ = std::make_unique<Workspace>();
  rope_ = RopeTable{};
}

double WanTransformer::Flops(int T, int H, int W, int text_len) const {
  const WanTransformerConfig& c = cfg_;
  const double n = static_cast<double>(T / c.patch[0]) * (H / c.patch[1]) * (W / c.patch[2]);
  const double d = c.dim(), l = text_len, pv = c.patch_volume();
  const double per_block = 2 * n * (6 * d * d + 2 * d * c.ffn)  // q k v o, cross q o, FFN
                           + 2 * l * 2 * d * d                  // cross k v
                           + 4 * n * n * d + 4 * n * l * d;     // self- and cross-attention
  const double outer = 2 * n * d * pv * (c.in_channels + c.out_channels) + 2 * l * d * (c.text_dim + d);
  return c.layers * per_block + outer;
}

}  // namespace ds
