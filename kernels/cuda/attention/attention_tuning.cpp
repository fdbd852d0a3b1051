#include "kernels/cuda/attention/attention_tuning.h"

#include <vector>

#include "core/log.h"
#include "kernels/cuda/attention/attention.h"
#include "kernels/cuda/launch_timer.h"

namespace ds::cuda {
namespace {

// Whether two views touch a common byte.
bool Overlap(const Tensor& a, const Tensor& b) {
  const auto* a0 = static_cast<const char*>(a.data);
  const auto* b0 = static_cast<const char*>(b.data);
  return a0 < b0 + SpanBytes(b) && b0 < a0 + SpanBytes(a);
}

// Timing writes o once per launch and reads q/k/v each time: with o over an input, the second
// launch would read the first one's output.
bool OutputApart(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o) {
  return !Overlap(o, q) && !Overlap(o, k) && !Overlap(o, v);
}

}  // namespace

std::vector<int> TimedCandidates(int head_dim, int default_config) {
  const std::vector<flash::ConfigInfo> configs = flash::Configs(head_dim);
  const bool unverified = FlashUnverifiedAllowed();
  std::vector<FlashFamily> families;
  std::vector<bool> runnable;
  for (size_t i = 0; i < configs.size(); ++i) {
    families.push_back(FlashFamilyOf(configs[i].wgmma, configs[i].tma));
    runnable.push_back((unverified || FlashRanOnAGpu(configs[i].name)) &&
                       flash::Runnable(head_dim, static_cast<int>(i)).ok());
  }
  return AttentionCandidates(families, runnable, default_config);
}

flash::Choice AttentionTuner::ChoiceFor(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                                        const Tensor& o, float scale, const flash::Choice& base) {
  const int head_dim = static_cast<int>(q.shape[2]);
  if (!AttentionRunsFlash(q, k, v, o) || base.named(head_dim)) return base;
  const std::string shape =
      AttentionShapeKey(head_dim, q.shape[0], k.shape[0], q.shape[1], q.dtype, k.dtype, v.dtype, o.dtype);
  if (const auto it = chosen_.find(shape); it != chosen_.end()) return base.With(head_dim, it->second.config);

  const bool tune = ctx.attention_autotune == Autotune::kAll ||
                    (ctx.attention_autotune == Autotune::kRecorded && ctx.issuing_recording);
  if (!tune) return base;  // a later call of the shape, inside a recording, may time it
  const int default_config = base.index(head_dim);
  const std::vector<flash::ConfigInfo> configs = flash::Configs(head_dim);
  const std::vector<int> candidates = TimedCandidates(head_dim, default_config);
  if (candidates.empty()) return base;
  const std::string& default_name = configs[static_cast<size_t>(default_config)].name;
  using How = AttentionChoice::How;
  auto keep = [&](int config, How how) {
    AttentionChoice c;
    c.config = config;
    c.name = configs[static_cast<size_t>(config)].name;
    c.how = how;
    return &(chosen_[shape] = c);
  };
  // Keyed by the candidates too (the default first): where the environment offers others
  // (DS_FLASH_NO_WGMMA, DS_FLASH_SKIP, DS_FLASH_UNVERIFIED), their choice is another entry, not one
  // that overwrites this one each time the environment changes.
  std::string among;
  for (int candidate : candidates) among += (among.empty() ? "" : "+") + configs[static_cast<size_t>(candidate)].name;
  const std::string cache_key = TuningCache::MakeKey({ctx.device_key, "attention", shape, among});
  auto record = [&](const std::string& name) {
    if (ctx.tuning_cache == nullptr) return;
    if (const Status kept = ctx.tuning_cache->Insert(cache_key, name); !kept.ok()) {
      Log(LogLevel::kDebug, "{}", kept.message());
    }
  };
  if (candidates.size() < 2) return base.With(head_dim, keep(default_config, How::kUntimed)->config);

  // A choice this machine made before, if it is still a candidate here (the same bits as then).
  if (ctx.tuning_cache != nullptr) {
    if (const std::optional<std::string> name = ctx.tuning_cache->Find(cache_key)) {
      const int config = flash::FindConfig(head_dim, *name);
      for (int candidate : candidates) {
        if (candidate == config) return base.With(head_dim, keep(config, How::kCached)->config);
      }
      Log(LogLevel::kDebug, "tuning cache: attention {} names {}, which is not a candidate here; timing again", shape,
          *name);
    }
  }
  // Timing writes o at every launch and reads q/k/v each time: with o over an input, nothing can be
  // timed, and the default runs.
  if (!OutputApart(q, k, v, o)) return base.With(head_dim, keep(default_config, How::kUntimed)->config);

  // Not during a capture (a captured graph's choices were made by its first, eager run), nor with
  // an error pending.
  if (!TimingPossible(ctx.stream)) return base;
  LaunchTimer timer;
  if (!timer.ok()) return base;
  std::vector<double> ms;
  for (int candidate : candidates) {
    const flash::Choice choice = base.With(head_dim, candidate);
    ms.push_back(timer.MeanMs(ctx.stream, AttentionTuning::kRuns, [&] {
      if (Attention(ctx, q, k, v, scale, o, AttentionKernel::kFlashBf16, choice).ok() &&
          cudaPeekAtLastError() == cudaSuccess) {
        return true;
      }
      cudaGetLastError();  // a candidate that could not launch leaves no error to the next kernel
      return false;
    }));
    // A call of microseconds: the choice would follow noise. The default is kept, and recorded so
    // that a later process near the threshold does not time it and choose otherwise.
    if (ms.size() == 1 && ms[0] > 0.0 && ms[0] < AttentionTuning::kMinMs) {
      record(default_name);
      return base.With(head_dim, keep(default_config, How::kUntimed)->config);
    }
  }
  // A candidate that faulted left the context broken: nothing measured since is worth keeping, and
  // the error is the caller's op's to report.
  if (cudaPeekAtLastError() != cudaSuccess) return base;
  const int best = ChooseFastest(ms);
  if (best < 0) return base;  // none ran: the caller's own call reports why
  AttentionChoice* c = keep(candidates[static_cast<size_t>(best)], How::kTimed);
  c->default_ms = ms[0];
  c->chosen_ms = ms[static_cast<size_t>(best)];
  Log(LogLevel::kDebug, "attention {}: {} timed {:.3f} ms, the default {} {:.3f} ms", shape, c->name, c->chosen_ms,
      default_name, c->default_ms);
  record(c->name);
  return base.With(head_dim, c->config);
}

}  // namespace ds::cuda
