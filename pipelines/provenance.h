// The provenance record of a generation: a JSON object saying that the video is machine-generated,
// by which engine and model, and every setting needed to make it again (the prompt, seed, sampling,
// size and device as resolved, plus the option table as set). The front ends write it into their
// outputs (GStreamer tags, container metadata), so a file says what made it, as ComfyUI's and
// A1111's outputs carry their parameters.
#pragma once

#include <string>

#include "pipelines/generation.h"
#include "pipelines/options.h"

namespace ds {

// device: the backend that runs the model ("cpu", "cuda", ...), threads: the threads it runs. The
// model is named by the last component of its option (a folder's own name, never the rest of a
// local path).
std::string ProvenanceJson(const Options& opts, const ModelInfo& info, const OutputShape& shape, const char* device,
                           int threads);

}  // namespace ds
