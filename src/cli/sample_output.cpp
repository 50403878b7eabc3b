#include "cli/sample_output.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "io/file_util.h"

namespace spt::cli {
namespace {

struct FormatRule {
  const char* extension;
  SampleFormat format;
  bool text_models, image_models, audio_models;
};

// One row per extension: a new output format (audio, ...) is one more row and one more
// writer in `spt sample`.
constexpr FormatRule kFormats[] = {
    {".png", SampleFormat::png, false, true, false},
    {".wav", SampleFormat::wav, false, false, true},
    {".raw", SampleFormat::raw, true, true, true},
    {".bin", SampleFormat::raw, true, true, true},
    {".txt", SampleFormat::text, true, false, false},
    {".text", SampleFormat::text, true, false, false},
};

bool accepts(const FormatRule& rule, SampleModality modality) {
  switch (modality) {
    case SampleModality::text: return rule.text_models;
    case SampleModality::image: return rule.image_models;
    case SampleModality::audio: return rule.audio_models;
  }
  return false;
}

std::string extension_of(const std::string& path) {
  const size_t slash = path.find_last_of('/'), dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string ext = path.substr(dot);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

std::string working_extensions(SampleModality modality) {
  std::string list;
  for (const FormatRule& rule : kFormats)
    if (accepts(rule, modality)) list += (list.empty() ? "" : ", ") + std::string(rule.extension);
  return list;
}

const char* modality_name(SampleModality modality) {
  switch (modality) {
    case SampleModality::text: return "a text";
    case SampleModality::image: return "an image";
    case SampleModality::audio: return "an audio";
  }
  return "this";
}

void write_bytes(const std::string& path, const std::string& bytes, const std::string& what) {
  if (path.empty()) {
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    std::fflush(stdout);
    return;
  }
  write_file_atomically(path, [&](OutputFile& out) { out.write(bytes.data(), static_cast<int64_t>(bytes.size())); });
  std::printf("wrote %s to %s\n", what.c_str(), path.c_str());
}

}  // namespace

SampleFormat sample_format_for(const std::string& out, SampleModality modality, bool stdout_is_terminal) {
  if (out.empty()) {
    SPT_CHECK(modality == SampleModality::text || !stdout_is_terminal,
              modality == SampleModality::image
                  ? "image samples are binary and stdout is a terminal: use --out samples.png for a picture (or .raw "
                    "for the bytes), or redirect stdout"
                  : "audio samples are binary and stdout is a terminal: use --out clip.wav to listen (or .raw for the "
                    "mu-law bytes), or redirect stdout");
    return modality == SampleModality::text ? SampleFormat::text : SampleFormat::raw;
  }
  const std::string ext = extension_of(out);
  for (const FormatRule& rule : kFormats)
    if (ext == rule.extension) {
      SPT_CHECK(accepts(rule, modality), "--out '", out, "': ", ext, " does not fit ", modality_name(modality),
                " model; use ", working_extensions(modality));
      return rule.format;
    }
  throw Error(message("--out '", out, "': unknown output format '", ext.empty() ? "(no extension)" : ext, "' for ",
                      modality_name(modality), " model; use ", working_extensions(modality)));
}

void write_text_samples(const std::string& path, const std::vector<std::vector<uint8_t>>& samples) {
  std::string text;
  for (size_t s = 0; s < samples.size(); ++s) {
    if (samples.size() > 1) text += "----- sample " + std::to_string(s + 1) + " -----\n";
    text.append(samples[s].begin(), samples[s].end());
    text += "\n";
  }
  write_bytes(path, text, std::to_string(samples.size()) + " samples");
}

void write_raw_samples(const std::string& path, const std::vector<std::vector<uint8_t>>& samples) {
  std::string bytes;
  for (const auto& s : samples) bytes.append(s.begin(), s.end());
  write_bytes(path, bytes, std::to_string(samples.size()) + " samples (" + std::to_string(bytes.size()) + " bytes)");
}

}  // namespace spt::cli
