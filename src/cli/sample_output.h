// Where and how `spt sample` writes its sequences. The format follows the extension of
// --out through one table (sample_format_for): .png grids for image models, .wav for audio
// models, .raw/.bin raw bytes for any model, .txt/.text for text models; anything else is refused naming the
// formats that work. Without --out, text goes to stdout, and image or audio bytes go to stdout only
// when it is not a terminal.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace spt::cli {

enum class SampleModality { text, image, audio };
enum class SampleFormat { text, raw, png, wav };

// The format for `out` (empty: stdout). stdout_is_terminal refuses binary output there.
SampleFormat sample_format_for(const std::string& out, SampleModality modality, bool stdout_is_terminal);

// Text: the sequences as they are, each followed by a newline, with a header line between
// them when there are several. Raw: the bytes of every sequence back to back, nothing else.
// An empty path writes to stdout; a file is written atomically.
void write_text_samples(const std::string& path, const std::vector<std::vector<uint8_t>>& samples);
void write_raw_samples(const std::string& path, const std::vector<std::vector<uint8_t>>& samples);

}  // namespace spt::cli
