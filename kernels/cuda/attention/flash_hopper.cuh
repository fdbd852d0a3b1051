// The Hopper flash attention kernels (wgmma, sm_90a; cp.async-fed and TMA-fed warp-specialised):
// their configurations as entries of the flash dispatch in flash_attention.cu. The index layer is
// hopper_layout.h.
#pragma once

#include <vector>

#include "kernels/cuda/attention/flash_attention.cuh"

namespace ds::cuda::flash::hopper {

// The wgmma configurations built for a head dim (hopper::Candidates), empty for the others.
const std::vector<detail::Entry>& Entries(int head_dim);
// Which of Entries(head_dim) is the head dim's default where wgmma runs (hopper::Candidates::
// kDefault), -1 for none.
int DefaultEntry(int head_dim);
// The same among the cp.async-fed ones (where the TMA-fed ones are switched off), -1 for none.
int CpAsyncDefaultEntry(int head_dim);

}  // namespace ds::cuda::flash::hopper
