// Prompt embeddings by prompt, a bounded number of them (the text encoder runs once per prompt).
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <utility>

namespace ds {

// When full, an addition drops every entry but the one the caller still holds: Denoise holds the
// prompt's embedding while it encodes the negative prompt. std::map keeps a kept entry where it
// is, so the caller's pointer stays valid.
template <class T>
class PromptCache {
 public:
  explicit PromptCache(size_t capacity) : capacity_(capacity) {}

  const T* Find(const std::string& prompt) const {
    const auto it = map_.find(prompt);
    return it == map_.end() ? nullptr : &it->second;
  }

  // `keep`: a prompt whose entry a caller holds, or nullptr.
  const T* Add(const std::string& prompt, T value, const std::string* keep) {
    if (map_.size() >= capacity_ && !map_.contains(prompt)) {
      std::erase_if(map_, [&](const auto& entry) { return keep == nullptr || entry.first != *keep; });
    }
    return &map_.insert_or_assign(prompt, std::move(value)).first->second;
  }

  size_t size() const { return map_.size(); }

 private:
  size_t capacity_;
  std::map<std::string, T> map_;
};

}  // namespace ds
