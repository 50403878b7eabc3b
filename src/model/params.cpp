#include "model/params.h"

#include "core/error.h"

namespace spt {

int64_t ParamTable::add(const std::string& name, std::vector<int64_t> shape, bool decay) {
  int64_t size = 1;
  for (int64_t dim : shape) size *= dim;
  // Offsets are kept 16-float aligned so every tensor starts on a cache line.
  const int64_t offset = (total_ + 15) / 16 * 16;
  params_.push_back({name, std::move(shape), offset, size, decay});
  total_ = offset + size;
  return offset;
}

const ParamInfo& ParamTable::find(const std::string& name) const {
  for (const ParamInfo& p : params_)
    if (p.name == name) return p;
  throw Error(message("no parameter named '", name, "'"));
}

}  // namespace spt
