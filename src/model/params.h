// The named parameter table: every tensor of the model lives at an offset of one
// contiguous fp32 buffer (weights, and a gradient buffer of the same layout), so the
// optimizer, clipping and checkpoints work on whole buffers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace spt {

struct ParamInfo {
  std::string name;             // safetensors name, e.g. "blocks.3.attn.qkv.weight"
  std::vector<int64_t> shape;
  int64_t offset = 0;           // in floats, into the weight and gradient buffers
  int64_t size = 0;             // product of shape
  bool decay = false;           // weight decay applies (linear weights only)
};

class ParamTable {
 public:
  int64_t add(const std::string& name, std::vector<int64_t> shape, bool decay);  // returns the offset
  const std::vector<ParamInfo>& all() const { return params_; }
  const ParamInfo& find(const std::string& name) const;
  int64_t total() const { return total_; }

 private:
  std::vector<ParamInfo> params_;
  int64_t total_ = 0;
};

}  // namespace spt
