// tokenizer/added_vocab.h — tokenizer.json "added_tokens": the tokens that are matched in the raw
// (or normalized) text before the model runs, honouring special, normalized, lstrip, rstrip and
// single_word, with leftmost-longest matching as the Rust crate's Aho-Corasick does.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace qforge::tok {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false, normalized = false, lstrip = false, rstrip = false, single_word = false;
};

// A text segment after splitting on added tokens: either an added token id or a run of text.
struct Segment {
  int32_t id = -1;       // >= 0: an added token
  std::string_view text;  // the text run (empty for tokens)
  size_t offset = 0;      // byte offset of the segment in the split string
};

class AddedTokenMatcher {
 public:
  void add(int32_t id, std::string_view pattern, const AddedToken& props);
  bool empty() const { return nodes_.size() <= 1; }
  // Splits `s` on the added tokens (lstrip/rstrip swallow adjacent whitespace into the token).
  std::vector<Segment> split(std::string_view s) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> next;  // sorted by byte
    int32_t token = -1;                                     // index into tokens_
  };
  std::vector<Node> nodes_{1};
  std::vector<AddedToken> tokens_;
  bool first_byte_[256] = {};
};

}  // namespace qforge::tok
