// tokenizer/normalizers.cpp — tokenizer.json normalizers: NFC/NFD/NFKC/NFKD (utf8proc), Lowercase,
// Prepend, Replace (string or regex), Strip, StripAccents, ByteLevel, BertNormalizer and Sequence.
#include <utf8proc.h>

#include <cstdlib>

#include "qforge/status.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/text_util.h"

namespace qforge::tok {
namespace {

using nlohmann::json;

class UnicodeNorm : public Normalizer {
 public:
  explicit UnicodeNorm(int options) : options_(options) {}
  void normalize(std::string& s) const override {
    if (s.empty()) return;
    bool ascii = true;
    for (unsigned char c : s) ascii &= c < 0x80;
    if (ascii) return;  // ASCII is invariant under every normalization form
    utf8proc_uint8_t* out = nullptr;
    auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
                          &out, static_cast<utf8proc_option_t>(options_));
    if (n < 0) throw Error(std::string("unicode normalization failed: ") + utf8proc_errmsg(n));
    s.assign(reinterpret_cast<char*>(out), static_cast<size_t>(n));
    std::free(out);
  }

 private:
  int options_;
};

class Lowercase : public Normalizer {
 public:
  void normalize(std::string& s) const override { s = to_lower(s); }
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string p) : prepend_(std::move(p)) {}
  void normalize(std::string& s) const override {
    if (!s.empty()) s.insert(0, prepend_);
  }

 private:
  std::string prepend_;
};

// Replaces every non-overlapping occurrence of a literal string, or of a regex, by `content`.
class Replace : public Normalizer {
 public:
  Replace(const json& pattern, std::string content) : content_(std::move(content)) {
    if (pattern.contains("String")) literal_ = pattern["String"].get<std::string>();
    else if (pattern.contains("Regex")) regex_ = std::make_unique<Regex>(pattern["Regex"].get<std::string>());
    else throw Error("tokenizer.json: Replace pattern must be {\"String\":...} or {\"Regex\":...}");
  }
  void normalize(std::string& s) const override { s = apply(s); }
  std::string apply(const std::string& s) const {
    std::string out;
    if (regex_) {
      size_t prev = 0;
      for (auto [a, b] : regex_->find_all(s)) {
        out.append(s, prev, a - prev);
        out += content_;
        prev = b;
      }
      out.append(s, prev);
      return out;
    }
    if (literal_.empty()) return s;
    size_t prev = 0, at;
    while ((at = s.find(literal_, prev)) != std::string::npos) {
      out.append(s, prev, at - prev);
      out += content_;
      prev = at + literal_.size();
    }
    out.append(s, prev);
    return out;
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
  std::string content_;
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& s) const override {
    size_t a = 0, b = s.size(), n;
    if (left_) {
      while (a < b && is_whitespace(utf8_decode(s, a, n))) a += n;
    }
    if (right_) {
      while (b > a) {
        size_t k = b - 1;
        while (k > a && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
        if (!is_whitespace(utf8_decode(s, k, n))) break;
        b = k;
      }
    }
    s = s.substr(a, b - a);
  }

 private:
  bool left_, right_;
};

class StripAccents : public Normalizer {
 public:
  void normalize(std::string& s) const override {
    std::string out;
    for (size_t i = 0, n; i < s.size(); i += n) {
      char32_t c = utf8_decode(s, i, n);
      if (!is_mark_nonspacing(c)) out.append(s, i, n);
    }
    s = std::move(out);
  }
};

class ByteLevelNorm : public Normalizer {
 public:
  void normalize(std::string& s) const override {
    std::string out;
    for (unsigned char b : s) utf8_append(out, byte_to_unicode(b));
    s = std::move(out);
  }
};

class BertNorm : public Normalizer {
 public:
  BertNorm(bool clean, bool chinese, std::optional<bool> strip_accents, bool lowercase)
      : clean_(clean), chinese_(chinese), strip_(strip_accents.value_or(lowercase)), lower_(lowercase) {}
  void normalize(std::string& s) const override {
    std::string out;
    for (size_t i = 0, n; i < s.size(); i += n) {
      char32_t c = utf8_decode(s, i, n);
      if (clean_) {
        if (c == 0 || c == 0xFFFD) continue;
        auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
        bool ws = c == ' ' || c == '\t' || c == '\n' || c == '\r' || cat == UTF8PROC_CATEGORY_ZS;
        if (ws) { out += ' '; continue; }
        bool control = c != '\t' && c != '\n' && c != '\r' &&
                       (cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
                        cat == UTF8PROC_CATEGORY_CN || cat == UTF8PROC_CATEGORY_CO);
        if (control) continue;
      }
      bool cjk = (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
                 (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) ||
                 (c >= 0x2B920 && c <= 0x2CEAF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
      if (chinese_ && cjk) {
        out += ' ';
        out.append(s, i, n);
        out += ' ';
      } else {
        out.append(s, i, n);
      }
    }
    if (strip_) {
      UnicodeNorm(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE).normalize(out);
      StripAccents().normalize(out);
    }
    if (lower_) out = to_lower(out);
    s = std::move(out);
  }

 private:
  bool clean_, chinese_, strip_, lower_;
};

class SequenceNorm : public Normalizer {
 public:
  explicit SequenceNorm(std::vector<std::unique_ptr<Normalizer>> v) : items_(std::move(v)) {}
  void normalize(std::string& s) const override {
    for (auto& n : items_) n->normalize(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> items_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& j) {
  if (j.is_null()) return nullptr;
  std::string type = j.value("type", "");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> v;
    for (auto& e : j.at("normalizers"))
      if (auto n = make_normalizer(e)) v.push_back(std::move(n));
    return std::make_unique<SequenceNorm>(std::move(v));
  }
  if (type == "NFC") return std::make_unique<UnicodeNorm>(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  if (type == "NFD") return std::make_unique<UnicodeNorm>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
  if (type == "NFKC") return std::make_unique<UnicodeNorm>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
  if (type == "NFKD") return std::make_unique<UnicodeNorm>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Prepend") return std::make_unique<Prepend>(j.at("prepend").get<std::string>());
  if (type == "Replace") return std::make_unique<Replace>(j.at("pattern"), j.at("content").get<std::string>());
  if (type == "Strip")
    return std::make_unique<Strip>(j.value("strip_left", true), j.value("strip_right", true));
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "ByteLevel") return std::make_unique<ByteLevelNorm>();
  if (type == "BertNormalizer") {
    std::optional<bool> sa;
    if (j.contains("strip_accents") && j["strip_accents"].is_boolean()) sa = j["strip_accents"].get<bool>();
    return std::make_unique<BertNorm>(j.value("clean_text", true), j.value("handle_chinese_chars", true), sa,
                                      j.value("lowercase", true));
  }
  throw Error("tokenizer.json: unsupported normalizer type '" + type + "'");
}

}  // namespace qforge::tok
