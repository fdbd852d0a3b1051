// Which flash attention configuration runs at each attention shape, chosen by timing on the
// running card (autotune.h). The configurations of a head dim trade differently with the shape: at
// 32 760 keys a block runs 256 key steps and the loop is all that counts, at the cross-attention's
// 512 keys it runs 4 and its prologue and epilogue weigh; a 176-key tile may suit one and not the
// other, and an H200 is not an H100. So, like the GEMMs' algorithms, the first call of a shape
// inside a model's recorded forward times the configurations of the default's kind and keeps the
// fastest (the default unless another is faster by more than kTuningMargin), for the rest of the
// process and, through the tuning cache, for later ones: the same kernel, the same bits. A
// configuration the user named (CudaOptions::flash_config, DS_FLASH_CONFIG) is never replaced.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/cuda/attention/attention_choice.h"
#include "kernels/cuda/attention/flash_attention.cuh"
#include "kernels/cuda/context.h"

namespace ds::cuda {

// The configurations of `head_dim` the tuner times on the current device with `default_config` as
// the default (AttentionCandidates over flash::Configs: those that can run here and, unless
// FlashUnverifiedAllowed(), have run on a GPU before), the default first.
std::vector<int> TimedCandidates(int head_dim, int default_config);

// The choices of one backend (CudaBackend owns one): per shape, made once.
class AttentionTuner {
 public:
  // The configuration choice to run q/k/v/o (device tensors, as cuda::Attention takes them) with:
  // `base` where it names this head dim's configuration or where nothing is to be timed (mode,
  // capture, the shape's first call outside a recording, the naive kernel's shapes), else this
  // shape's choice, made now at its first call (o then holds the candidates' output already; the
  // caller's run writes the same again).
  flash::Choice ChoiceFor(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                          float scale, const flash::Choice& base);

  // By shape key (AttentionShapeKey), for benchmarks and logs.
  const std::map<std::string, AttentionChoice>& chosen() const { return chosen_; }
  void Clear() { chosen_.clear(); }

 private:
  std::map<std::string, AttentionChoice> chosen_;
};

}  // namespace ds::cuda
