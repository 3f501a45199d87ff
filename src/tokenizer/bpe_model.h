// tokenizer/bpe_model.h — the tokenizer.json "BPE" model: vocab, ranked merges (as "a b" strings or
// [a, b] pairs), byte_fallback to <0xNN>, unk/fuse_unk, ignore_merges, continuing_subword_prefix and
// end_of_word_suffix. Words are merged with a rank-ordered heap over a linked list of symbols
// (O(n log n) per word) and cached per word.
#pragma once
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace qforge::tok {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using VocabMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  explicit BpeModel(const nlohmann::json& model);  // throws qforge::Error on malformed data

  // Appends the ids of one pre-tokenized word.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(int32_t id) const;  // nullptr when not in the vocab
  int64_t size() const { return static_cast<int64_t>(id_to_token_.size()); }
  bool byte_fallback() const { return byte_fallback_; }

 private:
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;

  VocabMap vocab_;
  std::vector<std::string> id_to_token_;  // dense by id ("" for holes)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (left, right) -> (rank, new id)
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string prefix_, suffix_;  // continuing_subword_prefix, end_of_word_suffix
  int32_t byte_ids_[256];        // ids of <0x00>..<0xFF>, -1 when absent

  static constexpr size_t kCacheMaxWordBytes = 256;
  static constexpr size_t kCacheMaxEntries = 1 << 16;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace qforge::tok
