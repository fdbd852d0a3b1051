#include "core/first_block_cache.h"

#include <string>

#include "core/log.h"

namespace ds {

Status FirstBlockCache::Prepare(Backend& be, int64_t rows, int64_t cols) {
  if (prepared() && backend_ == be.id() && input_.tensor.shape[0] == rows && input_.tensor.shape[1] == cols) {
    return Status::Ok();
  }
  *this = FirstBlockCache{};
  auto alloc = [&](BackendBuffer& buf) -> Status {
    DS_ASSIGN_OR_RETURN(buf, be.NewBuffer(DType::kF32, {rows, cols}));
    // A slot without a full forward is never reused, but its sums are still computed: from zeros,
    // not from whatever the memory held (a NaN there would be harmless, but noisy under a sanitizer).
    return be.Zero(buf.tensor);
  };
  DS_TRY(alloc(input_));
  for (int s = 0; s < kSlots; ++s) {
    DS_TRY(alloc(first_[static_cast<size_t>(s)]));
    DS_TRY(alloc(rest_[static_cast<size_t>(s)]));
  }
  DS_ASSIGN_OR_RETURN(sums_, be.NewBuffer(DType::kF32, {2}));  // last: prepared() only once all exist
  backend_ = be.id();
  Reset();
  return Status::Ok();
}

Status FirstBlockCache::CheckSlot(int slot) {
  if (slot >= 0 && slot < kSlots) return Status::Ok();
  return Error(Code::kInvalidArgument, "first-block cache slot {} is not 0 or 1", slot);
}

void FirstBlockCache::Reset() {
  has_full_.fill(false);
  stats_.fill(Stats{});
}

void FirstBlockCache::BeforeFirstBlock(Backend& be, const Tensor& x) { be.copy(x, input_.tensor); }

void FirstBlockCache::AfterFirstBlock(Backend& be, const Tensor& x, int slot) {
  be.sub(input_.tensor, x);
  be.abs_diff_sums(input_.tensor, first_[static_cast<size_t>(slot)].tensor, sums_.tensor);
}

void FirstBlockCache::BeforeRest(Backend& be, const Tensor& x, int slot) {
  be.copy(input_.tensor, first_[static_cast<size_t>(slot)].tensor);
  be.copy(x, rest_[static_cast<size_t>(slot)].tensor);
}

void FirstBlockCache::AfterRest(Backend& be, const Tensor& x, int slot) {
  be.sub(rest_[static_cast<size_t>(slot)].tensor, x);
}

void FirstBlockCache::AddRest(Backend& be, Tensor& x, int slot) { be.sub(x, rest_[static_cast<size_t>(slot)].tensor); }

Result<bool> FirstBlockCache::Reuses(Backend& be, int slot, float threshold) {
  Stats& st = stats_[static_cast<size_t>(slot)];
  ++st.forwards;
  if (!has_full_[static_cast<size_t>(slot)]) return false;
  float sums[2] = {0, 0};
  DS_TRY(be.CopyToHost(sums_.tensor, Tensor::View(sums, DType::kF32, {2})));
  // A first block that added nothing at the reference forward gives no scale to compare with.
  if (!(sums[1] > 0)) return false;
  st.last_change = static_cast<double>(sums[0]) / sums[1];
  const bool reuse = st.last_change < threshold;
  if (reuse) ++st.reused;
  return reuse;
}

void LogBlockCacheUse(const std::array<FirstBlockCache::Stats, FirstBlockCache::kSlots>& passes, int clip,
                      std::string_view model) {
  int forwards = 0, reused = 0, used = 0;
  for (const FirstBlockCache::Stats& p : passes) {
    forwards += p.forwards;
    reused += p.reused;
    used += p.forwards > 0 ? 1 : 0;
  }
  std::string per_pass;  // slot 0 the conditional pass, slot 1 the unconditional one, where both ran
  if (used == 2) {
    per_pass = fmt::format(" (conditional {} of {}, unconditional {} of {})", passes[0].reused, passes[0].forwards,
                           passes[1].reused, passes[1].forwards);
  }
  Log(LogLevel::kInfo, "clip {}{}{}: the first-block cache skipped the later blocks in {} of {} forwards{}", clip,
      model.empty() ? "" : ", ", model, reused, forwards, per_pass);
}

}  // namespace ds
