// The safetensors format (as written by Hugging Face's `safetensors` library):
//   8 bytes    N, the header length, unsigned little-endian
//   N bytes    JSON {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
//                    "__metadata__": {"<key>": "<string value>"}}, padded with spaces
//              so the data section starts at a multiple of 8
//   the data   offsets are relative to the start of the data section; the tensors'
//              byte ranges tile it exactly, row-major, little-endian
// The reader validates all of this and refuses anything else with a one-line error
// that names the file and the problem.
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "io/file_util.h"

namespace spt {

enum class Dtype { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char* dtype_name(Dtype dtype);  // "F32", ...
int dtype_size(Dtype dtype);          // bytes per element
// The dtype of a safetensors name; throws naming the unknown name.
Dtype parse_dtype(const std::string& name);

std::string shape_string(const std::vector<int64_t>& shape);  // "(256, 32)"

struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::F32;
  std::vector<int64_t> shape;
  int64_t begin = 0, end = 0;  // byte range in the data section
  int64_t bytes() const { return end - begin; }
};

// Collects tensors (by pointer: the data must stay alive until written) and metadata,
// then writes one file. Tensors are laid out by descending element size, then in the
// order they were added, so every tensor's data is aligned to its element size.
class SafetensorsWriter {
 public:
  void add(const std::string& name, Dtype dtype, std::vector<int64_t> shape, const void* data);
  void add_f32(const std::string& name, std::vector<int64_t> shape, const float* data) {
    add(name, Dtype::F32, std::move(shape), data);
  }
  void add_u8(const std::string& name, std::vector<int64_t> shape, const uint8_t* data) {
    add(name, Dtype::U8, std::move(shape), data);
  }
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  // Streams the file into `out` (the caller syncs and renames it).
  void write(OutputFile& out) const;
  // Writes `path` durably: temporary file, fsync, rename.
  void write_file(const std::string& path) const;

 private:
  struct Pending {
    TensorInfo info;
    const void* data = nullptr;
  };
  std::vector<Pending> ordered() const;  // in file order, offsets filled in

  std::vector<Pending> tensors_;
  std::map<std::string, std::string> metadata_;
};

class SafetensorsReader {
 public:
  // Opens and validates the header; no tensor data is read yet.
  explicit SafetensorsReader(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in data order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  const TensorInfo& tensor(const std::string& name) const;  // throws naming the tensor
  // A metadata value; throws naming the key when it is missing.
  const std::string& metadata_value(const std::string& key) const;

  // Reads a tensor of the expected dtype and shape into `out` (its bytes()); a
  // different dtype or shape is an error naming the tensor, the expected and the found.
  void read(const std::string& name, Dtype dtype, const std::vector<int64_t>& shape, void* out);
  void read_f32(const std::string& name, const std::vector<int64_t>& shape, float* out) {
    read(name, Dtype::F32, shape, out);
  }

 private:
  std::string path_;
  std::ifstream file_;
  int64_t data_start_ = 0;  // 8 + header length
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace spt
