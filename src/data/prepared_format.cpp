// The `prepared` format (data/prepared_index.h): index.json checked in full, then
// tokens.bin mapped and checked against its size and CRC-32 before any split points
// into it.
#include <filesystem>
#include <fstream>
#include <memory>

#include "core/error.h"
#include "data/formats.h"
#include "data/prepared_index.h"
#include "io/file_util.h"
#include "io/mapped_file.h"

namespace spt {
namespace {

nlohmann::json read_index_json(const std::string& path) {
  std::ifstream in(path);
  SPT_CHECK(in, "prepared: cannot read '", path, "'; expected the index.json written by `spt prepare`");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(message(path, ": not valid JSON (", e.what(), "); the prepared set is damaged: prepare it again"));
  }
}

void check_tokens_file(const MappedFile& tokens, const PreparedIndex& index, const std::string& index_path) {
  SPT_CHECK(tokens.size() == index.total_tokens, tokens.path(), ": ", tokens.size(), " bytes, but ", index_path,
            " records ", index.total_tokens, " tokens; the prepared set is damaged: prepare it again");
  const uint32_t crc = crc32_update(0, tokens.data(), tokens.size());
  SPT_CHECK(crc == index.tokens_crc32, tokens.path(), ": CRC-32 ", crc, " differs from ", index.tokens_crc32,
            " recorded in ", index_path, "; the prepared set is damaged: prepare it again");
}

// Points `split` at its images' range of the mapping.
void attach_images(TokenSplit& split, const PreparedIndex& index, const std::shared_ptr<const MappedFile>& tokens) {
  const int rank = split_rank(split.name);
  int64_t first = 0;
  for (int s = 0; s < rank; ++s) first += index.images[static_cast<size_t>(s)] * index.image.tokens();
  split.record_size = index.image.tokens();
  split.view_size = index.images[static_cast<size_t>(rank)] * index.image.tokens();
  split.view_owner = tokens;
  split.view = tokens->data() + first;
}

// Points `split` at its clips' range of the mapping.
void attach_split(TokenSplit& split, const PreparedIndex& index, const std::shared_ptr<const MappedFile>& tokens) {
  if (index.modality == "image") return attach_images(split, index, tokens);
  int64_t first = -1, end = 0;
  for (const PreparedClip& clip : index.clips) {
    if (clip.split != split.name) continue;
    if (first < 0) first = clip.offset;
    split.clips.push_back({clip.offset - first, clip.length});
    end = clip.offset + clip.length;
  }
  if (first < 0) return;
  split.view_owner = tokens;
  split.view = tokens->data() + first;
  split.view_size = end - first;
}

}  // namespace

Dataset load_prepared(const std::string& directory) {
  namespace fs = std::filesystem;
  std::error_code ec;
  SPT_CHECK(fs::is_directory(directory, ec), "prepared: '", directory,
            "' is not a directory; expected the output directory of `spt prepare`");
  const std::string index_path = (fs::path(directory) / kPreparedIndexFile).string();
  const PreparedIndex index = parse_prepared_index(read_index_json(index_path), index_path);
  const auto tokens = std::make_shared<const MappedFile>((fs::path(directory) / kPreparedTokensFile).string());
  check_tokens_file(*tokens, index, index_path);
  Dataset data;
  data.format = "prepared";
  data.path = directory;
  data.modality = index.modality;
  data.sample_rate = index.sample_rate;
  data.rows = index.image.height;
  data.cols = index.image.width;
  data.channels = index.image.channels;
  data.train.name = "train";
  data.valid.name = "valid";
  data.test.name = "test";
  for (TokenSplit* split : {&data.train, &data.valid, &data.test}) attach_split(*split, index, tokens);
  return data;
}

}  // namespace spt
