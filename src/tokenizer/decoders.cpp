// tokenizer/decoders.cpp — tokenizer.json decoders (ByteLevel, Metaspace, Replace, ByteFallback,
// Fuse, Strip, WordPiece, Sequence) and post-processors (TemplateProcessing, ByteLevel,
// RobertaProcessing, BertProcessing, Sequence), with the Rust crate's decode_chain semantics.
#include "qforge/status.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/text_util.h"

namespace qforge::tok {
namespace {

using nlohmann::json;

class ByteLevelDec : public Decoder {
 public:
  // All tokens' characters map back to bytes (a token with a character outside the byte alphabet
  // contributes its raw UTF-8), then one lossy UTF-8 conversion.
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (auto& t : tokens) {
      std::string mapped;
      bool ok = true;
      for (size_t i = 0, n; i < t.size(); i += n) {
        int b = unicode_to_byte(utf8_decode(t, i, n));
        if (b < 0) { ok = false; break; }
        mapped += static_cast<char>(b);
      }
      bytes += ok ? mapped : t;
    }
    tokens.assign(1, utf8_sanitize(bytes));
  }
};

class MetaspaceDec : public Decoder {
 public:
  MetaspaceDec(std::string rep, bool prepend) : rep_(std::move(rep)), prepend_(prepend) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (size_t k = 0; k < t.size();) {
        if (!rep_.empty() && t.compare(k, rep_.size(), rep_) == 0) {
          if (!(i == 0 && prepend_)) out += ' ';
          k += rep_.size();
        } else {
          out += t[k++];
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string rep_;
  bool prepend_;
};

class ReplaceDec : public Decoder {
 public:
  ReplaceDec(const json& pattern, std::string content) : content_(std::move(content)) {
    if (pattern.contains("String")) literal_ = pattern["String"].get<std::string>();
    else if (pattern.contains("Regex")) regex_ = std::make_unique<Regex>(pattern["Regex"].get<std::string>());
    else throw Error("tokenizer.json: Replace decoder pattern must be String or Regex");
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      std::vector<std::pair<size_t, size_t>> m;
      if (regex_) {
        m = regex_->find_all(t);
      } else if (!literal_.empty()) {
        for (size_t at = 0; (at = t.find(literal_, at)) != std::string::npos; at += literal_.size())
          m.emplace_back(at, at + literal_.size());
      }
      if (m.empty()) continue;
      std::string out;
      size_t prev = 0;
      for (auto [a, b] : m) {
        out.append(t, prev, a - prev);
        out += content_;
        prev = b;
      }
      out.append(t, prev);
      t = std::move(out);
    }
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
  std::string content_;
};

int parse_byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  int h = hex(t[3]), l = hex(t[4]);
  return h < 0 || l < 0 ? -1 : h * 16 + l;
}

class ByteFallbackDec : public Decoder {
 public:
  // Runs of <0xNN> tokens become their UTF-8 text, or one U+FFFD per byte if the run is invalid.
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (utf8_valid(pending)) out.push_back(pending);
      else
        for (size_t k = 0; k < pending.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
      pending.clear();
    };
    for (auto& t : tokens) {
      int b = parse_byte_token(t);
      if (b >= 0) {
        pending += static_cast<char>(b);
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }
};

class FuseDec : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

// Removes up to `start` leading and `stop` trailing characters equal to `content` from each token.
class StripDec : public Decoder {
 public:
  StripDec(std::string content, size_t start, size_t stop) : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    if (content_.empty()) return;
    for (auto& t : tokens) {
      size_t a = 0, b = t.size();
      for (size_t k = 0; k < start_ && t.compare(a, content_.size(), content_) == 0 && a < b; ++k) a += content_.size();
      for (size_t k = 0; k < stop_ && b >= a + content_.size() && t.compare(b - content_.size(), content_.size(), content_) == 0; ++k)
        b -= content_.size();
      t = t.substr(a, b - a);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

std::string cleanup_spaces(std::string s);

class WordPieceDec : public Decoder {
 public:
  WordPieceDec(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      auto& t = tokens[i];
      if (i != 0) {
        if (t.compare(0, prefix_.size(), prefix_) == 0) t = t.substr(prefix_.size());
        else t.insert(0, 1, ' ');
      }
      if (cleanup_) t = cleanup_spaces(std::move(t));
    }
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

class SequenceDec : public Decoder {
 public:
  explicit SequenceDec(std::vector<std::unique_ptr<Decoder>> v) : items_(std::move(v)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& d : items_) d->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> items_;
};

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
  return s;
}

std::string cleanup_spaces(std::string s) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
      {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (auto [from, to] : kRules) s = replace_all(std::move(s), from, to);
  return s;
}

// ---- post-processors ----

class TemplateProc : public PostProcessor {
 public:
  TemplateProc(const json& j, const TokenLookup& lookup) {
    std::map<std::string, std::vector<int32_t>> specials;
    if (j.contains("special_tokens"))
      for (auto& [name, v] : j["special_tokens"].items()) specials[name] = v.at("ids").get<std::vector<int32_t>>();
    for (auto& item : j.at("single")) {
      if (item.contains("Sequence")) {
        items_.push_back({true, {}});
      } else if (item.contains("SpecialToken")) {
        std::string id = item["SpecialToken"].at("id");
        auto it = specials.find(id);
        if (it != specials.end()) {
          items_.push_back({false, it->second});
        } else {
          int32_t tid = lookup(id);
          if (tid < 0) throw Error("tokenizer.json: TemplateProcessing special token '" + id + "' is not in the vocabulary");
          items_.push_back({false, {tid}});
        }
      }
    }
  }
  void process(std::vector<int32_t>& ids) const override {
    std::vector<int32_t> out;
    out.reserve(ids.size() + 4);
    for (auto& it : items_) {
      if (it.sequence) out.insert(out.end(), ids.begin(), ids.end());
      else out.insert(out.end(), it.ids.begin(), it.ids.end());
    }
    ids = std::move(out);
  }
  struct Item {
    bool sequence;
    std::vector<int32_t> ids;
  };
  std::vector<Item> items_;
};

class NoopProc : public PostProcessor {
 public:
  void process(std::vector<int32_t>&) const override {}
};

class WrapProc : public PostProcessor {  // Bert/Roberta single sequence: CLS A SEP
 public:
  WrapProc(int32_t cls, int32_t sep) : cls_(cls), sep_(sep) {}
  void process(std::vector<int32_t>& ids) const override {
    ids.insert(ids.begin(), cls_);
    ids.push_back(sep_);
  }

 private:
  int32_t cls_, sep_;
};

class SequenceProc : public PostProcessor {
 public:
  explicit SequenceProc(std::vector<std::unique_ptr<PostProcessor>> v) : items_(std::move(v)) {}
  void process(std::vector<int32_t>& ids) const override {
    for (auto& p : items_) p->process(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> items_;
};

}  // namespace

std::string cleanup_tokenization_spaces(std::string s) { return cleanup_spaces(std::move(s)); }

std::unique_ptr<Decoder> make_decoder(const json& j) {
  if (j.is_null()) return nullptr;
  std::string type = j.value("type", "");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> v;
    for (auto& e : j.at("decoders"))
      if (auto d = make_decoder(e)) v.push_back(std::move(d));
    return std::make_unique<SequenceDec>(std::move(v));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDec>();
  if (type == "Metaspace") {
    std::string rep = j.contains("replacement") ? j["replacement"].get<std::string>() : "\xE2\x96\x81";
    bool prepend;
    if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) prepend = j["prepend_scheme"] != "never";
    else prepend = j.value("add_prefix_space", true);
    return std::make_unique<MetaspaceDec>(rep, prepend);
  }
  if (type == "Replace") return std::make_unique<ReplaceDec>(j.at("pattern"), j.at("content").get<std::string>());
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDec>();
  if (type == "Fuse") return std::make_unique<FuseDec>();
  if (type == "Strip")
    return std::make_unique<StripDec>(j.at("content").get<std::string>(), j.value("start", size_t{0}), j.value("stop", size_t{0}));
  if (type == "WordPiece") return std::make_unique<WordPieceDec>(j.value("prefix", std::string("##")), j.value("cleanup", true));
  throw Error("tokenizer.json: unsupported decoder type '" + type + "'");
}

std::unique_ptr<Decoder> make_sentencepiece_decoder(bool strip_leading_space) {
  std::vector<std::unique_ptr<Decoder>> v;
  v.push_back(std::make_unique<ReplaceDec>(json{{"String", "\xE2\x96\x81"}}, " "));
  v.push_back(std::make_unique<ByteFallbackDec>());
  v.push_back(std::make_unique<FuseDec>());
  if (strip_leading_space) v.push_back(std::make_unique<StripDec>(" ", 1, 0));
  return std::make_unique<SequenceDec>(std::move(v));
}

std::unique_ptr<PostProcessor> make_post_processor(const json& j, const TokenLookup& lookup) {
  if (j.is_null()) return nullptr;
  std::string type = j.value("type", "");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PostProcessor>> v;
    for (auto& e : j.at("processors"))
      if (auto p = make_post_processor(e, lookup)) v.push_back(std::move(p));
    return std::make_unique<SequenceProc>(std::move(v));
  }
  if (type == "TemplateProcessing") return std::make_unique<TemplateProc>(j, lookup);
  if (type == "ByteLevel") return std::make_unique<NoopProc>();
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    // "cls": ["<s>", 0], "sep": ["</s>", 2]
    return std::make_unique<WrapProc>(j.at("cls").at(1).get<int32_t>(), j.at("sep").at(1).get<int32_t>());
  }
  throw Error("tokenizer.json: unsupported post_processor type '" + type + "'");
}

std::unique_ptr<PostProcessor> make_bos_eos_processor(std::optional<int32_t> bos, std::optional<int32_t> eos) {
  json j;
  j["single"] = json::array();
  auto lookup = [](const std::string&) { return -1; };
  auto p = std::make_unique<TemplateProc>(json{{"single", json::array({json{{"Sequence", json{{"id", "A"}}}}})}}, lookup);
  if (bos) p->items_.insert(p->items_.begin(), {false, {*bos}});
  if (eos) p->items_.push_back({false, {*eos}});
  return p;
}

}  // namespace qforge::tok
