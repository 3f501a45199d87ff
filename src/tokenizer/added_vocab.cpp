// tokenizer/added_vocab.cpp — byte trie for added tokens and the split rules of the Rust crate's
// AddedVocabulary::find_matches (see added_vocab.h).
#include "tokenizer/added_vocab.h"

#include <algorithm>
#include <utf8proc.h>

#include "tokenizer/text_util.h"

namespace qforge::tok {

void AddedTokenMatcher::add(int32_t id, std::string_view pattern, const AddedToken& props) {
  if (pattern.empty()) return;
  int32_t node = 0;
  for (unsigned char c : pattern) {
    auto& nx = nodes_[static_cast<size_t>(node)].next;
    auto it = std::lower_bound(nx.begin(), nx.end(), std::make_pair(c, int32_t{-1}),
                               [](auto& a, auto& b) { return a.first < b.first; });
    if (it != nx.end() && it->first == c) {
      node = it->second;
    } else {
      int32_t nn = static_cast<int32_t>(nodes_.size());
      nx.insert(it, {c, nn});
      nodes_.emplace_back();
      node = nn;
    }
  }
  first_byte_[static_cast<unsigned char>(pattern[0])] = true;
  AddedToken t = props;
  t.id = id;
  auto& slot = nodes_[static_cast<size_t>(node)].token;
  if (slot >= 0) tokens_[static_cast<size_t>(slot)] = t;  // same content twice: the later one wins
  else {
    slot = static_cast<int32_t>(tokens_.size());
    tokens_.push_back(t);
  }
}

namespace {
bool is_word_char(char32_t c) {
  if (c == '_' || is_alphanumeric(c)) return true;
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_MC || cat == UTF8PROC_CATEGORY_ME ||
         cat == UTF8PROC_CATEGORY_PC || c == 0x200C || c == 0x200D;
}
char32_t last_char(std::string_view s) {
  size_t k = s.size() - 1;
  while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
  size_t n;
  return utf8_decode(s, k, n);
}
}  // namespace

std::vector<Segment> AddedTokenMatcher::split(std::string_view s) const {
  std::vector<Segment> out;
  if (empty()) {
    if (!s.empty()) out.push_back({-1, s, 0});
    return out;
  }
  size_t start_offset = 0;  // end of the previous match
  size_t i = 0;
  while (i < s.size()) {
    if (!first_byte_[static_cast<unsigned char>(s[i])]) {
      ++i;
      continue;
    }
    // Longest added token starting at i.
    int32_t node = 0, best = -1;
    size_t best_end = 0;
    for (size_t k = i; k < s.size(); ++k) {
      auto& nx = nodes_[static_cast<size_t>(node)].next;
      auto c = static_cast<unsigned char>(s[k]);
      auto it = std::lower_bound(nx.begin(), nx.end(), std::make_pair(c, int32_t{-1}),
                                 [](auto& a, auto& b) { return a.first < b.first; });
      if (it == nx.end() || it->first != c) break;
      node = it->second;
      if (nodes_[static_cast<size_t>(node)].token >= 0) {
        best = nodes_[static_cast<size_t>(node)].token;
        best_end = k + 1;
      }
    }
    if (best < 0) {
      ++i;
      continue;
    }
    const AddedToken& t = tokens_[static_cast<size_t>(best)];
    size_t start = i, stop = best_end;
    i = best_end;  // matches never overlap, even when this one is rejected below
    if (t.single_word) {
      bool start_space = start == 0 || !is_word_char(last_char(s.substr(0, start)));
      size_t n = 0;
      bool stop_space = stop == s.size() || !is_word_char(utf8_decode(s, stop, n));
      if (!start_space || !stop_space) continue;
    }
    if (t.lstrip) {
      size_t ns = start;
      while (ns > 0) {
        size_t k = ns - 1;
        while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
        size_t n;
        if (!is_whitespace(utf8_decode(s, k, n))) break;
        ns = k;
      }
      start = std::max(ns, start_offset);
    }
    if (t.rstrip) {
      size_t n;
      while (stop < s.size() && is_whitespace(utf8_decode(s, stop, n))) stop += n;
      i = stop;
    }
    if (start_offset < start) out.push_back({-1, s.substr(start_offset, start - start_offset), start_offset});
    out.push_back({t.id, {}, start});
    start_offset = stop;
  }
  if (start_offset < s.size()) out.push_back({-1, s.substr(start_offset), start_offset});
  return out;
}

}  // namespace qforge::tok
