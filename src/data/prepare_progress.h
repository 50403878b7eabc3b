// The progress line of `spt prepare` on stderr: "prepare: 12/40 clips, 3.5 s of audio".
// On a terminal it is rewritten in place after every item; otherwise (a log file) it is
// printed on a line of its own at every tenth of the work and at the end.
#pragma once

#include <cstddef>
#include <string>

namespace spt {

class PrepareProgress {
 public:
  // `unit` names the items ("clips", "images").
  PrepareProgress(bool enabled, size_t total, std::string unit);
  // `detail` follows the count after a comma when not empty.
  void update(size_t done, const std::string& detail = {});

 private:
  bool enabled_, terminal_;
  size_t total_, step_;
  size_t next_;
  std::string unit_;
};

}  // namespace spt
