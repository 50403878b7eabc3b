#include "data/image_splits.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "data/formats.h"
#include "data/prepare.h"

namespace spt {
namespace {

bool named(const std::string& lower, const std::string& word) {
  if (lower.rfind(word, 0) != 0) return false;
  if (lower.size() == word.size()) return true;
  const char next = lower[word.size()];
  return next == '_' || next == '-' || next == '.' || std::isdigit(static_cast<unsigned char>(next));
}

size_t digits_end(const std::string& s, size_t at) {
  while (at < s.size() && std::isdigit(static_cast<unsigned char>(s[at]))) ++at;
  return at;
}

}  // namespace

ImageTag image_tag(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (named(lower, "train")) return ImageTag::train;
  if (named(lower, "test")) return ImageTag::test;
  for (const char* word : {"validation", "valid", "val"})
    if (named(lower, word)) return ImageTag::val;
  return ImageTag::none;
}

bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      const size_t ie = digits_end(a, i), je = digits_end(b, j);
      const size_t is = a.find_first_not_of('0', i), js = b.find_first_not_of('0', j);
      const size_t ia = std::min(is, ie), ja = std::min(js, je);  // leading zeros dropped
      if (ie - ia != je - ja) return ie - ia < je - ja;
      const int order = a.compare(ia, ie - ia, b, ja, je - ja);
      if (order != 0) return order < 0;
      i = ie, j = je;
      continue;
    }
    if (a[i] != b[j]) return a[i] < b[j];
    ++i, ++j;
  }
  if ((a.size() - i) != (b.size() - j)) return a.size() - i < b.size() - j;
  return a < b;
}

std::vector<uint8_t> plan_image_splits(const std::vector<ImageTag>& tags, uint64_t seed,
                                       const std::function<std::string(int64_t)>& name_of) {
  const auto n = static_cast<int64_t>(tags.size());
  int64_t count[4] = {0, 0, 0, 0};
  for (ImageTag t : tags) ++count[static_cast<int>(t)];
  const int distinct = static_cast<int>(std::count_if(count, count + 4, [](int64_t c) { return c > 0; }));
  std::vector<uint8_t> ranks(static_cast<size_t>(n), 0);
  if (distinct <= 1) {
    const std::vector<std::string> splits = assign_splits(n, seed);
    for (size_t k = 0; k < splits.size(); ++k) ranks[k] = static_cast<uint8_t>(split_rank(splits[k]));
    return ranks;
  }
  const auto first = [&](ImageTag tag) { return std::find(tags.begin(), tags.end(), tag) - tags.begin(); };
  SPT_CHECK(count[0] == 0, "'", name_of(first(ImageTag::none)), "' is in no train, val or test folder or file while ",
            "others are; put every image under one of them, or none");
  SPT_CHECK(count[1] > 0, "'", name_of(0), "' and the rest are val or test images, but there is no train folder or file");
  const bool both = count[2] > 0 && count[3] > 0;
  const int64_t held = both ? 0 : validation_images(count[1]);
  SPT_CHECK(both || held >= 1, count[1], " training images under train; at least 12 are needed to hold out 1/12 ",
            "for validation");
  int64_t train_seen = 0;
  for (int64_t k = 0; k < n; ++k) {
    uint8_t& rank = ranks[static_cast<size_t>(k)];
    switch (tags[static_cast<size_t>(k)]) {
      case ImageTag::train: rank = ++train_seen > count[1] - held ? 1 : 0; break;
      case ImageTag::val: rank = both ? 1 : 2; break;
      default: rank = 2; break;
    }
  }
  return ranks;
}

}  // namespace spt
