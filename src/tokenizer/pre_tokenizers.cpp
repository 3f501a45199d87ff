// tokenizer/pre_tokenizers.cpp — tokenizer.json pre-tokenizers: ByteLevel, Split (String/Regex,
// all five behaviours, invert), Metaspace, Digits, Punctuation, Whitespace, WhitespaceSplit,
// BertPreTokenizer and Sequence. Splitting follows NormalizedString::split in the Rust crate.
#include <functional>

#include "qforge/status.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/text_util.h"

namespace qforge::tok {
namespace {

using nlohmann::json;

enum class Behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

Behavior parse_behavior(const std::string& b) {
  if (b == "Removed") return Behavior::removed;
  if (b == "Isolated") return Behavior::isolated;
  if (b == "MergedWithPrevious") return Behavior::merged_with_previous;
  if (b == "MergedWithNext") return Behavior::merged_with_next;
  if (b == "Contiguous") return Behavior::contiguous;
  throw Error("tokenizer.json: unknown split behavior '" + b + "'");
}

struct Span {
  size_t a, b;
  bool match;
};

// Turns sorted, non-overlapping matches into spans covering all of [0, n).
std::vector<Span> cover(const std::vector<std::pair<size_t, size_t>>& matches, size_t n, bool invert) {
  std::vector<Span> out;
  size_t prev = 0;
  for (auto [a, b] : matches) {
    if (prev < a) out.push_back({prev, a, invert});
    out.push_back({a, b, !invert});
    prev = b;
  }
  if (prev < n) out.push_back({prev, n, invert});
  return out;
}

// Applies a split behaviour to `piece` given its match spans, appending the resulting pieces.
void split_piece(const Piece& piece, std::vector<Span> spans, Behavior behavior, std::vector<Piece>& out) {
  std::vector<Span> keep;  // `match` here means "remove"
  switch (behavior) {
    case Behavior::isolated:
      for (auto& s : spans) keep.push_back({s.a, s.b, false});
      break;
    case Behavior::removed:
      keep = std::move(spans);
      break;
    case Behavior::contiguous: {
      bool prev_match = false;
      for (auto& s : spans) {
        if (s.match == prev_match && !keep.empty()) keep.back().b = s.b;
        else keep.push_back({s.a, s.b, false});
        prev_match = s.match;
      }
      break;
    }
    case Behavior::merged_with_previous: {
      bool prev_match = false;
      for (auto& s : spans) {
        if (s.match && !prev_match && !keep.empty()) keep.back().b = s.b;
        else keep.push_back({s.a, s.b, false});
        prev_match = s.match;
      }
      break;
    }
    case Behavior::merged_with_next: {
      bool prev_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->match && !prev_match && !keep.empty()) keep.back().a = it->a;
        else keep.push_back({it->a, it->b, false});
        prev_match = it->match;
      }
      std::reverse(keep.begin(), keep.end());
      break;
    }
  }
  for (auto& s : keep) {
    if (s.match || s.b <= s.a) continue;
    out.push_back({piece.text.substr(s.a, s.b - s.a), piece.at_start && s.a == 0});
  }
}

// Matches of single characters satisfying `pred`, each its own match.
std::vector<std::pair<size_t, size_t>> char_matches(const std::string& s, const std::function<bool(char32_t)>& pred) {
  std::vector<std::pair<size_t, size_t>> m;
  for (size_t i = 0, n; i < s.size(); i += n) {
    char32_t c = utf8_decode(s, i, n);
    if (pred(c)) m.emplace_back(i, i + n);
  }
  return m;
}

template <class F>
void for_each_piece(std::vector<Piece>& pieces, F&& f) {
  std::vector<Piece> out;
  out.reserve(pieces.size());
  for (auto& p : pieces) f(p, out);
  pieces = std::move(out);
}

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPre : public PreTokenizer {
 public:
  ByteLevelPre(bool add_prefix_space, bool use_regex) : prefix_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Regex>(kGpt2Pattern);
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      if (prefix_ && !p.text.empty() && p.text[0] != ' ') p.text.insert(0, " ");
      size_t first = out.size();
      if (regex_) split_piece(p, cover(regex_->find_all(p.text), p.text.size(), false), Behavior::isolated, out);
      else if (!p.text.empty()) out.push_back(std::move(p));
      for (size_t k = first; k < out.size(); ++k) {
        std::string mapped;
        mapped.reserve(out[k].text.size() * 2);
        for (unsigned char b : out[k].text) utf8_append(mapped, byte_to_unicode(b));
        out[k].text = std::move(mapped);
      }
    });
  }

 private:
  bool prefix_;
  std::unique_ptr<Regex> regex_;
};

class SplitPre : public PreTokenizer {
 public:
  SplitPre(const json& pattern, Behavior behavior, bool invert) : behavior_(behavior), invert_(invert) {
    if (pattern.contains("String")) literal_ = pattern["String"].get<std::string>();
    else if (pattern.contains("Regex")) regex_ = std::make_unique<Regex>(pattern["Regex"].get<std::string>());
    else throw Error("tokenizer.json: Split pattern must be {\"String\":...} or {\"Regex\":...}");
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      std::vector<std::pair<size_t, size_t>> m;
      if (regex_) {
        m = regex_->find_all(p.text);
      } else if (!literal_.empty()) {
        size_t at = 0;
        while ((at = p.text.find(literal_, at)) != std::string::npos) {
          m.emplace_back(at, at + literal_.size());
          at += literal_.size();
        }
      }
      split_piece(p, cover(m, p.text.size(), invert_), behavior_, out);
    });
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
  Behavior behavior_;
  bool invert_;
};

class MetaspacePre : public PreTokenizer {
 public:
  MetaspacePre(std::string replacement, PrependScheme scheme, bool split)
      : rep_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      std::string s;
      s.reserve(p.text.size() + 8);
      for (char c : p.text) {
        if (c == ' ') s += rep_;
        else s += c;
      }
      bool starts = s.compare(0, rep_.size(), rep_) == 0;
      if (!s.empty() && !starts &&
          (scheme_ == PrependScheme::always || (scheme_ == PrependScheme::first && p.at_start)))
        s.insert(0, rep_);
      Piece np{std::move(s), p.at_start};
      if (!split_) {
        if (!np.text.empty()) out.push_back(std::move(np));
        return;
      }
      std::vector<std::pair<size_t, size_t>> m;
      for (size_t at = 0; (at = np.text.find(rep_, at)) != std::string::npos; at += rep_.size())
        m.emplace_back(at, at + rep_.size());
      split_piece(np, cover(m, np.text.size(), false), Behavior::merged_with_next, out);
    });
  }

 private:
  std::string rep_;
  PrependScheme scheme_;
  bool split_;
};

class CharClassPre : public PreTokenizer {
 public:
  CharClassPre(std::function<bool(char32_t)> pred, Behavior behavior) : pred_(std::move(pred)), behavior_(behavior) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      split_piece(p, cover(char_matches(p.text, pred_), p.text.size(), false), behavior_, out);
    });
  }

 private:
  std::function<bool(char32_t)> pred_;
  Behavior behavior_;
};

class WhitespacePre : public PreTokenizer {
 public:
  WhitespacePre() : regex_(R"(\w+|[^\w\s]+)") {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      split_piece(p, cover(regex_.find_all(p.text), p.text.size(), true), Behavior::removed, out);
    });
  }

 private:
  Regex regex_;
};

class SequencePre : public PreTokenizer {
 public:
  explicit SequencePre(std::vector<std::unique_ptr<PreTokenizer>> v) : items_(std::move(v)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (auto& p : items_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> items_;
};

PrependScheme metaspace_scheme(const json& j) {
  if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
    std::string s = j["prepend_scheme"];
    if (s == "always") return PrependScheme::always;
    if (s == "first") return PrependScheme::first;
    if (s == "never") return PrependScheme::never;
    throw Error("tokenizer.json: unknown Metaspace prepend_scheme '" + s + "'");
  }
  return j.value("add_prefix_space", true) ? PrependScheme::always : PrependScheme::never;
}

}  // namespace

std::unique_ptr<PreTokenizer> make_metaspace(const std::string& replacement, PrependScheme scheme, bool split) {
  return std::make_unique<MetaspacePre>(replacement, scheme, split);
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j) {
  if (j.is_null()) return nullptr;
  std::string type = j.value("type", "");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> v;
    for (auto& e : j.at("pretokenizers"))
      if (auto p = make_pre_tokenizer(e)) v.push_back(std::move(p));
    return std::make_unique<SequencePre>(std::move(v));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelPre>(j.value("add_prefix_space", true), j.value("use_regex", true));
  if (type == "Split")
    return std::make_unique<SplitPre>(j.at("pattern"), parse_behavior(j.at("behavior").get<std::string>()),
                                      j.value("invert", false));
  if (type == "Metaspace") {
    std::string rep = j.contains("replacement") ? j["replacement"].get<std::string>() : "\xE2\x96\x81";
    return std::make_unique<MetaspacePre>(rep, metaspace_scheme(j), j.value("split", true));
  }
  if (type == "Digits") {
    bool individual = j.value("individual_digits", false);
    return std::make_unique<CharClassPre>([](char32_t c) { return c >= '0' && c <= '9'; },
                                          individual ? Behavior::isolated : Behavior::contiguous);
  }
  if (type == "Punctuation") {
    Behavior b = j.contains("behavior") ? parse_behavior(j["behavior"].get<std::string>()) : Behavior::isolated;
    return std::make_unique<CharClassPre>(is_punctuation, b);
  }
  if (type == "WhitespaceSplit") return std::make_unique<CharClassPre>(is_whitespace, Behavior::removed);
  if (type == "Whitespace") return std::make_unique<WhitespacePre>();
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> v;
    v.push_back(std::make_unique<CharClassPre>(is_whitespace, Behavior::removed));
    v.push_back(std::make_unique<CharClassPre>(is_punctuation, Behavior::isolated));
    return std::make_unique<SequencePre>(std::move(v));
  }
  throw Error("tokenizer.json: unsupported pre_tokenizer type '" + type + "'");
}

}  // namespace qforge::tok
