// Times launches on a stream with a pair of CUDA events: what the autotuners (autotune.h) measure
// candidates with. Host code; the events are made once per timer and destroyed with it.
#pragma once

#include <cuda_runtime_api.h>

namespace ds::cuda {

// Whether work enqueued on `stream` runs now, so that it can be timed: not with an error pending
// from earlier work (it belongs to that work's check, and is left for it), nor while the stream is
// captured into a CUDA graph (nothing runs then).
inline bool TimingPossible(cudaStream_t stream) {
  if (cudaPeekAtLastError() != cudaSuccess) return false;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &capture) != cudaSuccess) {
    cudaGetLastError();  // the query's own error
    return false;
  }
  return capture == cudaStreamCaptureStatusNone;
}

class LaunchTimer {
 public:
  LaunchTimer() {
    if (cudaEventCreate(&start_) != cudaSuccess || cudaEventCreate(&stop_) != cudaSuccess) cudaGetLastError();
  }
  ~LaunchTimer() {
    if (start_) cudaEventDestroy(start_);
    if (stop_) cudaEventDestroy(stop_);
  }
  LaunchTimer(const LaunchTimer&) = delete;
  LaunchTimer& operator=(const LaunchTimer&) = delete;

  bool ok() const { return start_ != nullptr && stop_ != nullptr; }

  // Mean milliseconds per launch over `runs` launches of `launch` (which enqueues one on `stream`
  // and says whether it could) after one untimed warm-up launch; -1 when a launch or an event
  // failed. Waits for the stream.
  template <class Launch>
  double MeanMs(cudaStream_t stream, int runs, Launch&& launch) {
    if (!ok() || !launch() || cudaEventRecord(start_, stream) != cudaSuccess) return -1.0;
    for (int i = 0; i < runs; ++i) {
      if (!launch()) return -1.0;
    }
    float ms = 0.0f;
    if (cudaEventRecord(stop_, stream) != cudaSuccess || cudaEventSynchronize(stop_) != cudaSuccess ||
        cudaEventElapsedTime(&ms, start_, stop_) != cudaSuccess) {
      cudaGetLastError();
      return -1.0;
    }
    return static_cast<double>(ms) / runs;
  }

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

}  // namespace ds::cuda
