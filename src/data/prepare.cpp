#include "data/prepare.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>

#include "core/error.h"
#include "core/rng.h"
#include "data/audio_tokens.h"
#include "data/file_read.h"
#include "data/formats.h"
#include "data/prepare_progress.h"
#include "data/prepared_writer.h"

namespace spt {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kSplitStream = 0x73706c6974;  // "split": the rng stream of clip splits

bool is_audio_name(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".wav" || ext == ".flac" || ext == ".ogg" || ext == ".oga";
}

std::vector<std::string> read_list(const std::string& list) {
  std::ifstream in(list);
  SPT_CHECK(in, "cannot read the list of recordings '", list, "'");
  const fs::path base = fs::path(list).parent_path();
  std::vector<std::string> paths;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    const fs::path path(line.substr(first));
    paths.push_back(path.is_absolute() ? path.string() : (base / path).string());
  }
  SPT_CHECK(!paths.empty(), "the list '", list, "' names no recordings");
  return paths;
}

std::vector<std::string> list_directory(const std::string& directory) {
  std::vector<std::string> paths;
  for (const auto& entry : fs::recursive_directory_iterator(directory, fs::directory_options::follow_directory_symlink))
    if (entry.is_regular_file() && is_audio_name(entry.path())) paths.push_back(entry.path().string());
  std::sort(paths.begin(), paths.end());
  SPT_CHECK(!paths.empty(), "no .wav, .flac, .ogg or .oga files under '", directory, "'");
  return paths;
}

// The name a clip keeps in the index: relative to the source directory when there is one.
std::string clip_name(const std::string& path, const std::string& source) {
  std::error_code ec;
  if (!fs::is_directory(source, ec)) return path;
  return fs::path(path).lexically_relative(source).string();
}

PrepareResult prepare_audio(const PrepareOptions& o) {
  SPT_CHECK(o.sample_rate >= 1 && o.sample_rate <= kMaxSampleRate, "--sample-rate ", o.sample_rate,
            " is outside 1..", kMaxSampleRate);
  const std::vector<std::string> paths = audio_sources(o.source, o.list_file);
  const std::vector<std::string> splits = assign_splits(static_cast<int64_t>(paths.size()), o.seed);
  PreparedWriter writer(o.out, o.force);
  PrepareResult result;
  PrepareProgress progress(o.progress, paths.size(), "clips");
  size_t done = 0;
  int64_t samples = 0;
  for (const char* split : {"train", "valid", "test"}) {
    for (size_t k = 0; k < paths.size(); ++k) {
      if (splits[k] != split) continue;
      try {
        const std::vector<uint8_t> tokens = audio_file_tokens(paths[k], o.sample_rate);
        writer.add_clip(clip_name(paths[k], o.source), split, tokens.data(), static_cast<int64_t>(tokens.size()));
        samples += static_cast<int64_t>(tokens.size());
      } catch (const Error& e) {
        if (!o.skip_bad) throw;
        ++result.skipped;
        std::fprintf(stderr, "spt prepare: skipping %s\n", e.what());
      }
      ++done;
      progress.update(done, message(std::fixed, std::setprecision(1), static_cast<double>(samples) / o.sample_rate,
                                    " s of audio"));
    }
  }
  for (const char* split : {"train", "valid", "test"})
    SPT_CHECK(writer.clips_in(split) > 0, "the ", split, " split is empty: its recordings could not be decoded (",
              result.skipped, " skipped in all); add recordings or fix the bad ones");
  result.index = writer.finish("audio", o.sample_rate);
  return result;
}

PrepareResult prepare_text(const PrepareOptions& o) {
  SPT_CHECK(o.list_file.empty(), "--list names recordings; text takes one file");
  const std::vector<uint8_t> bytes = read_file_bytes(o.source);
  SPT_CHECK(!bytes.empty(), "'", o.source, "' is empty; expected a file of training bytes");
  const int64_t n = static_cast<int64_t>(bytes.size());
  const auto [train_end, valid_end] = enwik8_split(n);
  PreparedWriter writer(o.out, o.force);
  const int64_t bounds[4] = {0, train_end, valid_end, n};
  const char* names[3] = {"train", "valid", "test"};
  for (int s = 0; s < 3; ++s)
    if (bounds[s + 1] > bounds[s]) writer.add_clip(o.source, names[s], bytes.data() + bounds[s], bounds[s + 1] - bounds[s]);
  PrepareResult result;
  result.index = writer.finish("text", 0);
  return result;
}

}  // namespace

std::vector<std::string> audio_sources(const std::string& source, const std::string& list_file) {
  SPT_CHECK(source.empty() != list_file.empty(), "give one source: a recording, a directory or --list FILE");
  if (!list_file.empty()) return read_list(list_file);
  std::error_code ec;
  SPT_CHECK(fs::exists(source, ec), "'", source, "' does not exist");
  if (fs::is_directory(source, ec)) return list_directory(source);
  if (fs::path(source).extension() == ".txt") return read_list(source);
  return {source};
}

std::vector<std::string> assign_splits(int64_t n, uint64_t seed) {
  SPT_CHECK(n >= 3, n, " recording", n == 1 ? "" : "s", " given; at least 3 are needed so that train, valid and ",
            "test each get a whole clip");
  const int64_t held = std::max<int64_t>(1, n / 20);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) order[static_cast<size_t>(k)] = k;
  const uint64_t key = rng_key(seed, kSplitStream);
  for (int64_t k = n - 1; k > 0; --k) {  // Fisher-Yates
    const auto j = static_cast<int64_t>(uniform_int(key, static_cast<uint64_t>(k), static_cast<uint64_t>(k + 1)));
    std::swap(order[static_cast<size_t>(k)], order[static_cast<size_t>(j)]);
  }
  std::vector<std::string> splits(static_cast<size_t>(n), "train");
  for (int64_t k = 0; k < held; ++k) {
    splits[static_cast<size_t>(order[static_cast<size_t>(k)])] = "valid";
    splits[static_cast<size_t>(order[static_cast<size_t>(held + k)])] = "test";
  }
  return splits;
}

std::string prepare_modality(const PrepareOptions& options) {
  if (!options.modality.empty()) return options.modality;
  return options.list_file.empty() && !options.source.empty() && is_image_source(options.source) ? "image" : "audio";
}

PrepareResult prepare_dataset(const PrepareOptions& options) {
  SPT_CHECK(!options.out.empty(), "no output directory: use --out DIR");
  const std::string modality = prepare_modality(options);
  if (modality == "audio") return prepare_audio(options);
  if (modality == "text") return prepare_text(options);
  if (modality == "image") return prepare_images(options);
  throw Error(message("unknown --modality '", options.modality, "'; expected audio, text or image"));
}

}  // namespace spt
