#include "data/prepared_writer.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"

namespace spt {
namespace {

namespace fs = std::filesystem;

std::string trimmed(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

}  // namespace

void check_prepared_output(const std::string& directory, bool force) {
  std::error_code ec;
  if (!fs::exists(directory, ec)) return;
  SPT_CHECK(force, "'", directory, "' already exists; add --force to replace it or choose another --out");
  const bool prepared = fs::is_regular_file(fs::path(directory) / kPreparedIndexFile, ec);
  SPT_CHECK(fs::is_directory(directory, ec) && (prepared || fs::is_empty(directory, ec)), "'", directory,
            "' is not a prepared data set (no index.json) nor an empty directory; --force replaces only those");
}

PreparedWriter::PreparedWriter(const std::string& directory, bool force)
    : directory_(trimmed(directory)), force_(force) {
  SPT_CHECK(!directory_.empty(), "no output directory: use --out DIR");
  check_prepared_output(directory_, force_);
  temp_ = directory_ + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(temp_, ec);
  SPT_CHECK(fs::create_directories(temp_, ec), "cannot create '", temp_, "': ", ec.message());
  tokens_ = std::make_unique<OutputFile>((fs::path(temp_) / kPreparedTokensFile).string());
}

PreparedWriter::~PreparedWriter() {
  tokens_.reset();
  std::error_code ec;
  if (!finished_) fs::remove_all(temp_, ec);
}

void PreparedWriter::add_clip(const std::string& name, const std::string& split, const uint8_t* tokens,
                              int64_t length) {
  SPT_CHECK(!finished_, "the prepared set '", directory_, "' is already finished");
  SPT_CHECK(length >= 1, "clip '", name, "' holds no tokens");
  const int rank = split_rank(split);
  SPT_CHECK(rank >= 0, "clip '", name, "': unknown split '", split, "'");
  SPT_CHECK(index_.image.tokens() == 0, "clip '", name, "' added to a set of images");
  SPT_CHECK(index_.clips.empty() || split_rank(index_.clips.back().split) <= rank, "clip '", name, "' of split ",
            split, " comes after a later split; add clips in the order train, valid, test");
  tokens_->write(tokens, length);
  index_.clips.push_back({name, split, index_.total_tokens, length});
  index_.total_tokens += length;
}

void PreparedWriter::add_images(const std::string& split, const ImageShape& shape, const uint8_t* pixels,
                                int64_t count) {
  SPT_CHECK(!finished_, "the prepared set '", directory_, "' is already finished");
  SPT_CHECK(index_.clips.empty(), "images added to a set of clips");
  const int rank = split_rank(split);
  SPT_CHECK(rank >= 0, "images: unknown split '", split, "'");
  for (int later = rank + 1; later < 3; ++later)
    SPT_CHECK(index_.images[static_cast<size_t>(later)] == 0, "images of split ", split,
              " come after a later split; add images in the order train, valid, test");
  if (index_.image.tokens() == 0) {
    check_image_shape(shape, "image");
    index_.image = shape;
  }
  SPT_CHECK(shape == index_.image, "a ", shape.height, "x", shape.width, "x", shape.channels, " image added to a set of ",
            index_.image.height, "x", index_.image.width, "x", index_.image.channels, " images");
  tokens_->write(pixels, count * shape.tokens());
  index_.images[static_cast<size_t>(rank)] += count;
  index_.total_tokens += count * shape.tokens();
}

int64_t PreparedWriter::images_in(const std::string& split) const {
  const int rank = split_rank(split);
  return rank < 0 ? 0 : index_.images[static_cast<size_t>(rank)];
}

int64_t PreparedWriter::clips_in(const std::string& split) const {
  return std::count_if(index_.clips.begin(), index_.clips.end(),
                       [&](const PreparedClip& clip) { return clip.split == split; });
}

PreparedIndex PreparedWriter::finish(const std::string& modality, int sample_rate) {
  SPT_CHECK(!finished_, "the prepared set '", directory_, "' is already finished");
  SPT_CHECK((modality == "image") == (index_.image.tokens() > 0), "a set of ",
            index_.image.tokens() > 0 ? "images" : "clips", " cannot finish as modality '", modality, "'");
  index_.modality = modality;
  index_.sample_rate = sample_rate;
  index_.tokens_crc32 = tokens_->crc32();
  tokens_->sync_and_close();
  // The index is checked by the reader's own rules before it is written.
  const nlohmann::json json = to_json(index_);
  parse_prepared_index(json, directory_ + "/" + kPreparedIndexFile);
  const std::string text = json.dump(1) + "\n";
  OutputFile index_file((fs::path(temp_) / kPreparedIndexFile).string());
  index_file.write(text.data(), static_cast<int64_t>(text.size()));
  index_file.sync_and_close();
  sync_directory(temp_);
  check_prepared_output(directory_, force_);
  std::error_code ec;
  const std::string old = directory_ + ".old-" + std::to_string(::getpid());
  const bool replacing = fs::exists(directory_, ec);
  if (replacing) fs::rename(directory_, old);
  fs::rename(temp_, directory_);
  finished_ = true;
  sync_directory(parent_directory(directory_));
  if (replacing) fs::remove_all(old, ec);
  return index_;
}

}  // namespace spt
