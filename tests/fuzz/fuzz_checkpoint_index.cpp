// Fuzz target: the JSON of a sharded checkpoint's *.safetensors.index.json (the whole input), next
// to two small valid shards, opened by file and by folder as Model::Load would. Checks: errors name
// the index or the shard at fault; an accepted index maps every weight_map entry to the shard it
// names, with the tensor's real data; both ways of opening agree.
//
// Shard names holding '/' are skipped: they would make the fuzzer open arbitrary files of this
// machine (tests/faults covers names that leave the folder).
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/support/random_model.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Shard file → its tensors (name, first value); each tensor has shape [2] and values {v, v + 1}.
const std::map<std::string, std::map<std::string, float>> kShards = {
    {"model-00001-of-00002.safetensors", {{"a.weight", 1.0f}, {"a.bias", 2.0f}}},
    {"model-00002-of-00002.safetensors", {{"b.weight", 3.0f}, {"shared", 4.0f}}},
};

const std::string& Folder() {
  static const std::string dir = [] {
    std::string d = ds::fuzz::ScratchDir("index");
    for (const auto& [file, tensors] : kShards) {
      std::vector<ds::testing::NamedTensor> named;
      for (const auto& [name, v] : tensors) named.push_back({name, {2}, {v, v + 1}});
      if (!ds::testing::WriteSafetensors(d + "/" + file, named).empty()) std::abort();
    }
    return d;
  }();
  return dir;
}

bool SafeShardNames(std::string_view text) {
  json root = json::parse(text.begin(), text.end(), nullptr, false);
  if (!root.is_object() || !root.contains("weight_map") || !root["weight_map"].is_object()) return true;
  for (const auto& v : root["weight_map"]) {
    if (v.is_string() && ds::fuzz::Contains(v.get_ref<const std::string&>(), "/")) return false;
  }
  return true;
}

void CheckAccepted(const ds::Checkpoint& c, std::string_view text) {
  const json root = json::parse(text.begin(), text.end());
  const json& map = root.at("weight_map");
  FUZZ_CHECK(c.names().size() == map.size(), "%zu tensors opened for %zu weight_map entries", c.names().size(),
             map.size());
  for (auto it = map.begin(); it != map.end(); ++it) {
    const ds::SafetensorsEntry* e = c.find(it.key());
    FUZZ_CHECK(e != nullptr, "weight_map entry '%s' not found", it.key().c_str());
    auto shard = kShards.find(it.value().get<std::string>());
    FUZZ_CHECK(shard != kShards.end(), "accepted a shard that does not exist: %s", it.value().dump().c_str());
    auto want = shard->second.find(it.key());
    FUZZ_CHECK(want != shard->second.end(), "accepted '%s' in a shard that lacks it", it.key().c_str());
    float got[2];
    FUZZ_CHECK(e->nbytes == sizeof got, "tensor '%s' has %zu bytes", it.key().c_str(), e->nbytes);
    FUZZ_CHECK(ds::ConvertToF32(*e, got).ok() && got[0] == want->second && got[1] == want->second + 1,
               "tensor '%s' reads the wrong data", it.key().c_str());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (!SafeShardNames(text)) return -1;  // -1: not added to the corpus
  const std::string index = Folder() + "/model.safetensors.index.json";
  std::ofstream(index, std::ios::binary | std::ios::trunc).write(text.data(), static_cast<std::streamsize>(size));

  auto by_file = ds::Checkpoint::Open(index);
  auto by_folder = ds::Checkpoint::Open(Folder());
  FUZZ_CHECK(by_file.ok() == by_folder.ok(), "index and folder disagree: %s / %s",
             by_file.status().message().c_str(), by_folder.status().message().c_str());
  if (!by_file.ok()) {
    // The index, or the shard file it names, which lies in the same folder.
    FUZZ_CHECK(ds::fuzz::Contains(by_file.status().message(), Folder()), "error names no file: %s",
               by_file.status().message().c_str());
    FUZZ_CHECK(by_file.status().message() == by_folder.status().message(), "index and folder disagree: %s / %s",
               by_file.status().message().c_str(), by_folder.status().message().c_str());
    return 0;
  }
  CheckAccepted(**by_file, text);
  FUZZ_CHECK((*by_folder)->names() == (*by_file)->names(), "index and folder open different tensors");
  return 0;
}
