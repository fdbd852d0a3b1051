// A capped allocator for the whole test program: the global operator new is replaced so that a
// chosen allocation (counted across all threads) throws std::bad_alloc, as a real allocation does
// when memory runs out. Covers every new/new[] of the engine, its std containers, fmt and nlohmann;
// not malloc/aligned_alloc (HostBuffer), which the RLIMIT_AS test reaches instead.
#pragma once

namespace faults {

// From now on, count allocations; the k-th (0-based) throws.
void FailAllocation(long k);
// Count allocations without failing any.
void CountAllocations();
// Stop counting and failing; returns how many were counted.
long StopCountingAllocations();
// Whether the armed failure happened since FailAllocation.
bool AllocationFailed();

// While one lives, allocations of this thread are neither counted nor failed (the test's own
// bookkeeping inside engine callbacks).
class AllocationPause {
 public:
  AllocationPause();
  ~AllocationPause();
  AllocationPause(const AllocationPause&) = delete;
  AllocationPause& operator=(const AllocationPause&) = delete;
};

}  // namespace faults
