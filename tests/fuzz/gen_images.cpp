// Image preparation inputs: .npy arrays mutated and run through `spt prepare`, and the
// index.json of a prepared image set mutated and run through `spt eval`. The oracle:
// an .npy whose header is well formed, of unsigned bytes in C order, with data that
// matches a shape (N >= 3, R) where R is s^2 or 3 s^2 must be accepted, anything else
// refused; any change of an index value must be refused (the reader checks every field
// against the others), while a change that keeps the JSON's meaning may go either way.
#include <nlohmann/json.hpp>

#include "files.h"
#include "generators.h"

namespace spt::fuzz {
namespace {

struct Header {
  std::string descr = "|u1", order = "False";
  std::vector<int64_t> shape;
};

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "(";
  for (size_t k = 0; k < shape.size(); ++k) text += (k ? ", " : "") + std::to_string(shape[k]);
  return text + (shape.size() == 1 ? ",)" : ")");
}

bool square(int64_t n) {
  for (int64_t s = 1; s * s <= n; ++s)
    if (s * s == n) return true;
  return false;
}

bool npy_valid(const Header& h, int64_t data_bytes) {
  if ((h.descr != "|u1" && h.descr != "<u1") || h.order != "False" || h.shape.size() != 2) return false;
  const int64_t n = h.shape[0], row = h.shape[1];
  if (n < 3 || row < 1 || row > data_bytes || n * row != data_bytes) return false;
  return square(row) || (row % 3 == 0 && square(row / 3));
}

}  // namespace

Bytes npy_file(const std::string& descr, const std::string& order, const std::vector<int64_t>& shape, const Bytes& data) {
  std::string header = "{'descr': '" + descr + "', 'fortran_order': " + order + ", 'shape': " + shape_text(shape) + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  Bytes out = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<uint8_t>(header.size() & 0xFF),
               static_cast<uint8_t>(header.size() >> 8)};
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

void data_npy(const Base& base, Rng& rng, int64_t, Case& c) {
  const std::string path = c.dir + "/images.npy";
  const Bytes valid = read_file(base.npy);
  const int64_t header_end = 10 + (valid[8] | valid[9] << 8);
  const Bytes data(valid.begin() + header_end, valid.end());
  Bytes b = valid;
  bool ok = false;
  Expect e = Expect::refuse;
  switch (rng.below(5)) {
    case 0: c.mutation = flip_bits(b, header_end, static_cast<int64_t>(b.size()), static_cast<int>(rng.range(1, 40)), rng) + " (pixels)"; ok = true; break;
    case 1: { const int64_t n = rng.range(0, static_cast<int64_t>(b.size()) - 1); b.resize(static_cast<size_t>(n)); c.mutation = "truncated to " + std::to_string(n); break; }
    case 2: b.resize(b.size() + static_cast<size_t>(rng.range(1, 200)), 3); c.mutation = "bytes appended"; break;
    case 3: c.mutation = flip_bits(b, 0, header_end, static_cast<int>(rng.range(1, 3)), rng) + " (header)"; e = Expect::either; break;
    default: {
      Header h;
      h.descr = rng.pick(std::vector<std::string>{"|u1", "<u1", "<f4", ">u1", "|b1", "u1", "|i1"});
      h.order = rng.pick(std::vector<std::string>{"False", "False", "True", "0"});
      h.shape = rng.pick(std::vector<std::vector<int64_t>>{{kNpyImages, 64}, {kNpyImages, 64}, {12, 128}, {1536}, {64, 24}, {6, 256},
                                                           {2, 768}, {1536, 1}, {kNpyImages, 64, 1}, {int64_t{1} << 62, 2},
                                                           {99999999999, 64}, {0, 64}, {kNpyImages, 0}});
      b = npy_file(h.descr, h.order, h.shape, data);
      c.mutation = "header descr " + h.descr + ", fortran_order " + h.order + ", shape " + shape_text(h.shape);
      ok = npy_valid(h, static_cast<int64_t>(data.size()));
    }
  }
  write_file(path, b);
  c.commands.push_back({{"prepare", path, "--out", c.dir + "/set"}, ok ? Expect::accept : e, {c.dir}});
}

void data_image_index(const Base& base, Rng& rng, int64_t, Case& c) {
  const std::string dir = c.dir + "/set";
  copy_tree(base.image_set, dir);
  const Bytes before = read_file(dir + "/index.json");
  nlohmann::json j = nlohmann::json::parse(before.begin(), before.end());
  const std::vector<std::vector<std::string>> paths = {
      {"image", "height"}, {"image", "width"}, {"image", "channels"}, {"splits", "train", "images"},
      {"splits", "valid", "images"}, {"splits", "test", "tokens"}, {"total_tokens"}, {"tokens_crc32"}, {"version"},
      {"sample_rate"}};
  const auto& path = rng.pick(paths);
  nlohmann::json* at = &j;
  for (const std::string& key : path) at = &(*at)[key];
  const nlohmann::json old = *at;
  *at = rng.pick(std::vector<nlohmann::json>{0, -1, 1, 3, 64, 65536, int64_t{1} << 40, INT64_MAX, 2.5, "8", true, nullptr,
                                             old.is_number_integer() ? nlohmann::json(old.get<int64_t>() + 1) : old});
  std::string where;
  for (const std::string& key : path) where += (where.empty() ? "" : ".") + key;
  c.mutation = "index.json " + where + " = " + at->dump();
  const bool same = *at == old;
  write_text(dir + "/index.json", j.dump(1) + "\n");
  std::vector<std::string> names = {c.dir, path.back()};
  c.commands.push_back({{"eval", "--checkpoint", base.idx_checkpoint, "--data", dir, "--data-format", "prepared",
                         "--max-windows", "1"},
                        same ? Expect::either : Expect::refuse,
                        names});
}

}  // namespace spt::fuzz
