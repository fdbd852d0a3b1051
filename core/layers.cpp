#include "core/layers.h"

#include "core/weights.h"

namespace ds {

Tensor WeightReader::tensor(const std::string& name, std::vector<int64_t> shape) {
  if (!status_.ok()) return {};
  Result<Tensor> t = weights_.Get(name, shape);
  if (!t.ok()) {
    status_ = t.status();
    return {};
  }
  return *t;
}

Linear WeightReader::linear(const std::string& name, int64_t out, int64_t in, bool bias) {
  Linear l;
  l.w = tensor(name + ".weight", {out, in});
  if (bias) l.b = tensor(name + ".bias", {out});
  return l;
}

}  // namespace ds
