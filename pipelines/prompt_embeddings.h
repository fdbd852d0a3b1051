// Prompt embeddings saved for reuse (ditgen --save-embeds / --embeds, ds_save_embeddings /
// ds_load_embeddings): the text encoder's output for a prompt and its negative prompt, so a later
// run skips the encoder (UMT5-XXL for Wan2.1: 11 GB of weights for two 512 x 4096 matrices).
//
// The file is a safetensors file: F32 tensors "prompt" and "negative_prompt" [rows, cols], and
// metadata "format" = "ditstream.prompt_embeddings", "family", "prompt", "negative_prompt".
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace ds {

struct PromptEmbeddings {
  std::string family;  // the model family that produced them, e.g. "wan2.1"
  std::string prompt, negative_prompt;
  int rows = 0, cols = 0;
  std::vector<float> cond, uncond;  // rows x cols each
};

// Writes atomically (a temporary file renamed into place; nothing is left behind on failure).
Status WritePromptEmbeddings(const std::string& path, const PromptEmbeddings& e);

// Reads and checks a file written by WritePromptEmbeddings against what the model needs: the family
// and the [rows, cols] shape; every mismatch is an error naming the file and what differs.
Result<PromptEmbeddings> ReadPromptEmbeddings(const std::string& path, const std::string& family, int rows, int cols);

}  // namespace ds
