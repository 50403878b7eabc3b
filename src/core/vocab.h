// The token alphabet every modality shares: one byte per token (text bytes, 8-bit
// pixels, 8-bit mu-law samples), so the embedding, the output head and the data all
// agree on V without depending on one another.
#pragma once

namespace spt {

inline constexpr int kVocab = 256;  // V

}  // namespace spt
