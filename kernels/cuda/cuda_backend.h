// The CUDA backend: every Backend op on one device and one stream, with device memory taken from
// a single arena allocated up front. This header has no CUDA types, so the registry and the tests
// include it from plain C++.
//
// Tensors. Ops run on tensors with device == Device::kCuda (made by Alloc or NewBuffer, filled by
// Upload / CopyToBackend) and enqueue asynchronously on the backend's stream; Download and
// Synchronize wait. Host tensors (device == kCpu) are accepted too: the op copies the bytes spanned
// by each host view into arena scratch, runs, copies host outputs back and waits (correct, slow for
// large ones). The Wan family keeps its weights and activations in device buffers, so a forward
// moves only its inputs and its output over PCIe, and replays as a CUDA graph (RunRecorded).
//
// Precision. GEMMs (linear, conv3x3) run on tensor cores: TF32 for F32 weights (CudaOptions::tf32;
// off = full f32 FMA), bf16×bf16→f32 for BF16 weights as stored (LinearAcceptsWeights), as
// PyTorch's bf16 pipelines compute; then x and y may be BF16 too, and the norms write the BF16 rows
// the GEMMs read. Attention computes in bf16 with f32 softmax and accumulation (≈1e-2 relative),
// reading and writing BF16 or F32; CudaOptions::attention = kNaiveF32 selects the exact f32
// kernel. The residual stream and the norm statistics stay f32.
//
// Errors. Backend ops return nothing, so the first failure (a launch error, an arena too small)
// is kept: later ops are skipped until Synchronize() returns it (and clears it).
#pragma once

#include <cstddef>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "core/backend.h"
#include "core/status.h"
#include "core/tensor.h"
#include "kernels/cuda/attention/attention_choice.h"
#include "kernels/cuda/autotune.h"

namespace ds {

struct CudaOptions {
  int device = 0;
  // Device memory for Alloc'd tensors and per-op scratch (staging of host tensors, attention's
  // bf16 copies, im2col), allocated once. 0: the environment variable DS_CUDA_ARENA_MB if set,
  // else min(2 GiB, 3/4 of the free memory): models keep weights and activations in NewBuffer
  // memory outside the arena, which holds only op scratch (attention's bf16 q/k/v, converted in
  // head groups that fit; conv3x3's im2col bands of 256 MB; staged host tensors), so the arena must
  // not take the memory a 14B needs.
  size_t arena_bytes = 0;
  bool tf32 = true;
  enum class Attention { kFlashBf16, kNaiveF32 } attention = Attention::kFlashBf16;
  // Flash kernel configuration by name (bench_cuda prints them: "w4x2_k32_s3_qs", …), used for
  // every head dim that has it. Empty: the environment variable DS_FLASH_CONFIG if set, else each
  // head dim's default. A name no head dim has fails Create with kInvalidArgument.
  std::string flash_config;
  // Record a model's repeated ops as a CUDA graph and replay it (RunRecorded). Also off when the
  // environment variable DS_CUDA_GRAPHS is 0.
  bool graphs = true;
  // Which new GEMM plans time cuBLASLt's first candidate algorithms once and keep the fastest
  // (kernels/cuda/gemm_tuning.h): by default those a model's recorded forward makes, which replay
  // every step; the others take the heuristic's first usable one. The environment variable
  // DS_GEMM_AUTOTUNE overrides it: 0 (none), recorded, all.
  cuda::Autotune gemm_autotune = cuda::Autotune::kRecorded;
  // Which attention shapes time the flash configurations of the default's kind once and keep the
  // fastest (kernels/cuda/attention/attention_tuning.h), where flash_config names none: by default
  // those of a model's recorded forward. DS_ATTENTION_AUTOTUNE overrides it: 0, recorded, all.
  cuda::Autotune attention_autotune = cuda::Autotune::kRecorded;
  // Where timed choices are kept between processes, so that every run on this machine takes the
  // same algorithms and kernels (the same output bits for the same inputs) and times them once:
  // unset, the environment variable DS_TUNING_CACHE if set (else DS_GEMM_TUNING_CACHE, its earlier
  // name), else $XDG_CACHE_HOME/ditstream/kernel-tuning.txt (~/.cache/… without it); "" keeps none.
  std::optional<std::string> tuning_cache;
};

// Devices the driver reports, or why there are none ("no CUDA device: …", kUnsupported).
Result<int> CudaDeviceCount();

class CudaBackend final : public Backend {
 public:
  // kUnsupported when there is no usable device (no driver, no GPU, compute capability < 8.0, or
  // no kernel image for it in this build); kOutOfMemory when the arena cannot be allocated.
  static Result<std::unique_ptr<CudaBackend>> Create(const CudaOptions& options = {});
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  const char* name() const override { return "cuda"; }
  Device device() const override { return Device::kCuda; }
  void set_threads(int threads) override { threads_ = threads; }  // host threads: unused
  int threads() const override { return threads_; }

  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override;
  bool LinearAcceptsWeights(DType dtype) const override;
  void linear_gelu_tanh(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override;
  void layer_norm(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Tensor& y) override;
  void layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, Tensor& y) override;
  void rms_norm(Tensor& x, const Tensor& weight, float eps) override;
  void gate_residual(Tensor& x, const Tensor& gate, const Tensor& f) override;
  // Accumulated by cuBLASLt into x (beta 1, the gate as its alpha vector); where it has no
  // algorithm for that, the linear into scratch and the residual kernel.
  void linear_residual(const Tensor& a, const Tensor& w, const Tensor* bias, const Tensor* gate, Tensor& x,
                       Tensor& scratch) override;
  void add(Tensor& x, const Tensor& f) override;
  void mul(Tensor& x, const Tensor& f) override;
  void sub(Tensor& x, const Tensor& f) override;
  void abs_diff_sums(const Tensor& a, const Tensor& b, Tensor& sums) override;
  void softmax_relative_bias(Tensor& scores, const Tensor& bias) override;
  void gelu_tanh(Tensor& x) override;
  void silu(Tensor& x) override;
  void rope(Tensor& x, const Tensor& cos, const Tensor& sin) override;
  void rms_norm_rope(Tensor& x, const Tensor& weight, float eps, const Tensor& cos, const Tensor& sin,
                     int64_t heads) override;
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& o) override;
  void conv3x3(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y) override;
  void upsample_nearest2x(const Tensor& x, Tensor& y) override;
  void patchify(const Tensor& latent, std::array<int, 3> patch, Tensor& tokens) override;
  void planar_to_pixels(const Tensor& planar, FrameFormat format, Tensor& frame) override;
  void unpatchify(const Tensor& tokens, std::array<int, 3> patch, bool channels_last, Tensor& latent) override;

  // Model memory: a cudaMalloc per buffer (outside the arena, freed with the last handle), async
  // copies on the backend's stream.
  Result<BackendBuffer> NewBuffer(DType dtype, std::initializer_list<int64_t> shape) override;
  Status CopyToBackend(const Tensor& host, const Tensor& dst) override;
  Status CopyToHost(const Tensor& src, const Tensor& host) override;
  Status Zero(const Tensor& dst) override;
  size_t WorkingSetBudget() const override;
  void transpose(const Tensor& x, Tensor& y) override;
  void copy(const Tensor& src, Tensor& dst) override;
  void widen(const Tensor& src, Tensor& dst, float scale) override;
  // The first run of a recording issues the ops (it allocates what they create on first use), the
  // second captures them as a CUDA graph and launches it, later ones launch the graph: a single
  // launch for a Wan forward's ~600 kernels, and no host work per op. Ops that cannot be captured
  // make it fall back, with a warning, to issuing them each time.
  Status RunRecorded(std::unique_ptr<OpRecording>& recording, const std::function<Status()>& ops) override;
  void set_graphs(bool on);  // CudaOptions::graphs; off: RunRecorded issues the ops each time
  // CudaOptions::gemm_autotune from now on: the GEMM plans made so far are dropped (after the stream
  // drains) and made again on next use, and recordings are captured again, so that one process can
  // time the same GEMMs with and without tuning.
  Status set_gemm_autotune(cuda::Autotune mode);
  // linear_residual calls issued so far (a recorded graph's once, at capture): accumulated by
  // cuBLASLt itself (the gate as its per-row alpha vector), or by linear + gate_residual where
  // cuBLASLt has no algorithm that takes the gate so.
  struct LinearResidualPaths {
    size_t fused = 0, fallback = 0;
  };
  LinearResidualPaths linear_residual_paths() const;
  // GEMM plans whose algorithm was chosen by timing now, or read from the tuning cache.
  size_t gemm_plans_timed() const;
  size_t gemm_plans_cached() const;
  // CudaOptions::attention_autotune from now on: the choices made so far are forgotten (made again
  // at each shape's next call) and recordings are captured again.
  Status set_attention_autotune(cuda::Autotune mode);
  // The flash configuration chosen per attention shape so far (AttentionShapeKey → choice).
  const std::map<std::string, cuda::AttentionChoice>& attention_choices() const;
  // CudaOptions::flash_config from now on ("" = as Create: DS_FLASH_CONFIG, else the defaults), so that one process can
  // time a model's forward with several kernels: recordings made before are captured again. The error of Create for a
  // name no head dim has, or one the device cannot run; the choice is unchanged.
  Status set_flash_config(const std::string& name);

  // A contiguous device tensor from the arena; lives until ResetArena().
  Result<Tensor> Alloc(DType dtype, std::initializer_list<int64_t> shape);
  // Byte copies between a contiguous host tensor and a contiguous device tensor of the same size.
  Status Upload(const Tensor& host, const Tensor& device);
  Status Download(const Tensor& device, const Tensor& host);  // waits for the stream
  // Waits for all enqueued work; returns (and clears) the first error since the last call.
  Status Synchronize();
  // Frees every Alloc'd tensor at once (the cuBLASLt workspace, allocated first, stays).
  void ResetArena();
  size_t arena_used() const;
  size_t arena_peak() const;
  size_t arena_capacity() const;
  // "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)".
  const std::string& description() const;

 private:
  struct Impl;
  explicit CudaBackend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  int threads_ = 1;
};

}  // namespace ds
