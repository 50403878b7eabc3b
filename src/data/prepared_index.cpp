#include "data/prepared_index.h"

#include "core/error.h"
#include "io/json_limits.h"

namespace spt {
namespace {

constexpr std::array<const char*, 3> kSplits = {"train", "valid", "test"};

const nlohmann::json& member(const nlohmann::json& json, const char* key, const std::string& where) {
  SPT_CHECK(json.is_object() && json.contains(key), where, ": '", key, "' is missing");
  return json.at(key);
}

std::string string_field(const nlohmann::json& json, const char* key, const std::string& where) {
  const nlohmann::json& value = member(json, key, where);
  SPT_CHECK(value.is_string(), where, ": '", key, "' must be a string, got ", json_excerpt(value));
  return value.get<std::string>();
}

int64_t integer_field(const nlohmann::json& json, const char* key, int64_t min, int64_t max, const std::string& where) {
  return json_integer(member(json, key, where), key, min, max, where);
}

PreparedClip parse_clip(const nlohmann::json& json, size_t k, const std::string& where) {
  const std::string at = message(where, ": clip ", k);
  PreparedClip clip;
  clip.name = string_field(json, "name", at);
  clip.split = string_field(json, "split", at);
  clip.offset = integer_field(json, "offset", 0, INT64_MAX, at);
  clip.length = integer_field(json, "length", 1, INT64_MAX, at);
  SPT_CHECK(split_rank(clip.split) >= 0, at, " ('", clip.name, "'): split '", clip.split,
            "' is not train, valid or test");
  return clip;
}

void parse_clips(const nlohmann::json& json, PreparedIndex& index, const std::string& where) {
  const auto& clips = json.contains("clips") ? json.at("clips") : nlohmann::json();
  SPT_CHECK(clips.is_array(), where, ": 'clips' is missing or not an array");
  int64_t end = 0;
  int rank = 0;
  for (size_t k = 0; k < clips.size(); ++k) {
    PreparedClip clip = parse_clip(clips[k], k, where);
    SPT_CHECK(clip.offset == end, where, ": clip ", k, " ('", clip.name, "') starts at ", clip.offset,
              ", expected ", end, " (clips must tile tokens.bin in order)");
    SPT_CHECK(split_rank(clip.split) >= rank, where, ": clip ", k, " ('", clip.name, "') of split ", clip.split,
              " comes after a later split (the order is train, valid, test)");
    SPT_CHECK(clip.length <= index.total_tokens - end, where, ": clip ", k, " ('", clip.name,
              "') runs past total_tokens ", index.total_tokens);
    rank = split_rank(clip.split);
    end += clip.length;
    index.clips.push_back(std::move(clip));
  }
  SPT_CHECK(end == index.total_tokens, where, ": the clips hold ", end, " tokens but total_tokens is ",
            index.total_tokens);
}

// The shape, then each split's image count, bounded so that no product overflows.
void parse_images(const nlohmann::json& json, PreparedIndex& index, const std::string& where) {
  const nlohmann::json& image = member(json, "image", where);
  const std::string at = where + ": image";
  index.image.height = static_cast<int>(integer_field(image, "height", 1, kMaxImageSide, at));
  index.image.width = static_cast<int>(integer_field(image, "width", 1, kMaxImageSide, at));
  index.image.channels = static_cast<int>(integer_field(image, "channels", 1, 3, at));
  check_image_shape(index.image, at);
  const nlohmann::json& splits = member(json, "splits", where);
  const int64_t per_image = index.image.tokens();
  int64_t images = 0;
  for (size_t s = 0; s < kSplits.size(); ++s) {
    const std::string split_where = message(where, ": splits.", kSplits[s]);
    index.images[s] = integer_field(member(splits, kSplits[s], where + ": splits"), "images", 0,
                                    index.total_tokens / per_image, split_where);
    images += index.images[s];
  }
  SPT_CHECK(images <= index.total_tokens / per_image && images * per_image == index.total_tokens, where, ": ",
            images, " images of ", per_image, " tokens do not make total_tokens ", index.total_tokens);
}

}  // namespace

int split_rank(const std::string& split) {
  for (size_t k = 0; k < kSplits.size(); ++k)
    if (split == kSplits[k]) return static_cast<int>(k);
  return -1;
}

const char* split_name(int rank) { return kSplits.at(static_cast<size_t>(rank)); }

std::string PreparedIndex::encoding() const {
  if (modality == "audio") return "mulaw8";
  return modality == "image" ? "pixels8" : "bytes";
}

void check_image_shape(const ImageShape& shape, const std::string& where) {
  SPT_CHECK(shape.height >= 1 && shape.height <= kMaxImageSide && shape.width >= 1 && shape.width <= kMaxImageSide,
            where, ": ", shape.height, "x", shape.width, " pixels; each side must be 1..", kMaxImageSide);
  SPT_CHECK(shape.channels == 1 || shape.channels == 3, where, ": ", shape.channels,
            " channels; expected 1 (grey) or 3 (RGB)");
  SPT_CHECK(shape.tokens() <= kMaxImageTokens, where, ": a ", shape.height, "x", shape.width, "x", shape.channels,
            " image is ", shape.tokens(), " tokens, more than the ", kMaxImageTokens, " spt prepares");
}

nlohmann::json to_json(const PreparedIndex& index) {
  nlohmann::json out = {{"format", kPreparedFormat},       {"version", kPreparedVersion},
                        {"modality", index.modality},      {"encoding", index.encoding()},
                        {"sample_rate", index.sample_rate}, {"tokens_file", kPreparedTokensFile},
                        {"total_tokens", index.total_tokens}, {"tokens_crc32", index.tokens_crc32}};
  nlohmann::json splits = nlohmann::json::object();
  if (index.modality == "image") {
    out["image"] = {{"height", index.image.height}, {"width", index.image.width}, {"channels", index.image.channels}};
    for (size_t s = 0; s < kSplits.size(); ++s)
      splits[kSplits[s]] = {{"images", index.images[s]}, {"tokens", index.images[s] * index.image.tokens()}};
    out["splits"] = splits;
    return out;
  }
  nlohmann::json clips = nlohmann::json::array();
  for (const char* split : kSplits) splits[split] = {{"clips", 0}, {"tokens", 0}};
  for (const PreparedClip& c : index.clips) {
    clips.push_back({{"name", c.name}, {"offset", c.offset}, {"length", c.length}, {"split", c.split}});
    splits[c.split]["clips"] = splits[c.split]["clips"].get<int64_t>() + 1;
    splits[c.split]["tokens"] = splits[c.split]["tokens"].get<int64_t>() + c.length;
  }
  out["splits"] = splits;
  out["clips"] = clips;
  return out;
}

PreparedIndex parse_prepared_index(const nlohmann::json& json, const std::string& where) {
  SPT_CHECK(json.is_object(), where, ": expected a JSON object");
  const std::string format = string_field(json, "format", where);
  SPT_CHECK(format == kPreparedFormat, where, ": format '", format, "' is not '", kPreparedFormat, "'");
  const int64_t version = integer_field(json, "version", 0, INT64_MAX, where);
  SPT_CHECK(version == kPreparedVersion, where, ": version ", version, " is not ", kPreparedVersion,
            " (written by another spt; prepare the data again)");
  PreparedIndex index;
  index.modality = string_field(json, "modality", where);
  SPT_CHECK(index.modality == "audio" || index.modality == "text" || index.modality == "image", where,
            ": modality '", index.modality, "' is not audio, text or image");
  const bool audio = index.modality == "audio";
  index.sample_rate = static_cast<int>(integer_field(json, "sample_rate", audio ? 1 : 0, audio ? kMaxSampleRate : 0,
                                                     where));
  const std::string encoding = string_field(json, "encoding", where);
  SPT_CHECK(encoding == index.encoding(), where, ": encoding '", encoding, "' is not '", index.encoding(),
            "' of ", index.modality);
  SPT_CHECK(string_field(json, "tokens_file", where) == kPreparedTokensFile, where, ": tokens_file is not '",
            kPreparedTokensFile, "'");
  index.total_tokens = integer_field(json, "total_tokens", 0, INT64_MAX, where);
  index.tokens_crc32 = static_cast<uint32_t>(integer_field(json, "tokens_crc32", 0, 0xFFFFFFFF, where));
  if (index.modality == "image") parse_images(json, index, where);
  else parse_clips(json, index, where);
  SPT_CHECK(to_json(index) == json, where, ": the split totals or another field disagree with the ",
            index.modality == "image" ? "image counts" : "clips");
  return index;
}

}  // namespace spt
