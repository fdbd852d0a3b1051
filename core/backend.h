// The Backend interface: every op the engine computes, on tensors of the backend's device. They are
// float32, except where a backend's linear takes BF16 weights (LinearAcceptsWeights: the GPU): then
// the activations that only feed or come out of bf16 GEMMs and attention may be BF16 too, as each
// op below says (linear's x and y, the norms' outputs, the q/k norms' rows, attention's q/k/v/o).
// The CPU backends never see BF16. kernels/cpu/reference implements each op naively (the test
// oracle); kernels/cpu the optimized CPU backend; kernels/cuda the GPU one. Shapes are
// preconditions checked by the caller (the model code validates all shapes when it loads), so ops
// return nothing.
//
// Layout conventions: tensors are row-major and contiguous unless an op says otherwise; "rows" of a
// [M, D] tensor are tokens. Attention takes q/k/v as [tokens, heads, head_dim] views whose token
// stride may be larger than heads·head_dim (so q, k and v can be slices of one fused qkv buffer).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/frame.h"
#include "core/status.h"
#include "core/tensor.h"

namespace ds {

// Storage in a backend's memory: host memory for the CPU backends, device memory for the CUDA one.
// `tensor` is a contiguous view of it; the memory lives as long as any copy of `storage`.
struct BackendBuffer {
  std::shared_ptr<void> storage;
  Tensor tensor;
};

// What a backend keeps of a sequence of ops it recorded (Backend::RunRecorded). Opaque to the
// caller, who owns it and drops it whenever a buffer or a shape those ops use changes.
class OpRecording {
 public:
  virtual ~OpRecording() = default;
  // Whether the next run replays the recording instead of issuing the ops.
  virtual bool replays() const { return false; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  // Unique for the life of the process: models that keep memory in a backend recognise it by this,
  // not by its address, which a later backend may reuse.
  uint64_t id() const { return id_; }
  virtual const char* name() const = 0;
  virtual Device device() const = 0;
  // 0 = all cores. Affects every op of this backend (BLAS and element-wise loops alike).
  virtual void set_threads(int threads) = 0;
  virtual int threads() const = 0;

  // y[M, N] = x[M, K] · w[N, K]ᵀ (+ bias[N] when not null). x may have a row stride > K
  // (strides[0]); y is contiguous, or has a row stride when it is a slice of a wider buffer.
  // w is F32, or any dtype for which LinearAcceptsWeights is true.
  virtual void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) = 0;
  // Whether linear takes w in this stored dtype as it is (then x is rounded to it and the products
  // accumulate in f32), so a model need not widen the matrix first. F32 only by default; the CUDA
  // backend also takes BF16, the dtype of the published checkpoints, at twice TF32's speed. When
  // it takes BF16 weights, linear and linear_gelu_tanh with a BF16 w also take x and y in BF16:
  // a model may keep an activation that only GEMMs read (the FFN's hidden rows) in BF16.
  virtual bool LinearAcceptsWeights(DType dtype) const { return dtype == DType::kF32; }
  // What a model widens 8- and 16-bit (or scaled) weights to before linear: BF16 where linear takes
  // BF16 weights (half the memory, bf16 GEMMs), else F32.
  DType WidenedWeightDType() const { return LinearAcceptsWeights(DType::kBF16) ? DType::kBF16 : DType::kF32; }
  // y = gelu_tanh(x · wᵀ + bias), the first half of a feed-forward: one op, so a GPU backend fuses
  // the activation into the GEMM's epilogue and writes y once.
  virtual void linear_gelu_tanh(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
    linear(x, w, bias, y);
    gelu_tanh(y);
  }

  // x[M, N] += gate[N] · (a[M, K]·wᵀ + bias[N]), or x += a·wᵀ + bias when gate is null: a linear
  // whose output only feeds a residual (AdaLN-Zero's gated one, or a plain one). x is F32; a, w
  // and bias as linear takes them. `scratch` [M, N] (F32) may be overwritten: the default computes
  // the linear into it and then gate_residual or add; a GPU backend accumulates into x in the
  // GEMM's epilogue instead, so the product is never written and read back.
  virtual void linear_residual(const Tensor& a, const Tensor& w, const Tensor* bias, const Tensor* gate, Tensor& x,
                               Tensor& scratch);

  // Over the last dim D of x[M, D]: y = (x − mean)/sqrt(var + eps) (· weight + bias when given).
  // Where LinearAcceptsWeights(BF16), y (of both norms) may be BF16: rows that only bf16 GEMMs read.
  virtual void layer_norm(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Tensor& y) = 0;
  // y = LN(x) · (1 + scale) + shift, scale and shift [D]: the AdaLN modulation, fused.
  virtual void layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, Tensor& y) = 0;
  // In place over the last dim of x[M, D] (M rows may be strided, see linear):
  // x = x / sqrt(mean(x²) + eps) · weight[D]. Used per head for q/k norms. x may be BF16 (computed
  // in f32, rounded once) where LinearAcceptsWeights(BF16); so may x of rms_norm_rope.
  virtual void rms_norm(Tensor& x, const Tensor& weight, float eps) = 0;

  // x[M, D] += gate[D] · f[M, D]   (AdaLN-Zero gated residual).
  virtual void gate_residual(Tensor& x, const Tensor& gate, const Tensor& f) = 0;
  // x[M, D] += f[M, D]
  virtual void add(Tensor& x, const Tensor& f) = 0;
  // x[M, D] *= f[M, D] element-wise (a gated FFN's gate product). By default on host memory.
  virtual void mul(Tensor& x, const Tensor& f);
  // x[M, D] −= f[M, D] (F32; a residual taken out again). By default on host memory.
  virtual void sub(Tensor& x, const Tensor& f);
  // sums[0] = Σ|a − b|, sums[1] = Σ|b| over contiguous F32 a and b of equal element counts; sums is
  // a contiguous F32 [2] in the backend's memory (read it with CopyToHost). The terms are added in
  // an order fixed by the element count alone, so the same inputs give the same bits every run: a
  // decision taken on the sums (core/first_block_cache.h) is then reproducible. By default on host
  // memory, in double; mismatched a and b give NaN sums.
  virtual void abs_diff_sums(const Tensor& a, const Tensor& b, Tensor& sums);
  // In place, element-wise.
  virtual void gelu_tanh(Tensor& x) = 0;
  virtual void silu(Tensor& x) = 0;

  // In place rotation of x[N, H, dh] (token stride may exceed H·dh) by angles given as
  // cos/sin[N, dh/2]: pair j of every head is (x[2j], x[2j+1]) → (x0·c − x1·s, x0·s + x1·c).
  virtual void rope(Tensor& x, const Tensor& cos, const Tensor& sin) = 0;
  // The q/k preparation of a DiT block: x[N, H·dh] (token stride may exceed H·dh) is RMS-normalised
  // over its full width (rms_norm with weight[H·dh]), then each head rotated as rope does on the
  // [N, H, dh] view. A backend may do it in one pass over x; by default the two ops.
  virtual void rms_norm_rope(Tensor& x, const Tensor& weight, float eps, const Tensor& cos, const Tensor& sin,
                             int64_t heads);

  // In place over contiguous scores[H, Lq, Lk]: add a relative-position bias given per offset,
  // scores[h, i, j] += bias[h, j − i + Lq − 1] with bias [H, Lq + Lk − 1] (T5's bucketed bias,
  // expanded), then softmax over j. By default on host memory.
  virtual void softmax_relative_bias(Tensor& scores, const Tensor& bias);

  // o[Nq, H, dh] = softmax(q·kᵀ · scale) · v per head; q [Nq, H, dh], k and v [Nk, H, dh].
  // Non-causal, no mask. Memory stays O(N·dh): no Nq×Nk matrix is materialised. Where
  // LinearAcceptsWeights(BF16), each of q, k, v and o may be BF16 (a GPU's flash kernel computes
  // in bf16 anyway: BF16 inputs skip its conversion, a BF16 o feeds the next GEMM directly).
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& o) = 0;

  // tokens[N, C·pt·ph·pw] from latent[C, T, H, W] with the 3D patch `patch` (core/patchify.h's
  // order), and back: latent from tokens whose values are in that order or, channels_last, in
  // (dt, dy, dx, c) order. Both contiguous F32. By default on host memory.
  virtual void patchify(const Tensor& latent, std::array<int, 3> patch, Tensor& tokens);
  virtual void unpatchify(const Tensor& tokens, std::array<int, 3> patch, bool channels_last, Tensor& latent);

  // A video frame in `format` (core/frame.h's layout and arithmetic, bit for bit) from
  // planar[3, H, W] F32 samples in [−1, 1] (clamped): frame is U8 [LayoutOf(format.pixels, W, H).bytes],
  // both contiguous. A GPU converts a decoded frame where it is, and only the bytes cross to the
  // host. By default on host memory.
  virtual void planar_to_pixels(const Tensor& planar, FrameFormat format, Tensor& frame);

  // y[O, H, W] = conv2d(x[C, H, W], w[O, C, 3, 3], pad 1, stride 1) + bias[O].
  virtual void conv3x3(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y) = 0;
  // y[C, 2H, 2W] = nearest-neighbour 2× upsampling of x[C, H, W].
  virtual void upsample_nearest2x(const Tensor& x, Tensor& y) = 0;
  // y[C, R] = x[R, C]ᵀ; rows of either may be strided (a slice of a wider buffer). The switch between
  // pixel-major activations (norms, linears) and channel-major planes (convolutions).
  virtual void transpose(const Tensor& x, Tensor& y) = 0;

  // Memory. A model keeps its weights and activations in the backend's memory through these, so a
  // GPU backend runs a whole forward without host round trips (ops also accept host tensors, which
  // a GPU backend stages per op: correct, but slow for large ones). The defaults serve host
  // backends: NewBuffer allocates 64-byte aligned host memory (a host tensor, which any backend
  // accepts) and the copies are memcpy.
  virtual Result<BackendBuffer> NewBuffer(DType dtype, std::initializer_list<int64_t> shape);
  // Contiguous tensors of equal byte size; host → backend memory, backend → host (waits for the
  // backend's queued work), and backend → backend (dst = src, ordered with the other ops).
  virtual Status CopyToBackend(const Tensor& host, const Tensor& dst);
  virtual Status CopyToHost(const Tensor& src, const Tensor& host);
  // Sets a contiguous tensor in the backend's memory to zero bytes (ordered with the other ops).
  virtual Status Zero(const Tensor& dst);
  // Bytes a model stage may plan to hold at once in this backend's memory, to choose between a
  // fast and a frugal way (the VAE's streamed or tiled decode): half the host's RAM (or of the
  // container's memory limit) for host backends, most of the free device memory for a GPU. 0 when
  // unknown.
  virtual size_t WorkingSetBudget() const;
  virtual void copy(const Tensor& src, Tensor& dst);
  // dst = src (any DType) · scale element by element, both contiguous with equal element counts,
  // in the backend's memory; dst is F32, or BF16 (the product rounded to nearest even). Models keep
  // 16- and 8-bit weights as the checkpoint stores them (a half or a quarter of float32's memory, on
  // the host and on a GPU) and widen one layer at a time through this: to BF16 where
  // LinearAcceptsWeights(kBF16) (then the GEMMs run in bf16), else to F32. scale is a scaled-F8
  // weight's per-tensor factor, else 1.
  virtual void widen(const Tensor& src, Tensor& dst, float scale);

  // Runs `ops`, a sequence a model issues again and again on the same buffers with the same shapes
  // (a DiT forward, once or twice per denoising step), and returns their status. A backend that
  // can replay such a sequence more cheaply than issue it keeps what it needs in `recording` and
  // may replay it later instead of calling `ops`: the CUDA backend captures a CUDA graph, one
  // launch instead of hundreds of kernel launches and their host work. So `ops` may only issue
  // ops on this backend's memory (no host tensors, no copies to or from the host), must take the
  // same host-side decisions every time, and the buffers' contents are their only inputs. By
  // default: calls `ops`.
  virtual Status RunRecorded(std::unique_ptr<OpRecording>& recording, const std::function<Status()>& ops);

 private:
  static uint64_t NextId();
  const uint64_t id_ = NextId();
};

// Elements [begin, end) of Backend::widen on host memory (dst F32 or BF16; other dtypes: nothing),
// for host backends that split the work.
void WidenRange(const Tensor& src, const Tensor& dst, float scale, size_t begin, size_t end);

}  // namespace ds
