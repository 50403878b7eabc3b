// Data set mutations, run through `spt eval` of a checkpoint of the matching shape. The
// oracle is exact: every format's rules (below) say whether the mutated files form a
// data set that checkpoint reads; if they do spt must accept them, if not refuse them.
// Pixel and byte values never matter, so most payload mutations must be accepted.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "files.h"
#include "generators.h"

namespace spt::fuzz {
namespace {

namespace fs = std::filesystem;

void add_eval(Case& c, const std::string& checkpoint, const std::string& data, const std::string& format, Expect e) {
  c.commands.push_back({{"eval", "--checkpoint", checkpoint, "--data", data, "--data-format", format, "--max-windows",
                         "1"},
                        e,
                        {c.dir}});
}

Expect expect(bool valid) { return valid ? Expect::accept : Expect::refuse; }

// bytes: split 90/5/5 by floor, every split at least the context.
bool bytes_valid(int64_t n) {
  const int64_t train_end = n / 10 * 9 + n % 10 * 9 / 10, valid_end = n / 20 * 19 + n % 20 * 19 / 20;
  return n > 0 && train_end >= kTextCtx && valid_end - train_end >= kTextCtx && n - valid_end >= kTextCtx;
}

struct IdxShape {
  bool ok = false;
  int64_t count = 0, rows = 0, cols = 0;
};

IdxShape idx_shape(const Bytes& b) {
  IdxShape s;
  if (b.size() < 16) return s;
  int64_t v[4];
  for (int k = 0; k < 4; ++k)
    v[k] = static_cast<int32_t>(uint32_t{b[4 * k]} << 24 | uint32_t{b[4 * k + 1]} << 16 | uint32_t{b[4 * k + 2]} << 8 |
                                b[4 * k + 3]);
  if (v[0] != 0x803 || v[1] <= 0 || v[2] <= 0 || v[3] <= 0) return s;
  const __int128 expected = static_cast<__int128>(v[1]) * v[2] * v[3] + 16;
  s.ok = expected == static_cast<__int128>(b.size());
  s.count = v[1], s.rows = v[2], s.cols = v[3];
  return s;
}

// Both files IDX images of 8 x 8 pixels (the checkpoint's shape), at least 12 training images.
bool idx_valid(const Bytes& train, const Bytes& test) {
  const IdxShape a = idx_shape(train), b = idx_shape(test);
  return a.ok && b.ok && a.rows == kIdxSide && a.cols == kIdxSide && b.rows == kIdxSide && b.cols == kIdxSide &&
         a.count >= 12;
}

// One mutation of IDX content: header fields, bits, length.
std::string mutate_idx_bytes(Bytes& b, Rng& rng) {
  const auto put = [&](int field, int64_t value) {
    for (int i = 0; i < 4; ++i) b[static_cast<size_t>(4 * field + i)] = static_cast<uint8_t>(static_cast<uint32_t>(value) >> (24 - 8 * i));
  };
  switch (rng.below(9)) {
    case 0: return flip_bits(b, 0, 16, static_cast<int>(rng.range(1, 3)), rng) + " (header)";
    case 1: return flip_bits(b, 16, static_cast<int64_t>(b.size()), static_cast<int>(rng.range(1, 20)), rng) + " (pixels)";
    case 2: { const int64_t n = rng.range(0, static_cast<int64_t>(b.size()) - 1); b.resize(static_cast<size_t>(n)); return "truncated to " + std::to_string(n); }
    case 3: { const int64_t n = rng.pick(std::vector<int64_t>{1, 63, 64, 128}); b.resize(b.size() + static_cast<size_t>(n), 7); return "appended " + std::to_string(n) + " bytes"; }
    case 4: { const uint32_t m = static_cast<uint32_t>(rng.pick(std::vector<int64_t>{0x801, 0x802, 0xD03, 0x80B, 0, 0x08030000})); put(0, m); return "magic set to " + std::to_string(m); }
    case 5: { const int64_t n = rng.pick(std::vector<int64_t>{0, -1, 1, 11, 12, 2147483647, -2147483648}); put(1, n); return "image count set to " + std::to_string(n); }
    case 6: put(2, 4); put(3, 16); return "rows x cols set to 4 x 16 (same size)";
    case 7: { const int64_t n = rng.pick(std::vector<int64_t>{0, -8, 65535, 2147483647}); put(static_cast<int>(rng.range(2, 3)), n); return "a side set to " + std::to_string(n); }
    default: { const int64_t k = rng.range(1, 3); b.resize(b.size() - static_cast<size_t>(k * 64)); put(1, static_cast<int64_t>((b.size() - 16) / 64)); return "last " + std::to_string(k) + " images removed, count fixed"; }
  }
}

const char* idx_name(bool train) { return train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte"; }

}  // namespace

void data_bytes(const Base& base, Rng& rng, int64_t, Case& c) {
  const std::string path = c.dir + "/data.txt";
  Bytes b = read_file(base.text);
  const int64_t n = static_cast<int64_t>(b.size());
  switch (rng.below(4)) {
    case 0: c.mutation = flip_bits(b, 0, n, static_cast<int>(rng.range(1, 50)), rng); break;
    case 1: {
      const int64_t len = rng.pick(std::vector<int64_t>{0, 1, 63, 1279, 1280, 1281, 1300, rng.range(0, 2000), rng.range(0, n)});
      b.resize(static_cast<size_t>(len));
      c.mutation = "truncated to " + std::to_string(len) + " bytes";
      break;
    }
    case 2: b.resize(b.size() + static_cast<size_t>(rng.range(1, 5000)), 0xFF); c.mutation = "0xFF bytes appended"; break;
    default: for (auto& v : b) v = static_cast<uint8_t>(rng.below(256)); c.mutation = "every byte random"; break;
  }
  write_file(path, b);
  add_eval(c, base.text_run + "/checkpoint", path, "bytes", expect(bytes_valid(static_cast<int64_t>(b.size()))));
}

void data_idx(const Base& base, Rng& rng, int64_t, Case& c) {
  const std::string dir = c.dir + "/idx";
  copy_tree(base.idx, dir);
  const bool train = rng.chance(70);
  const std::string path = dir + "/" + idx_name(train);
  Bytes b = read_file(path);
  const uint64_t r = rng.below(100);
  bool valid = false;
  if (r < 80) {
    c.mutation = std::string(idx_name(train)) + ": " + mutate_idx_bytes(b, rng);
    write_file(path, b);
    valid = idx_valid(read_file(dir + "/" + idx_name(true)), read_file(dir + "/" + idx_name(false)));
  } else if (r < 88) {
    remove_tree(path);
    c.mutation = std::string(idx_name(train)) + " deleted";
  } else if (r < 94) {
    remove_tree(path);
    fs::create_directory(path);
    c.mutation = std::string(idx_name(train)) + " is a directory";
  } else {
    write_file(path + ".gz", Bytes{0x1f, 0x8b, 0, 0});
    c.mutation = std::string(idx_name(train)) + ".gz (broken) beside the plain file, which wins";
    valid = true;
  }
  add_eval(c, base.idx_checkpoint, dir, "idx", expect(valid));
}

void data_idx_gz(const Base& base, Rng& rng, int64_t, Case& c) {
  const std::string dir = c.dir + "/idx";
  copy_tree(base.idx_gz, dir);
  const bool train = rng.chance(70);
  const std::string path = dir + "/" + idx_name(train) + ".gz";
  const std::string name = std::string(idx_name(train)) + ".gz: ";
  Bytes gz = read_file(path), content;
  gunzip_file(path, int64_t{1} << 24, content);
  const uint64_t r = rng.below(100);
  if (r < 2 && train) {
    fs::copy_file(base.bomb_bad, path, fs::copy_options::overwrite_existing);
    c.mutation = name + "gzip bomb: a 24-image header, then 1 GiB of zeros";
    return add_eval(c, base.idx_checkpoint, dir, "idx", Expect::refuse);
  }
  if (r < 3 && train) {
    fs::copy_file(base.bomb_huge, path, fs::copy_options::overwrite_existing);
    c.mutation = name + "256 MiB of 2^22 zero images, header consistent";
    return add_eval(c, base.idx_checkpoint, dir, "idx", Expect::either);
  }
  if (r < 35) c.mutation = name + flip_bits(gz, 0, static_cast<int64_t>(gz.size()), static_cast<int>(rng.range(1, 3)), rng) + " (compressed)";
  else if (r < 50) { const int64_t n = rng.range(0, static_cast<int64_t>(gz.size()) - 1); gz.resize(static_cast<size_t>(n)); c.mutation = name + "truncated to " + std::to_string(n); }
  else if (r < 58) { gz.insert(gz.end(), {'g', 'a', 'r', 'b', 'a', 'g', 'e'}); c.mutation = name + "garbage after the stream"; }
  else if (r < 66) {
    const size_t half = content.size() / 2;
    gz = gzip(Bytes(content.begin(), content.begin() + static_cast<int64_t>(half)));
    const Bytes second = gzip(Bytes(content.begin() + static_cast<int64_t>(half), content.end()));
    gz.insert(gz.end(), second.begin(), second.end());
    c.mutation = name + "two gzip members, same content";
  } else { c.mutation = name + "recompressed after " + mutate_idx_bytes(content, rng); gz = gzip(content); }
  write_file(path, gz);
  Bytes train_content, test_content;
  const bool valid = gunzip_file(dir + "/" + idx_name(true) + ".gz", int64_t{1} << 24, train_content) &&
                     gunzip_file(dir + "/" + idx_name(false) + ".gz", int64_t{1} << 24, test_content) &&
                     idx_valid(train_content, test_content);
  add_eval(c, base.idx_checkpoint, dir, "idx", expect(valid));
}

void data_cifar(const Base& base, Rng& rng, int64_t, Case& c) {
  std::string dir = c.dir + "/cifar";
  copy_tree(base.cifar, dir);
  const int k = static_cast<int>(rng.below(6));
  const std::string file = k < 5 ? "data_batch_" + std::to_string(k + 1) + ".bin" : "test_batch.bin";
  const std::string path = dir + "/" + file;
  Bytes b = read_file(path);
  const uint64_t r = rng.below(100);
  if (r < 35) c.mutation = file + ": " + flip_bits(b, 0, static_cast<int64_t>(b.size()), static_cast<int>(rng.range(1, 30)), rng);
  else if (r < 60) { const int64_t n = rng.pick(std::vector<int64_t>{0, 1, kCifarRecord, 2 * kCifarRecord, rng.range(0, static_cast<int64_t>(b.size()) - 1)}); b.resize(static_cast<size_t>(n)); c.mutation = file + ": truncated to " + std::to_string(n); }
  else if (r < 80) { const int64_t n = rng.pick(std::vector<int64_t>{1, kCifarRecord - 1, kCifarRecord, 3 * kCifarRecord}); b.resize(b.size() + static_cast<size_t>(n), 9); c.mutation = file + ": " + std::to_string(n) + " bytes appended"; }
  if (r < 80) write_file(path, b);
  else if (r < 88) { remove_tree(path); c.mutation = file + " deleted"; }
  else if (r < 93) { remove_tree(path); fs::create_directory(path); c.mutation = file + " is a directory"; }
  else {
    fs::rename(dir, c.dir + "/cifar-10-batches-bin");
    fs::create_directory(dir);
    fs::rename(c.dir + "/cifar-10-batches-bin", dir + "/cifar-10-batches-bin");
    c.mutation = "files moved into cifar-10-batches-bin/ (as the archive unpacks)";
  }
  // Each file a positive multiple of the record size; at least 12 training images.
  std::string files = fs::exists(dir + "/cifar-10-batches-bin") ? dir + "/cifar-10-batches-bin" : dir;
  bool valid = true;
  int64_t train_images = 0;
  for (int j = 0; j < 6; ++j) {
    const std::string p = files + "/" + (j < 5 ? "data_batch_" + std::to_string(j + 1) + ".bin" : "test_batch.bin");
    std::error_code ec;
    const bool regular = fs::is_regular_file(p, ec);
    const int64_t size = regular ? static_cast<int64_t>(fs::file_size(p)) : 0;
    valid = valid && regular && size > 0 && size % kCifarRecord == 0;
    if (j < 5) train_images += size / kCifarRecord;
  }
  add_eval(c, base.cifar_checkpoint, dir, "cifar10", expect(valid && train_images >= 12));
}

int special_data_variants() { return 9; }

void data_special_file(const Base& base, Rng&, int64_t index, Case& c) {
  const std::string text_ck = base.text_run + "/checkpoint", path = c.dir + "/data";
  const int64_t gib3 = int64_t{3} << 30;
  switch (index % special_data_variants()) {
    case 0: mkfifo(path.c_str(), 0600); c.mutation = "bytes --data is a FIFO"; return add_eval(c, text_ck, path, "bytes", Expect::refuse);
    case 1: fs::create_symlink("/dev/zero", path); c.mutation = "bytes --data -> /dev/zero"; return add_eval(c, text_ck, path, "bytes", Expect::refuse);
    case 2: fs::create_directory(path); c.mutation = "bytes --data is a directory"; return add_eval(c, text_ck, path, "bytes", Expect::refuse);
    case 3: write_text(path, "x"); truncate(path.c_str(), gib3); c.mutation = "bytes --data of 3 GiB (sparse; more than the memory limit)"; return add_eval(c, text_ck, path, "bytes", Expect::either);
    case 4: fs::create_symlink("/dev/urandom", path); c.mutation = "bytes --data -> /dev/urandom"; return add_eval(c, text_ck, path, "bytes", Expect::either);
    case 5: fs::create_directory(path); mkfifo((path + "/" + idx_name(true)).c_str(), 0600); copy_tree(base.idx + "/" + idx_name(false), path + "/" + idx_name(false));
      c.mutation = "idx training file is a FIFO"; return add_eval(c, base.idx_checkpoint, path, "idx", Expect::refuse);
    case 6: fs::create_directory(path); write_file(path + "/" + idx_name(true), idx_header(0x803, int64_t{1} << 25, 8, 8)); truncate((path + "/" + idx_name(true)).c_str(), 16 + (int64_t{1} << 31));
      copy_tree(base.idx + "/" + idx_name(false), path + "/" + idx_name(false));
      c.mutation = "idx training file of 2 GiB (sparse, header consistent)"; return add_eval(c, base.idx_checkpoint, path, "idx", Expect::either);
    case 7: copy_tree(base.cifar, path); remove_tree(path + "/test_batch.bin"); mkfifo((path + "/test_batch.bin").c_str(), 0600);
      c.mutation = "cifar10 test_batch.bin is a FIFO"; return add_eval(c, base.cifar_checkpoint, path, "cifar10", Expect::refuse);
    default: c.mutation = "bytes --data does not exist"; return add_eval(c, text_ck, path, "bytes", Expect::refuse);
  }
}

}  // namespace spt::fuzz
