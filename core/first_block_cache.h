// The first-block cache (ParaAttention's "first block cache", diffusers' FirstBlockCacheConfig),
// which skips most of a transformer's blocks in denoising steps where they would add about what
// they added before.
//
// From one step to the next the transformer's input moves a little, and so does what its blocks
// add to it. Each forward runs the first block and compares the residual it added with the one it
// added at the slot's last full forward: when mean|Δ| / mean|r| is under the threshold, the other
// blocks are skipped and the residual they added at that forward is added instead.
//
// The comparison is with the last *full* forward, not the last forward: the change then grows over
// a run of reused steps, which ends once the first block has moved far enough from where the rest
// was last computed (a comparison with the previous step could reuse a slowly drifting rest forever).
//
// A slot is one sequence of forwards that continue each other: the conditional passes of a clip's
// steps are one, the unconditional ones another, each compared only with its own.
//
// Residuals are kept negated (input − output), so that one in-place op, Backend::sub, both takes a
// residual and adds it back.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "core/backend.h"
#include "core/status.h"

namespace ds {

// How one forward takes part: threshold 0 runs every block (no cache).
struct BlockCacheUse {
  float threshold = 0;
  int slot = 0;  // < FirstBlockCache::kSlots
};

class FirstBlockCache {
 public:
  static constexpr int kSlots = 2;

  struct Stats {
    int forwards = 0;         // since Reset
    int reused = 0;           // of them, forwards that skipped the rest
    double last_change = -1;  // mean|Δ| / mean|r| of the last forward that had a full one to compare with
  };

  // Buffers for residual streams of rows × cols floats in `be`'s memory: five of them (the first
  // block's input, and per slot a first-block residual and a rest residual; 1 GB for the 1.3B at
  // 480p, 3.4 GB for the 14B) and the sums. Allocated by the first call, and again (everything
  // forgotten) by a call with another backend or shape; a caller that records ops over them keeps
  // one cache per backend and shape.
  Status Prepare(Backend& be, int64_t rows, int64_t cols);
  bool prepared() const { return sums_.tensor.data != nullptr; }

  // Forgets every slot's full forward and statistics (a new clip: fresh noise).
  void Reset();

  // The ops, on backend memory only: each may be part of a sequence the backend records and
  // replays (Backend::RunRecorded), so none takes a decision or touches host state.
  // Before the first block: keeps its input x.
  void BeforeFirstBlock(Backend& be, const Tensor& x);
  // After it: its residual, and the sums that compare it with the slot's last full forward.
  void AfterFirstBlock(Backend& be, const Tensor& x, int slot);
  // When the rest runs: keeps the first block's residual and the rest's input...
  void BeforeRest(Backend& be, const Tensor& x, int slot);
  // ...and after it, the residual the rest added.
  void AfterRest(Backend& be, const Tensor& x, int slot);
  // When the rest is skipped: x += the residual it added at the slot's last full forward.
  void AddRest(Backend& be, Tensor& x, int slot);

  // On the host, after AfterFirstBlock's ops (waits for them): whether this forward skips the rest,
  // that is whether the slot has a full forward and the change since it is under `threshold`.
  Result<bool> Reuses(Backend& be, int slot, float threshold);
  // After a forward that ran the rest (its AfterRest issued): the slot's new reference.
  void Computed(int slot) { has_full_[static_cast<size_t>(slot)] = true; }

  // Zeros for a slot past the last.
  Stats stats(int slot) const { return CheckSlot(slot).ok() ? stats_[static_cast<size_t>(slot)] : Stats{}; }

  // kInvalidArgument naming the slot unless 0 ≤ slot < kSlots.
  static Status CheckSlot(int slot);

 private:
  BackendBuffer input_;                      // the first block's input, then (input − output): its negated residual
  std::array<BackendBuffer, kSlots> first_;  // per slot: the negated first-block residual of its last full forward
  std::array<BackendBuffer, kSlots> rest_;   // per slot: the rest's input, then its negated residual
  BackendBuffer sums_;                       // Σ|Δ|, Σ|r| (Backend::abs_diff_sums)
  uint64_t backend_ = 0;                     // Backend::id() of the buffers' backend
  std::array<bool, kSlots> has_full_ = {false, false};
  std::array<Stats, kSlots> stats_;
};

// Logs (info) in how many forwards of a clip the rest was skipped, e.g. "clip 0: the first-block
// cache skipped the later blocks in 31 of 50 forwards (conditional 16 of 25, unconditional 15 of 25)";
// slot 0 is the conditional pass and slot 1 the unconditional one where both are used.
// `model` names the transformer where a pipeline has several ("" otherwise).
void LogBlockCacheUse(const std::array<FirstBlockCache::Stats, FirstBlockCache::kSlots>& passes, int clip,
                      std::string_view model = "");

}  // namespace ds
