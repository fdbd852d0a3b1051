#include "kernels/cuda/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "core/log.h"
#include "kernels/cuda/arena.h"
#include "kernels/cuda/attention/attention.h"
#include "kernels/cuda/attention/attention_tuning.h"
#include "kernels/cuda/attention/flash_attention.cuh"
#include "kernels/cuda/context.h"
#include "kernels/cuda/conv.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/frame.cuh"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/norm.cuh"
#include "kernels/cuda/patchify.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/cuda/rope.cuh"
#include "kernels/cuda/softmax.cuh"
#include "kernels/cuda/transpose.cuh"
#include "kernels/cuda/upsample.cuh"

namespace ds {

namespace {

constexpr size_t kLtWorkspaceBytes = size_t{32} << 20;  // NVIDIA's recommendation for Hopper
constexpr size_t kMiB = size_t{1} << 20;

Result<size_t> ArenaBytes(const CudaOptions& options) {
  if (options.arena_bytes) return options.arena_bytes;
  if (const char* env = std::getenv("DS_CUDA_ARENA_MB"); env && *env) {
    char* end = nullptr;
    const unsigned long long mb = std::strtoull(env, &end, 10);
    if (*end != '\0' || mb == 0) {
      return Error(Code::kInvalidArgument, "DS_CUDA_ARENA_MB=\"{}\": expected a positive number of MiB", env);
    }
    return static_cast<size_t>(mb) * kMiB;
  }
  size_t free_bytes = 0, total = 0;
  DS_CUDA_TRY(cudaMemGetInfo(&free_bytes, &total));
  return std::min(free_bytes / 4 * 3, size_t{2} << 30);
}

}  // namespace

Result<int> CudaDeviceCount() {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return Error(Code::kUnsupported, "no CUDA device: cudaGetDeviceCount: {} ({})", cudaGetErrorName(e),
                 cudaGetErrorString(e));
  }
  if (count == 0) return Error(Code::kUnsupported, "no CUDA device: the driver reports none");
  return count;
}

namespace {

// One op's view of its tensors on the device. Host tensors are copied (the whole byte span of the
// view, gaps included, so strided views keep their strides) into scratch that the arena takes
// back when the op ends; host outputs are copied back and waited for.
class Staging {
 public:
  explicit Staging(cuda::Context& ctx) : ctx_(ctx), scratch_(ctx) {}

  // bf16_ok: t may also be BF16 (linear's operands, see Backend::LinearAcceptsWeights).
  Result<Tensor> In(const Tensor& t, const char* name, bool bf16_ok = false) {
    if (t.dtype != DType::kF32 && !(bf16_ok && t.dtype == DType::kBF16)) {
      return Error(Code::kInvalidArgument, "{} is {}, the CUDA backend computes in F32", name, DTypeName(t.dtype));
    }
    if (t.device == Device::kCuda || t.numel() == 0) return t;
    const size_t bytes = SpanBytes(t);
    DS_ASSIGN_OR_RETURN(void* dev, scratch_.Allocate(bytes, name));
    DS_CUDA_TRY(cudaMemcpyAsync(dev, t.data, bytes, cudaMemcpyHostToDevice, ctx_.stream));
    Tensor d = t;
    d.data = dev;
    d.device = Device::kCuda;
    return d;
  }

  // In-place and output tensors: copied in too, so the bytes between a strided view's rows come
  // back unchanged.
  Result<Tensor> Out(const Tensor& t, const char* name, bool bf16_ok = false) {
    DS_ASSIGN_OR_RETURN(Tensor d, In(t, name, bf16_ok));
    if (t.device == Device::kCpu && t.numel() > 0) outputs_.push_back({t, d});
    return d;
  }

  Status Finish() {
    for (const auto& [host, dev] : outputs_) {
      DS_CUDA_TRY(cudaMemcpyAsync(host.data, dev.data, SpanBytes(host), cudaMemcpyDeviceToHost, ctx_.stream));
    }
    if (!outputs_.empty()) DS_CUDA_TRY(cudaStreamSynchronize(ctx_.stream));
    return Status::Ok();
  }

 private:
  cuda::Context& ctx_;
  cuda::Scratch scratch_;
  std::vector<std::pair<Tensor, Tensor>> outputs_;
};

}  // namespace

struct CudaBackend::Impl {
  CudaOptions options;
  void* arena_base = nullptr;
  cuda::Arena arena;
  size_t arena_floor = 0;  // below: the cuBLASLt workspace, kept across ResetArena()
  cuda::GemmPlans plans;
  cuda::TuningCache tuning_cache;  // ctx.tuning_cache points here when it has a file
  cuda::AttentionTuner attention_tuner;
  cuda::Context ctx;
  cuda::flash::Choice flash;
  // Bumped when a setting a recorded graph has baked in changes (set_flash_config): recordings
  // of an older generation are made again.
  uint64_t recording_generation = 0;
  CudaBackend::LinearResidualPaths residual_paths;
  Status error;                  // the first failure since the last Synchronize()
  bool capturing = false;        // inside a CUDA graph capture: a failure is the capture's, not logged
  bool device_selected = false;  // Init's cudaSetDevice succeeded
  std::string description;

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    // Init stopped before it selected a device (none, or an index past the driver's): nothing was
    // made, and cudaSetDevice with that index would leave its error to the thread's next CUDA call.
    if (!device_selected) return;
    cudaSetDevice(options.device);
    if (ctx.stream) cudaStreamSynchronize(ctx.stream);
    plans.Clear();
    if (ctx.lt) cublasLtDestroy(ctx.lt);
    if (ctx.stream) cudaStreamDestroy(ctx.stream);
    if (arena_base) cudaFree(arena_base);
  }

  // The choice, when every head dim this build has can run its configuration on this device.
  static Result<cuda::flash::Choice> RunnableChoice(Result<cuda::flash::Choice> choice) {
    DS_TRY(choice.status());
    for (int head_dim : {32, 64, 128}) {
      if (cuda::flash::SupportsHeadDim(head_dim)) DS_TRY(cuda::flash::Runnable(head_dim, choice->index(head_dim)));
    }
    return choice;
  }

  Status Init(const CudaOptions& opts) {
    options = opts;
    DS_ASSIGN_OR_RETURN(const int count, CudaDeviceCount());
    if (options.device < 0 || options.device >= count) {
      return Error(Code::kInvalidArgument, "CUDA device {} requested, the driver reports {}", options.device, count);
    }
    DS_CUDA_TRY(cudaSetDevice(options.device));
    device_selected = true;
    cudaDeviceProp prop;
    DS_CUDA_TRY(cudaGetDeviceProperties(&prop, options.device));
    ctx.cc = 10 * prop.major + prop.minor;
    ctx.sm_count = prop.multiProcessorCount;
    ctx.tf32 = options.tf32;
    description = fmt::format("{} (sm_{}, {} SMs)", prop.name, ctx.cc, ctx.sm_count);
    if (ctx.cc < 80) {
      return Error(Code::kUnsupported, "CUDA device {}: {} has compute capability {}.{}; this backend needs 8.0+",
                   options.device, prop.name, prop.major, prop.minor);
    }
    DS_TRY(cuda::flash::CheckKernelImage());
    DS_ASSIGN_OR_RETURN(flash, RunnableChoice(cuda::flash::Choice::FromOption(options.flash_config)));

    DS_ASSIGN_OR_RETURN(const size_t bytes, ArenaBytes(options));
    if (bytes < 2 * kLtWorkspaceBytes) {
      return Error(Code::kInvalidArgument, "CUDA arena of {} MiB is too small (minimum {} MiB)", bytes / kMiB,
                   2 * kLtWorkspaceBytes / kMiB);
    }
    if (const cudaError_t e = cudaMalloc(&arena_base, bytes); e != cudaSuccess) {
      cudaGetLastError();
      return Error(Code::kOutOfMemory, "CUDA arena: cudaMalloc of {} MiB on {}: {}", bytes / kMiB, description,
                   cudaGetErrorString(e));
    }
    arena = cuda::Arena(arena_base, bytes);
    DS_CUDA_TRY(cudaStreamCreateWithFlags(&ctx.stream, cudaStreamNonBlocking));
    DS_CUBLAS_TRY(cublasLtCreate(&ctx.lt));
    DS_ASSIGN_OR_RETURN(ctx.lt_workspace, arena.Allocate(kLtWorkspaceBytes, "cuBLASLt workspace"));
    ctx.lt_workspace_bytes = kLtWorkspaceBytes;
    arena_floor = arena.Mark();
    ctx.arena = &arena;
    ctx.plans = &plans;
    if (const char* env = std::getenv("DS_CUDA_GRAPHS"); env && std::string_view(env) == "0") options.graphs = false;
    for (const auto& [variable, mode] : {std::pair{"DS_GEMM_AUTOTUNE", &options.gemm_autotune},
                                         std::pair{"DS_ATTENTION_AUTOTUNE", &options.attention_autotune}}) {
      const char* env = std::getenv(variable);
      if (env == nullptr || *env == '\0') continue;
      const std::optional<cuda::Autotune> parsed = cuda::ParseAutotune(env);
      if (!parsed) return Error(Code::kInvalidArgument, "{} is '{}': 0, recorded or all", variable, env);
      *mode = *parsed;
    }
    ctx.gemm_autotune = options.gemm_autotune;
    ctx.attention_autotune = options.attention_autotune;
    // The timed choices of earlier processes on this machine (tuning_cache.h), by device (its SM
    // count too: cuBLAS promises the same bits for the same architecture and SM count) and
    // cuBLASLt version.
    const std::string cache_path = options.tuning_cache.value_or(cuda::TuningCache::DefaultPath());
    if (!cache_path.empty()) {
      tuning_cache = cuda::TuningCache(cache_path);
      ctx.tuning_cache = &tuning_cache;
    }
    ctx.device_key =
        cuda::TuningCache::MakeKey({prop.name, "sm" + std::to_string(ctx.cc), std::to_string(ctx.sm_count) + "SMs",
                                    "cublasLt" + std::to_string(cublasLtGetVersion())});
    return Status::Ok();
  }

  void Record(const char* op, const Status& s) {
    if (s.ok() || !error.ok()) return;
    error = Error(s.code(), "cuda {}: {}", op, s.message());
    if (!capturing) Log(LogLevel::kError, "{}", error.message());
  }

  // Runs one op's body (staging → entry point) unless an earlier op failed; keeps the first error.
  template <class Body>
  void Run(const char* op, Body&& body) {
    if (!error.ok()) return;
    Record(op, [&]() -> Status {
      DS_CUDA_TRY(cudaSetDevice(options.device));
      Staging staging(ctx);
      DS_TRY(body(staging));
      return staging.Finish();
    }());
  }
};

Result<std::unique_ptr<CudaBackend>> CudaBackend::Create(const CudaOptions& options) {
  auto impl = std::make_unique<Impl>();
  DS_TRY(impl->Init(options));
  return std::unique_ptr<CudaBackend>(new CudaBackend(std::move(impl)));
}

CudaBackend::CudaBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaBackend::~CudaBackend() = default;

namespace {

// linear and linear_gelu_tanh: BF16 w, x and y pass staging (cuda::Linear checks the combination).
Status StagedLinear(const cuda::Context& ctx, Staging& staging, const Tensor& x, const Tensor& w, const Tensor* bias,
                    const Tensor& y, bool gelu) {
  DS_ASSIGN_OR_RETURN(const Tensor dx, staging.In(x, "linear x", /*bf16_ok=*/true));
  DS_ASSIGN_OR_RETURN(const Tensor dw, staging.In(w, "linear w", /*bf16_ok=*/true));
  Tensor db;
  if (bias) {
    DS_ASSIGN_OR_RETURN(db, staging.In(*bias, "linear bias"));
  }
  DS_ASSIGN_OR_RETURN(const Tensor dy, staging.Out(y, "linear y", /*bf16_ok=*/true));
  return cuda::Linear(ctx, dx, dw, bias ? &db : nullptr, dy, gelu);
}

}  // namespace

void CudaBackend::linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  impl_->Run("linear",
             [&](Staging& staging) { return StagedLinear(impl_->ctx, staging, x, w, bias, y, /*gelu=*/false); });
}

// With BF16 weights, cuBLASLt's GELU epilogue (applied to the f32 accumulator, before y is
// rounded); with f32 weights the separate kernel, as before.
void CudaBackend::linear_gelu_tanh(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  if (w.dtype != DType::kBF16) {
    linear(x, w, bias, y);
    gelu_tanh(y);
    return;
  }
  impl_->Run("linear_gelu_tanh",
             [&](Staging& staging) { return StagedLinear(impl_->ctx, staging, x, w, bias, y, /*gelu=*/true); });
}

bool CudaBackend::LinearAcceptsWeights(DType dtype) const {
  return dtype == DType::kF32 || (dtype == DType::kBF16 && impl_->options.tf32);
}

namespace {

// The norms' per-feature vectors (weight, bias, shift, scale) reach the kernels as bare pointers:
// each must hold a value for every column of x's rows.
Status CoversRows(const Tensor& vector, const Tensor& x, const char* name) {
  const int64_t width = x.ndim > 0 ? x.shape[x.ndim - 1] : 1;
  if (vector.numel() >= width) return Status::Ok();
  return Error(Code::kInvalidArgument, "CUDA {}: {} values for rows of {}", name, vector.numel(), width);
}

}  // namespace

void CudaBackend::layer_norm(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Tensor& y) {
  impl_->Run("layer_norm", [&](Staging& staging) -> Status {
    DS_ASSIGN_OR_RETURN(const Tensor dx, staging.In(x, "layer_norm x"));
    cuda::LayerNormVectors v;
    if (weight) {
      DS_TRY(CoversRows(*weight, x, "layer_norm weight"));
      DS_ASSIGN_OR_RETURN(const Tensor t, staging.In(*weight, "layer_norm weight"));
      v.weight = t.f32();
    }
    if (bias) {
      DS_TRY(CoversRows(*bias, x, "layer_norm bias"));
      DS_ASSIGN_OR_RETURN(const Tensor t, staging.In(*bias, "layer_norm bias"));
      v.bias = t.f32();
    }
    DS_ASSIGN_OR_RETURN(const Tensor dy, staging.Out(y, "layer_norm y", /*bf16_ok=*/true));
    return cuda::LayerNorm(impl_->ctx, dx, v, eps, dy);
  });
}

void CudaBackend::layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, Tensor& y) {
  impl_->Run("layer_norm_modulate", [&](Staging& staging) -> Status {
    DS_TRY(CoversRows(shift, x, "layer_norm_modulate shift"));
    DS_TRY(CoversRows(scale, x, "layer_norm_modulate scale"));
    DS_ASSIGN_OR_RETURN(const Tensor dx, staging.In(x, "layer_norm_modulate x"));
    DS_ASSIGN_OR_RETURN(const Tensor dshift, staging.In(shift, "layer_norm_modulate shift"));
    DS_ASSIGN_OR_RETURN(const Tensor dscale, staging.In(scale, "layer_norm_modulate scale"));
    DS_ASSIGN_OR_RETURN(const Tensor dy, staging.Out(y, "layer_norm_modulate y", /*bf16_ok=*/true));
    cuda::LayerNormVectors v;
    v.scale = dscale.f32();
    v.shift = dshift.f32();
    return cuda::LayerNorm(impl_->ctx, dx, v, eps, dy);
  });
}

void CudaBackend::rms_norm(Tensor& x, const Tensor& weight, float eps) {
  impl_->Run("rms_norm", [&](Staging& staging) -> Status {
    DS_TRY(CoversRows(weight, x, "rms_norm weight"));
    DS_ASSIGN_OR_RETURN(const Tensor dw, staging.In(weight, "rms_norm weight"));
    DS_ASSIGN_OR_RETURN(const Tensor dx, staging.Out(x, "rms_norm x", /*bf16_ok=*/true));
    return cuda::RmsNorm(impl_->ctx, dx, dw.f32(), eps);
  });
}

void CudaBackend::gate_residual(Tensor& x, const Tensor& gate, const Tensor& f) {
  impl_->Run("gate_residual", [&](Staging& staging) -> Status {
    DS_ASSIGN_OR_RETURN(const Tensor dg, staging.In(gate, "gate_residual gate"));
    DS_ASSIGN_OR_RETURN(const Tensor df, staging.In(f, "gate_residual f"));
    DS_ASSIGN_OR_RETURN(const Tensor dx, staging.Out(x, "gate_residual x"));
    return cuda::GateResidual(impl_->ctx, dx, dg.f32(), df);
  });
}

void CudaBackend::linear_residual(const Tensor& a, const Tensor& w, const Tensor* bias, const Tensor* gate, Tensor& x,
                                  Tensor& scratch) {
  impl_->Run("linear_residual", [&](Staging& staging) -> Status {
    // The gate reaches cuBLASLt as a bare vector, one value per output feature (w's rows).
    const int64_t features = w.ndim == 2 ? w.shape[0] : -1;
    if (gate && (gate->dtype != DType::kF32 || !gate->contiguous() || gate->numel() != features)) {
      return Error(Code::kInvalidArgument, "CUDA linear_residual: the gate {} {} is not {} contiguous F32 values",
                   gate->shape_string(), DTypeName(gate->dtype), features);
    }
    DS_ASSIGN_OR_RETURN(const Tensor da, staging.In(a, "linear_residual a", /*bf16_ok=*/true));
    DS_ASSIGN_OR_RETURN(const Tensor dw, staging.In(w, "linear_residual w", /*bf16_ok=*/true));
    Tensor db, dg;
    if (bias) {
      DS_ASSIGN_OR_RETURN(db, staging.In(*bias, "linear_residual bias"));
    }
    if (gate) {
      DS_ASSIGN_OR_RETURN(dg, staging.In(*gate, "linear_residual gate"));
    }
    DS_ASSIGN_OR_RETURN(const Tensor dx, staging.Out(x, "linear_residual x"));
    const float* g = gate ? dg.f32() : nullptr;
    const Status fused = cuda::LinearAccumulate(impl_->ctx, da, dw, bias ? &db : nullptr, g, dx);
    if (fused.code() != Code::kUnsupported) {
      if (fused.ok()) ++impl_->residual_paths.fused;
      return fused;
    }
    ++impl_->residual_paths.fallback;
    DS_ASSIGN_OR_RETURN(const Tensor ds, staging.Out(scratch, "linear_residual scratch"));
    DS_TRY(cuda::Linear(impl_->ctx, da, dw, bias ? &db : nullptr, ds));
    return cuda::GateResidual(impl_->ctx, dx, g, ds);
  });
}

void CudaBackend::add(Tensor& x, const Tensor& f) {
  impl_->Run("add", [&](Staging& staging) -> Status {
    DS_ASSIGN_OR_RETURN(const Tensor df, staging.In(f, "add f"));
    DS_ASSIGN_OR_RETURN(const Tensor dx, staging.Out(x, "add x"));
    return cuda::GateResidual(impl_->ctx, dx, nullptr, df);
  });
}

void CudaBackend::mul(Tensor& x, const Tensor& f) {
  impl_->Run("mul", [&](Staging& staging) -> Status {
    DS_ASSIGN_OR_RETURN(const Tensor df, staging.In(f, "mul f"));
    DS_ASSIGN_OR_RETURN(const Tensor dx, staging.Out(x, "mul x"));
    return cuda::Multiply(impl_->ctx, dx, df);
  });
}

void CudaBackend::sub(Tensor& x, const Tensor& f) {
  impl_->Run("sub", [&](Staging& staging) -> Status {
    DS_ASSIGN_OR_RETURN(const Tensor df, staging.In(f, "sub f"));
    DS_ASSIGN_OR_RETURN(const Tensor dx, staging.Out(x, "sub x"));
    return cuda::Subtract(impl_->ctx, dx, df);
  });
}

void CudaBackend::abs_diff_sums(const Tensor& a, const Tensor& b, Tensor& sums) {
  impl_->Run("abs_diff_sums", [&](Staging& staging) -> Status {
    DS_ASSIGN_OR_RETURN(const Tensor da, staging.In(a, "abs_diff_sums a"));
    DS_ASSIGN_OR_RETURN(const Tensor db, staging.In(b, "abs_diff_sums b"));
    DS_ASSIGN_OR_RETURN(const Tensor dsums, staging.Out(sums, "abs_diff_sums sums"));
    return cuda::AbsDiffSums(impl_->ctx, da, db, dsums);
  });
}

void CudaBackend::softmax_relative_bias(Tensor& scores, const Tensor& bias) {
  impl_->Run("softmax_relative_bias", [&](Staging& staging) -> Status {
    DS_ASSIGN_OR_RETURN(const Tensor db, staging.In(bias, "softmax_relative_bias bias"));
    DS_ASSIGN_OR_RETURN(const Tensor ds, staging.Out(scores, "softmax_relative_bias scores"));
    return cuda::SoftmaxRelativeBias(impl_->ctx, ds, db);
  });
}

void CudaBackend::gelu_tanh(Tensor& x) {
  impl_->Run("gelu_tanh", [&](Staging& staging) -> Status {
    DS_ASSIGN_OR_RETURN(const Tensor dx, staging.Out(x, "gelu_tanh x"));
    return cuda::Activate(impl_->ctx, dx, cuda::Activation::kGeluTanh);
  });
}

void CudaBackend::silu(Tensor& x) {
  impl_->Run("silu", [&](Staging& staging) -> Status {
    DS_ASSIGN_OR_RETURN(const Tensor dx, staging.Out(x, "silu x"));
    return cuda::Activate(impl_->ctx, dx, cuda::Activation::kSilu);
  });
}

void CudaBackend::rope(Tensor& x, const Tensor& cos, const Tensor& sin) {
  impl_->Run("rope", [&](Staging& staging) -> Status {
    DS_ASSIGN_OR_RETURN(const Tensor dcos, staging.In(cos, "rope cos"));
    DS_ASSIGN_OR_RETURN(const Tensor dsin, staging.In(sin, "rope sin"));
    DS_ASSIGN_OR_RETURN(const Tensor dx, staging.Out(x, "rope x"));
    return cuda::Rope(impl_->ctx, dx, dcos, dsin);
  });
}

void CudaBackend::rms_norm_rope(Tensor& x, const Tensor& weight, float eps, const Tensor& cos, const Tensor& sin,
                                int64_t heads) {
  impl_->Run("rms_norm_rope", [&](Staging& staging) -> Status {
    DS_TRY(CoversRows(weight, x, "rms_norm_rope weight"));
    DS_ASSIGN_OR_RETURN(const Tensor dw, staging.In(weight, "rms_norm_rope weight"));
    DS_ASSIGN_OR_RETURN(const Tensor dcos, staging.In(cos, "rms_norm_rope cos"));
    DS_ASSIGN_OR_RETURN(const Tensor dsin, staging.In(sin, "rms_norm_rope sin"));
    DS_ASSIGN_OR_RETURN(const Tensor dx, staging.Out(x, "rms_norm_rope x", /*bf16_ok=*/true));
    return cuda::RmsNormRope(impl_->ctx, dx, dw.f32(), eps, dcos, dsin, heads);
  });
}

void CudaBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& o) {
  impl_->Run("attention", [&](Staging& staging) -> Status {
    DS_ASSIGN_OR_RETURN(const Tensor dq, staging.In(q, "attention q", /*bf16_ok=*/true));
    DS_ASSIGN_OR_RETURN(const Tensor dk, staging.In(k, "attention k", /*bf16_ok=*/true));
    DS_ASSIGN_OR_RETURN(const Tensor dv, staging.In(v, "attention v", /*bf16_ok=*/true));
    DS_ASSIGN_OR_RETURN(const Tensor dout, staging.Out(o, "attention o", /*bf16_ok=*/true));
    const auto kernel = impl_->options.attention == CudaOptions::Attention::kNaiveF32
                            ? cuda::AttentionKernel::kNaiveF32
                            : cuda::AttentionKernel::kFlashBf16;
    if (kernel == cuda::AttentionKernel::kNaiveF32) {
      return cuda::Attention(impl_->ctx, dq, dk, dv, scale, dout, kernel);
    }
    const cuda::flash::Choice choice =
        impl_->attention_tuner.ChoiceFor(impl_->ctx, dq, dk, dv, dout, scale, impl_->flash);
    return cuda::Attention(impl_->ctx, dq, dk, dv, scale, dout, kernel, choice);
  });
}

void CudaBackend::conv3x3(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y) {
  impl_->Run("conv3x3", [&](Staging& staging) -> Status {
    DS_ASSIGN_OR_RETURN(const Tensor dx, staging.In(x, "conv3x3 x"));
    DS_ASSIGN_OR_RETURN(const Tensor dw, staging.In(w, "conv3x3 w"));
    DS_ASSIGN_OR_RETURN(const Tensor db, staging.In(bias, "conv3x3 bias"));
    DS_ASSIGN_OR_RETURN(const Tensor dy, staging.Out(y, "conv3x3 y"));
    return cuda::Conv3x3(impl_->ctx, dx, dw, db.f32(), dy);
  });
}

void CudaBackend::upsample_nearest2x(const Tensor& x, Tensor& y) {
  impl_->Run("upsample_nearest2x", [&](Staging& staging) -> Status {
    DS_ASSIGN_OR_RETURN(const Tensor dx, staging.In(x, "upsample x"));
    DS_ASSIGN_OR_RETURN(const Tensor dy, staging.Out(y, "upsample y"));
    return cuda::UpsampleNearest2x(impl_->ctx, dx, dy);
  });
}

namespace {

cuda::PatchGeometry Geometry(const Tensor& latent, std::array<int, 3> patch, bool channels_last) {
  cuda::PatchGeometry g;
  if (latent.ndim == 4) {
    g.channels = static_cast<int>(latent.shape[0]);
    g.frames = static_cast<int>(latent.shape[1]);
    g.height = static_cast<int>(latent.shape[2]);
    g.width = static_cast<int>(latent.shape[3]);
  }
  g.pt = patch[0];
  g.ph = patch[1];
  g.pw = patch[2];
  g.channels_last = channels_last;
  return g;
}

}  // namespace

void CudaBackend::patchify(const Tensor& latent, std::array<int, 3> patch, Tensor& tokens) {
  impl_->Run("patchify", [&](Staging& staging) -> Status {
    DS_ASSIGN_OR_RETURN(const Tensor dl, staging.In(latent, "patchify latent"));
    DS_ASSIGN_OR_RETURN(const Tensor dt, staging.Out(tokens, "patchify tokens"));
    return cuda::Patchify(impl_->ctx, dl, Geometry(latent, patch, false), dt);
  });
}

void CudaBackend::unpatchify(const Tensor& tokens, std::array<int, 3> patch, bool channels_last, Tensor& latent) {
  impl_->Run("unpatchify", [&](Staging& staging) -> Status {
    DS_ASSIGN_OR_RETURN(const Tensor dt, staging.In(tokens, "unpatchify tokens"));
    DS_ASSIGN_OR_RETURN(const Tensor dl, staging.Out(latent, "unpatchify latent"));
    return cuda::Unpatchify(impl_->ctx, dt, Geometry(latent, patch, channels_last), dl);
  });
}

void CudaBackend::planar_to_pixels(const Tensor& planar, FrameFormat format, Tensor& frame) {
  impl_->Run("planar_to_pixels", [&](Staging& staging) -> Status {
    // Staging takes F32 (and BF16) views only: the bytes are written where they are.
    if (frame.device != Device::kCuda) {
      return Error(Code::kInvalidArgument, "CUDA planar_to_pixels: the frame must be in device memory");
    }
    DS_ASSIGN_OR_RETURN(const Tensor dp, staging.In(planar, "planar_to_pixels planar"));
    return cuda::PlanarToPixels(impl_->ctx, dp, format, frame);
  });
}

void CudaBackend::transpose(const Tensor& x, Tensor& y) {
  impl_->Run("transpose", [&](Staging& staging) -> Status {
    DS_ASSIGN_OR_RETURN(const Tensor dx, staging.In(x, "transpose x"));
    DS_ASSIGN_OR_RETURN(const Tensor dy, staging.Out(y, "transpose y"));
    return cuda::Transpose(impl_->ctx, dx, dy);
  });
}

void CudaBackend::copy(const Tensor& src, Tensor& dst) {
  impl_->Run("copy", [&](Staging& staging) -> Status {
    DS_ASSIGN_OR_RETURN(const Tensor ds, staging.In(src, "copy src"));
    DS_ASSIGN_OR_RETURN(const Tensor dd, staging.Out(dst, "copy dst"));
    if (!ds.contiguous() || !dd.contiguous() || ds.nbytes() != dd.nbytes()) {
      return Error(Code::kInvalidArgument, "CUDA copy: needs contiguous tensors of equal size ({} and {})",
                   ds.shape_string(), dd.shape_string());
    }
    DS_CUDA_TRY(cudaMemcpyAsync(dd.data, ds.data, ds.nbytes(), cudaMemcpyDeviceToDevice, impl_->ctx.stream));
    return Status::Ok();
  });
}

void CudaBackend::widen(const Tensor& src, Tensor& dst, float scale) {
  impl_->Run("widen", [&](Staging& staging) -> Status {
    if (!src.contiguous() || !dst.contiguous() || src.numel() != dst.numel()) {
      return Error(Code::kInvalidArgument, "CUDA widen: needs contiguous tensors of equal length ({} and {})",
                   src.shape_string(), dst.shape_string());
    }
    DS_ASSIGN_OR_RETURN(const Tensor dd, staging.Out(dst, "widen dst", /*bf16_ok=*/true));
    if (src.dtype == DType::kF32) {  // host float32 is staged like any op's input
      DS_ASSIGN_OR_RETURN(const Tensor ds, staging.In(src, "widen src"));
      if (scale != 1.0f || dd.dtype != DType::kF32) return cuda::Widen(impl_->ctx, ds, dd, scale);
      DS_CUDA_TRY(cudaMemcpyAsync(dd.data, ds.data, ds.nbytes(), cudaMemcpyDeviceToDevice, impl_->ctx.stream));
      return Status::Ok();
    }
    if (src.device != Device::kCuda) {
      return Error(Code::kInvalidArgument, "CUDA widen: a {} source must be in device memory", DTypeName(src.dtype));
    }
    return cuda::Widen(impl_->ctx, src, dd, scale);
  });
}

namespace {

struct CudaGraphRecording final : OpRecording {
  uint64_t backend = 0;     // Backend::id() of the backend that recorded it
  uint64_t generation = 0;  // its recording_generation then
  int runs = 0;
  bool uncapturable = false;  // captures failed twice: the ops are issued every time
  int failed_captures = 0;
  // The arena in use when the graph was captured: the ops' scratch, whose addresses the graph
  // keeps, lies above it, so the graph may only run while nothing above it is allocated.
  size_t arena_mark = 0;
  cudaGraphExec_t exec = nullptr;

  ~CudaGraphRecording() override {
    if (exec) cudaGraphExecDestroy(exec);
  }
  bool replays() const override { return exec != nullptr; }
};

// Ends a capture however the ops leave it (an error, an exception): the stream must not stay in
// capture mode, where later ops would be recorded instead of run.
class Capture {
 public:
  Capture(cudaStream_t stream, bool& capturing) : stream_(stream), capturing_(capturing) {}
  ~Capture() {
    if (!capturing_) return;
    cudaGraph_t graph = nullptr;
    End(&graph);
    if (graph) cudaGraphDestroy(graph);
  }
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;

  cudaError_t Begin() {
    const cudaError_t e = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal);
    capturing_ = e == cudaSuccess;
    return e;
  }
  cudaError_t End(cudaGraph_t* graph) {
    capturing_ = false;
    const cudaError_t e = cudaStreamEndCapture(stream_, graph);
    cudaGetLastError();  // an invalidated capture's error is not sticky: the stream stays usable
    return e;
  }

 private:
  cudaStream_t stream_;
  bool& capturing_;
};

}  // namespace

Status CudaBackend::RunRecorded(std::unique_ptr<OpRecording>& recording, const std::function<Status()>& recorded) {
  // The ops, marked as the repeated ones while they are issued (Autotune::kRecorded).
  auto ops = [&] {
    struct Marked {
      bool& flag;
      const bool outer = flag;
      explicit Marked(bool& f) : flag(f) { flag = true; }
      ~Marked() { flag = outer; }
    } marked(impl_->ctx.issuing_recording);
    return recorded();
  };
  if (!impl_->options.graphs) return ops();
  auto* rec = dynamic_cast<CudaGraphRecording*>(recording.get());
  if (rec == nullptr || rec->backend != id() || rec->generation != impl_->recording_generation) {
    recording = std::make_unique<CudaGraphRecording>();
    rec = static_cast<CudaGraphRecording*>(recording.get());
    rec->backend = id();
    rec->generation = impl_->recording_generation;
  }
  // After a failure, ops are skipped until Synchronize() reports it: nothing to capture or launch.
  if (rec->uncapturable || rec->runs++ == 0 || !impl_->error.ok()) return ops();
  DS_CUDA_TRY(cudaSetDevice(impl_->options.device));
  if (rec->exec && impl_->arena.used() > rec->arena_mark) {
    cudaGraphExecDestroy(rec->exec);  // memory the graph's scratch uses is taken: capture again
    rec->exec = nullptr;
  }
  if (!rec->exec) {
    rec->arena_mark = impl_->arena.used();
    Status captured = Status::Ok();
    {
      Capture capture(impl_->ctx.stream, impl_->capturing);
      if (const cudaError_t began = capture.Begin(); began != cudaSuccess) {
        cudaGetLastError();
        rec->uncapturable = true;  // as when a capture fails: the ops still run, one by one
        Log(LogLevel::kWarning, "cuda: a CUDA graph capture could not begin ({}); issuing the ops one by one",
            cudaGetErrorString(began));
        return ops();
      }
      const Status issued = ops();
      cudaGraph_t graph = nullptr;
      const cudaError_t ended = capture.End(&graph);
      captured = !issued.ok() ? issued : impl_->error;
      if (captured.ok() && ended != cudaSuccess) {
        captured = cuda::CheckCuda(ended, "cudaStreamEndCapture", __FILE__, __LINE__);
      }
      if (captured.ok()) {
        captured =
            cuda::CheckCuda(cudaGraphInstantiate(&rec->exec, graph, 0), "cudaGraphInstantiate", __FILE__, __LINE__);
      }
      if (graph) cudaGraphDestroy(graph);
    }
    if (!captured.ok()) {
      // Issued op by op, a real failure (memory, a bad shape) comes back; one only a capture has
      // (an op that waits for the host or copies host memory) does not, and then, after a second
      // such failure, the ops are never captured again. One failure alone may be a one-off: work
      // a run stopped early by an error had not done (a first allocation, a plan) then happens
      // during the next run's capture.
      rec->exec = nullptr;
      impl_->error = Status::Ok();
      const Status issued = ops();
      if (issued.ok() && impl_->error.ok() && ++rec->failed_captures >= 2) {
        rec->uncapturable = true;
        Log(LogLevel::kWarning, "cuda: the ops could not be recorded as a CUDA graph ({}); issuing them one by one",
            captured.message());
      }
      return issued;
    }
  }
  DS_CUDA_TRY(cudaGraphLaunch(rec->exec, impl_->ctx.stream));
  return Status::Ok();
}

void CudaBackend::set_graphs(bool on) { impl_->options.graphs = on; }

Status CudaBackend::set_gemm_autotune(cuda::Autotune mode) {
  DS_CUDA_TRY(cudaSetDevice(impl_->options.device));
  // Plans may still be in use by queued GEMMs' launches: cuBLASLt reads a descriptor when the call
  // is made, so once the stream has drained they can go.
  DS_CUDA_TRY(cudaStreamSynchronize(impl_->ctx.stream));
  impl_->options.gemm_autotune = mode;
  impl_->ctx.gemm_autotune = mode;
  impl_->plans.Clear();
  ++impl_->recording_generation;  // a captured graph launches the algorithms it was captured with
  return Status::Ok();
}

CudaBackend::LinearResidualPaths CudaBackend::linear_residual_paths() const { return impl_->residual_paths; }

size_t CudaBackend::gemm_plans_timed() const { return impl_->plans.Count(cuda::GemmPlans::Choice::kTimed); }
size_t CudaBackend::gemm_plans_cached() const { return impl_->plans.Count(cuda::GemmPlans::Choice::kCached); }

Status CudaBackend::set_attention_autotune(cuda::Autotune mode) {
  impl_->options.attention_autotune = mode;
  impl_->ctx.attention_autotune = mode;
  impl_->attention_tuner.Clear();
  ++impl_->recording_generation;  // a captured graph launches the kernels it was captured with
  return Status::Ok();
}

const std::map<std::string, cuda::AttentionChoice>& CudaBackend::attention_choices() const {
  return impl_->attention_tuner.chosen();
}

Status CudaBackend::set_flash_config(const std::string& name) {
  DS_CUDA_TRY(cudaSetDevice(impl_->options.device));
  DS_ASSIGN_OR_RETURN(impl_->flash, Impl::RunnableChoice(cuda::flash::Choice::FromOption(name)));
  impl_->options.flash_config = name;
  impl_->attention_tuner.Clear();
  ++impl_->recording_generation;  // a captured graph launches the kernels it was captured with
  return Status::Ok();
}

Result<BackendBuffer> CudaBackend::NewBuffer(DType dtype, std::initializer_list<int64_t> shape) {
  Tensor t = Tensor::View(nullptr, dtype, shape, Device::kCuda);
  DS_CUDA_TRY(cudaSetDevice(impl_->options.device));
  void* p = nullptr;
  if (const cudaError_t e = cudaMalloc(&p, std::max<size_t>(t.nbytes(), 256)); e != cudaSuccess) {
    cudaGetLastError();
    return Error(Code::kOutOfMemory, "CUDA: cudaMalloc of {} MiB for a {} {} tensor on {}: {}", t.nbytes() >> 20,
                 DTypeName(dtype), t.shape_string(), impl_->description, cudaGetErrorString(e));
  }
  t.data = p;
  return BackendBuffer{std::shared_ptr<void>(p, [](void* q) { cudaFree(q); }), t};
}

Status CudaBackend::CopyToBackend(const Tensor& host, const Tensor& dst) { return Upload(host, dst); }
Status CudaBackend::CopyToHost(const Tensor& src, const Tensor& host) { return Download(src, host); }

// 90 % of what the driver reports free: the rest for cuBLASLt workspaces and fragmentation.
size_t CudaBackend::WorkingSetBudget() const {
  size_t free_bytes = 0, total = 0;
  if (cudaSetDevice(impl_->options.device) != cudaSuccess || cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return free_bytes / 10 * 9;
}

Status CudaBackend::Zero(const Tensor& dst) {
  if (dst.device != Device::kCuda || !dst.contiguous()) {
    return Error(Code::kInvalidArgument, "CUDA zero: needs a contiguous device tensor ({} {})", DTypeName(dst.dtype),
                 dst.shape_string());
  }
  DS_CUDA_TRY(cudaSetDevice(impl_->options.device));
  DS_CUDA_TRY(cudaMemsetAsync(dst.data, 0, dst.nbytes(), impl_->ctx.stream));
  return Status::Ok();
}

Result<Tensor> CudaBackend::Alloc(DType dtype, std::initializer_list<int64_t> shape) {
  Tensor t = Tensor::View(nullptr, dtype, shape, Device::kCuda);
  DS_ASSIGN_OR_RETURN(t.data, impl_->arena.Allocate(t.nbytes(), "tensor"));
  return t;
}

namespace {

Status CheckCopy(const Tensor& host, const Tensor& device, const char* what) {
  if (host.device != Device::kCpu || device.device != Device::kCuda || !host.contiguous() || !device.contiguous() ||
      host.nbytes() != device.nbytes()) {
    return Error(Code::kInvalidArgument,
                 "CUDA {}: needs a contiguous host tensor and a contiguous device tensor of equal size (host {} {}, "
                 "device {} {})",
                 what, DTypeName(host.dtype), host.shape_string(), DTypeName(device.dtype), device.shape_string());
  }
  return Status::Ok();
}

}  // namespace

Status CudaBackend::Upload(const Tensor& host, const Tensor& device) {
  DS_TRY(CheckCopy(host, device, "upload"));
  DS_CUDA_TRY(cudaSetDevice(impl_->options.device));
  DS_CUDA_TRY(cudaMemcpyAsync(device.data, host.data, host.nbytes(), cudaMemcpyHostToDevice, impl_->ctx.stream));
  return Status::Ok();
}

Status CudaBackend::Download(const Tensor& device, const Tensor& host) {
  DS_TRY(CheckCopy(host, device, "download"));
  DS_CUDA_TRY(cudaSetDevice(impl_->options.device));
  DS_CUDA_TRY(cudaMemcpyAsync(host.data, device.data, host.nbytes(), cudaMemcpyDeviceToHost, impl_->ctx.stream));
  return Synchronize();
}

Status CudaBackend::Synchronize() {
  DS_CUDA_TRY(cudaSetDevice(impl_->options.device));
  impl_->Record("synchronize",
                cuda::CheckCuda(cudaStreamSynchronize(impl_->ctx.stream), "cudaStreamSynchronize", __FILE__, __LINE__));
  Status error = impl_->error;
  impl_->error = Status::Ok();
  return error;
}

void CudaBackend::ResetArena() { impl_->arena.Release(impl_->arena_floor); }
size_t CudaBackend::arena_used() const { return impl_->arena.used(); }
size_t CudaBackend::arena_peak() const { return impl_->arena.peak(); }
size_t CudaBackend::arena_capacity() const { return impl_->arena.capacity(); }
const std::string& CudaBackend::description() const { return impl_->description; }

}  // namespace ds
