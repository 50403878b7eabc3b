#include "io/safetensors.h"

#include <algorithm>
#include <bit>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/input_file.h"
#include "io/json_limits.h"

namespace spt {

// Tensor data is written and read as the host's bytes; the format is little-endian.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

struct DtypeEntry {
  Dtype dtype;
  const char* name;
  int size;
};

constexpr DtypeEntry kDtypes[] = {
    {Dtype::F64, "F64", 8}, {Dtype::F32, "F32", 4}, {Dtype::F16, "F16", 2}, {Dtype::BF16, "BF16", 2},
    {Dtype::I64, "I64", 8}, {Dtype::I32, "I32", 4}, {Dtype::I16, "I16", 2}, {Dtype::I8, "I8", 1},
    {Dtype::U8, "U8", 1},   {Dtype::BOOL, "BOOL", 1},
};

const DtypeEntry& entry(Dtype dtype) {
  for (const DtypeEntry& e : kDtypes)
    if (e.dtype == dtype) return e;
  throw Error("unknown dtype value");
}

// Headers beyond this are refused before any allocation (the reference library's limit).
constexpr int64_t kMaxHeaderBytes = int64_t{100} << 20;
// Dimensions beyond this cannot be a real tensor and would overflow the byte count.
constexpr int64_t kMaxElements = int64_t{1} << 50;

int64_t element_count(const std::vector<int64_t>& shape) {
  for (int64_t dim : shape)
    if (dim < 0 || dim > kMaxElements) return -1;
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (dim == 0) return 0;
    if (dim > kMaxElements / count) return -1;
    count *= dim;
  }
  return count;
}

void put_u64_le(uint64_t value, char* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
}

uint64_t get_u64_le(const unsigned char* in) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value |= static_cast<uint64_t>(in[i]) << (8 * i);
  return value;
}

int64_t json_offset(const nlohmann::json& value, const std::string& where) {
  SPT_CHECK(value.is_number_unsigned(), where, ": data_offsets must hold two non-negative integers, got ",
            json_excerpt(value));
  const uint64_t v = value.get<uint64_t>();
  SPT_CHECK(v <= static_cast<uint64_t>(INT64_MAX), where, ": data offset ", v, " is out of range");
  return static_cast<int64_t>(v);
}

}  // namespace

const char* dtype_name(Dtype dtype) { return entry(dtype).name; }
int dtype_size(Dtype dtype) { return entry(dtype).size; }

Dtype parse_dtype(const std::string& name) {
  for (const DtypeEntry& e : kDtypes)
    if (name == e.name) return e.dtype;
  std::string known;
  for (const DtypeEntry& e : kDtypes) known += (known.empty() ? "" : ", ") + std::string(e.name);
  throw Error(message("unknown dtype '", name, "' (known: ", known, ")"));
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + ")";
}

// ---------------------------------------------------------------------------------------
// Writer

void SafetensorsWriter::add(const std::string& name, Dtype dtype, std::vector<int64_t> shape, const void* data) {
  SPT_CHECK(!name.empty() && name != "__metadata__", "a safetensors tensor cannot be named '", name, "'");
  for (const Pending& p : tensors_) SPT_CHECK(p.info.name != name, "tensor '", name, "' is added twice");
  const int64_t count = element_count(shape);
  SPT_CHECK(count >= 0, "tensor '", name, "' has an invalid shape ", shape_string(shape));
  SPT_CHECK(data != nullptr || count == 0, "tensor '", name, "' has no data");
  Pending p;
  p.info.name = name;
  p.info.dtype = dtype;
  p.info.shape = std::move(shape);
  p.info.end = count * dtype_size(dtype);
  p.data = data;
  tensors_.push_back(std::move(p));
}

std::vector<SafetensorsWriter::Pending> SafetensorsWriter::ordered() const {
  std::vector<Pending> order = tensors_;
  std::stable_sort(order.begin(), order.end(), [](const Pending& a, const Pending& b) {
    return dtype_size(a.info.dtype) > dtype_size(b.info.dtype);
  });
  int64_t offset = 0;
  for (Pending& p : order) {
    const int64_t bytes = p.info.end;
    p.info.begin = offset;
    p.info.end = offset + bytes;
    offset += bytes;
  }
  return order;
}

void SafetensorsWriter::write(OutputFile& out) const {
  const std::vector<Pending> order = ordered();
  // ordered_json keeps the metadata first and the tensors in data order, for readers.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata_) meta[key] = value;
    header["__metadata__"] = meta;
  }
  for (const Pending& p : order)
    header[p.info.name] = {{"dtype", dtype_name(p.info.dtype)},
                           {"shape", p.info.shape},
                           {"data_offsets", {p.info.begin, p.info.end}}};
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  char length[8];
  put_u64_le(text.size(), length);
  out.write(length, 8);
  out.write(text.data(), static_cast<int64_t>(text.size()));
  for (const Pending& p : order) out.write(p.data, p.info.bytes());
}

void SafetensorsWriter::write_file(const std::string& path) const {
  write_file_atomically(path, [&](OutputFile& out) { write(out); });
}

// ---------------------------------------------------------------------------------------
// Reader

namespace {

// One tensor's header entry, checked against the data section of data_bytes bytes.
TensorInfo tensor_entry(const std::string& name, const nlohmann::json& value, const std::string& path,
                        int64_t data_bytes) {
  const std::string where = path + ": tensor '" + name + "'";
  SPT_CHECK(value.is_object(), where, ": expected an object with dtype, shape, data_offsets");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    SPT_CHECK(value.contains(field), where, ": missing '", field, "'");
  TensorInfo info;
  info.name = name;
  SPT_CHECK(value["dtype"].is_string(), where, ": dtype must be a string, got ", json_excerpt(value["dtype"]));
  try {
    info.dtype = parse_dtype(value["dtype"].get<std::string>());
  } catch (const Error& e) {
    throw Error(message(where, ": ", e.what()));
  }
  SPT_CHECK(value["shape"].is_array(), where, ": shape must be an array, got ", json_excerpt(value["shape"]));
  for (const nlohmann::json& dim : value["shape"]) {
    SPT_CHECK(dim.is_number_unsigned(), where, ": shape must hold non-negative integers, got ",
              json_excerpt(value["shape"]));
    SPT_CHECK(dim.get<uint64_t>() <= static_cast<uint64_t>(kMaxElements), where, ": dimension ", json_excerpt(dim),
              " is too large");
    info.shape.push_back(dim.get<int64_t>());
  }
  const nlohmann::json& offsets = value["data_offsets"];
  SPT_CHECK(offsets.is_array() && offsets.size() == 2, where, ": data_offsets must be [begin, end], got ",
            json_excerpt(offsets));
  info.begin = json_offset(offsets[0], where);
  info.end = json_offset(offsets[1], where);
  SPT_CHECK(info.begin <= info.end, where, ": data_offsets [", info.begin, ", ", info.end, "] end before they begin");
  SPT_CHECK(info.end <= data_bytes, where, ": data_offsets [", info.begin, ", ", info.end,
            "] run past the ", data_bytes, "-byte data section (truncated file?)");
  const int64_t count = element_count(info.shape);
  SPT_CHECK(count >= 0 && count * dtype_size(info.dtype) == info.bytes(), where, ": shape ",
            shape_string(info.shape), " of ", dtype_name(info.dtype), " needs ",
            count >= 0 ? count * dtype_size(info.dtype) : -1, " bytes but data_offsets hold ", info.bytes());
  return info;
}

// The tensors, sorted by offset, must tile the data section: no gap, no overlap, no tail.
void check_data_coverage(const std::vector<TensorInfo>& tensors, const std::string& path, int64_t data_bytes) {
  int64_t covered = 0;
  for (const TensorInfo& t : tensors) {
    SPT_CHECK(t.begin >= covered, path, ": tensor '", t.name, "' at bytes [", t.begin, ", ", t.end,
              ") overlaps the tensor before it, which ends at ", covered);
    SPT_CHECK(t.begin == covered, path, ": bytes [", covered, ", ", t.begin, ") of the data section belong to no tensor");
    covered = t.end;
  }
  SPT_CHECK(covered == data_bytes, path, ": the data section is ", data_bytes, " bytes but its tensors cover ",
            covered, " (trailing bytes or a wrong header)");
}

}  // namespace

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path) {
  const int64_t size = file_size(path);
  file_.open(path, std::ios::binary);
  SPT_CHECK(file_, "cannot open '", path, "'");
  SPT_CHECK(size >= 8, path, ": the file is ", size,
            " bytes, shorter than the 8-byte header length of a safetensors file (truncated?)");
  unsigned char length_bytes[8];
  file_.read(reinterpret_cast<char*>(length_bytes), 8);
  SPT_CHECK(file_, path, ": cannot read the header length");
  const uint64_t header_length = get_u64_le(length_bytes);
  SPT_CHECK(header_length <= static_cast<uint64_t>(size - 8), path, ": the header length ", header_length,
            " runs past the end of the ", size, "-byte file (truncated or not safetensors)");
  SPT_CHECK(static_cast<int64_t>(header_length) <= kMaxHeaderBytes, path, ": the header length ", header_length,
            " exceeds the limit of ", kMaxHeaderBytes, " bytes");
  std::string text(header_length, '\0');
  file_.read(text.data(), static_cast<std::streamsize>(header_length));
  SPT_CHECK(file_, path, ": cannot read the ", header_length, "-byte header");
  data_start_ = 8 + static_cast<int64_t>(header_length);
  const int64_t data_bytes = size - data_start_;

  // A repeated name would silently replace the earlier entry in the parsed object.
  std::set<std::string> seen_names;
  std::string duplicate;
  const auto find_duplicates = [&](int depth, const std::string& key) {
    if (depth == 1 && !seen_names.insert(key).second) duplicate = key;
  };
  const nlohmann::json header = parse_json_limited(text, path + ": the header", find_duplicates);
  SPT_CHECK(header.is_object(), path, ": the header must be a JSON object, got ", header.type_name());
  SPT_CHECK(duplicate.empty(), path, ": the header names '", duplicate, "' twice");

  for (const auto& item : header.items()) {
    const std::string& name = item.key();
    const nlohmann::json& value = item.value();
    if (name == "__metadata__") {
      SPT_CHECK(value.is_object(), path, ": __metadata__ must be an object of strings");
      for (const auto& meta : value.items()) {
        SPT_CHECK(meta.value().is_string(), path, ": __metadata__ value '", meta.key(),
                  "' must be a string, got ", json_excerpt(meta.value()));
        metadata_[meta.key()] = meta.value().get<std::string>();
      }
      continue;
    }
    tensors_.push_back(tensor_entry(name, value, path, data_bytes));
  }

  std::stable_sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  check_data_coverage(tensors_, path, data_bytes);
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

const TensorInfo& SafetensorsReader::tensor(const std::string& name) const {
  const auto found = index_.find(name);
  SPT_CHECK(found != index_.end(), path_, ": no tensor named '", name, "'");
  return tensors_[found->second];
}

const std::string& SafetensorsReader::metadata_value(const std::string& key) const {
  const auto found = metadata_.find(key);
  SPT_CHECK(found != metadata_.end(), path_, ": __metadata__ has no '", key, "' entry");
  return found->second;
}

void SafetensorsReader::read(const std::string& name, Dtype dtype, const std::vector<int64_t>& shape, void* out) {
  const TensorInfo& info = tensor(name);
  SPT_CHECK(info.dtype == dtype && info.shape == shape, path_, ": tensor '", name, "' is ", dtype_name(info.dtype),
            " ", shape_string(info.shape), ", expected ", dtype_name(dtype), " ", shape_string(shape));
  if (info.bytes() == 0) return;
  file_.clear();
  file_.seekg(data_start_ + info.begin);
  file_.read(static_cast<char*>(out), static_cast<std::streamsize>(info.bytes()));
  SPT_CHECK(file_ && file_.gcount() == info.bytes(), path_, ": cannot read the ", info.bytes(), " bytes of tensor '",
            name, "' (was the file truncated while open?)");
}

}  // namespace spt
