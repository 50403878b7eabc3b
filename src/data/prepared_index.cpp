#include "data/prepared_index.h"

#include <array>

#include "core/error.h"

namespace spt {
namespace {

constexpr std::array<const char*, 3> kSplits = {"train", "valid", "test"};

template <typename Value>
Value field(const nlohmann::json& json, const char* key, const std::string& where) {
  SPT_CHECK(json.is_object() && json.contains(key), where, ": '", key, "' is missing");
  try {
    return json.at(key).get<Value>();
  } catch (const nlohmann::json::exception&) {
    throw Error(message(where, ": '", key, "' has the wrong type: ", json.at(key).dump()));
  }
}

PreparedClip parse_clip(const nlohmann::json& json, size_t k, const std::string& where) {
  const std::string at = message(where, ": clip ", k);
  PreparedClip clip;
  clip.name = field<std::string>(json, "name", at);
  clip.split = field<std::string>(json, "split", at);
  clip.offset = field<int64_t>(json, "offset", at);
  clip.length = field<int64_t>(json, "length", at);
  SPT_CHECK(split_rank(clip.split) >= 0, at, " ('", clip.name, "'): split '", clip.split,
            "' is not train, valid or test");
  SPT_CHECK(clip.length >= 1, at, " ('", clip.name, "'): length ", clip.length, " must be at least 1");
  return clip;
}

}  // namespace

int split_rank(const std::string& split) {
  for (size_t k = 0; k < kSplits.size(); ++k)
    if (split == kSplits[k]) return static_cast<int>(k);
  return -1;
}

nlohmann::json to_json(const PreparedIndex& index) {
  nlohmann::json clips = nlohmann::json::array();
  nlohmann::json splits = nlohmann::json::object();
  for (const char* split : kSplits) splits[split] = {{"clips", 0}, {"tokens", 0}};
  for (const PreparedClip& c : index.clips) {
    clips.push_back({{"name", c.name}, {"offset", c.offset}, {"length", c.length}, {"split", c.split}});
    splits[c.split]["clips"] = splits[c.split]["clips"].get<int64_t>() + 1;
    splits[c.split]["tokens"] = splits[c.split]["tokens"].get<int64_t>() + c.length;
  }
  return {{"format", kPreparedFormat}, {"version", kPreparedVersion}, {"modality", index.modality},
          {"encoding", index.encoding()}, {"sample_rate", index.sample_rate}, {"tokens_file", kPreparedTokensFile},
          {"total_tokens", index.total_tokens}, {"tokens_crc32", index.tokens_crc32}, {"splits", splits},
          {"clips", clips}};
}

PreparedIndex parse_prepared_index(const nlohmann::json& json, const std::string& where) {
  SPT_CHECK(json.is_object(), where, ": expected a JSON object");
  const std::string format = field<std::string>(json, "format", where);
  SPT_CHECK(format == kPreparedFormat, where, ": format '", format, "' is not '", kPreparedFormat, "'");
  const int version = field<int>(json, "version", where);
  SPT_CHECK(version == kPreparedVersion, where, ": version ", version, " is not ", kPreparedVersion,
            " (written by another spt; prepare the data again)");
  PreparedIndex index;
  index.modality = field<std::string>(json, "modality", where);
  SPT_CHECK(index.modality == "audio" || index.modality == "text", where, ": modality '", index.modality,
            "' is not audio or text");
  index.sample_rate = field<int>(json, "sample_rate", where);
  if (index.modality == "audio")
    SPT_CHECK(index.sample_rate >= 1 && index.sample_rate <= kMaxSampleRate, where, ": sample_rate ",
              index.sample_rate, " is outside 1..", kMaxSampleRate);
  else
    SPT_CHECK(index.sample_rate == 0, where, ": a text set has sample_rate ", index.sample_rate, ", expected 0");
  const std::string encoding = field<std::string>(json, "encoding", where);
  SPT_CHECK(encoding == index.encoding(), where, ": encoding '", encoding, "' is not '", index.encoding(),
            "' of ", index.modality);
  SPT_CHECK(field<std::string>(json, "tokens_file", where) == kPreparedTokensFile, where, ": tokens_file is not '",
            kPreparedTokensFile, "'");
  index.total_tokens = field<int64_t>(json, "total_tokens", where);
  index.tokens_crc32 = field<uint32_t>(json, "tokens_crc32", where);
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
  SPT_CHECK(to_json(index) == json, where, ": the split totals or another field disagree with the clips");
  return index;
}

}  // namespace spt
