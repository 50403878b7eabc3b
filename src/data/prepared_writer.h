// Writes a prepared data set (data/prepared_index.h) the safe way: everything goes into
// a temporary sibling directory, is fsynced, and only then renamed to its name, so a
// reader never sees a half-written set. An existing set is replaced only when asked.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/prepared_index.h"
#include "io/file_util.h"

namespace spt {

// Refuses an existing `directory` unless `force`; even with `force`, only a prepared
// set or an empty directory is replaced (never another directory or a file).
void check_prepared_output(const std::string& directory, bool force);

class PreparedWriter {
 public:
  PreparedWriter(const std::string& directory, bool force);
  ~PreparedWriter();  // removes the temporary directory of an unfinished set
  PreparedWriter(const PreparedWriter&) = delete;
  PreparedWriter& operator=(const PreparedWriter&) = delete;

  // Appends a clip; clips come in split order (all train, then valid, then test).
  void add_clip(const std::string& name, const std::string& split, const uint8_t* tokens, int64_t length);
  int64_t clips_in(const std::string& split) const;
  // Appends `count` images of `shape` (every image of a set has the first one's shape);
  // pixels: (count, height, width, channels). Images come in split order too, and a set
  // holds either clips or images.
  void add_images(const std::string& split, const ImageShape& shape, const uint8_t* pixels, int64_t count);
  int64_t images_in(const std::string& split) const;
  // Writes index.json and renames the set into place; returns what it wrote. Image sets
  // finish as modality "image" with sample_rate 0.
  PreparedIndex finish(const std::string& modality, int sample_rate);

 private:
  std::string directory_, temp_;
  bool force_ = false, finished_ = false;
  std::unique_ptr<OutputFile> tokens_;
  PreparedIndex index_;
};

}  // namespace spt
