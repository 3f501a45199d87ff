// io/gguf_tokenizer.cpp — tokenizer.json <-> tokenizer.ggml.* metadata (see gguf_tokenizer.h).
// SentencePiece-style BPE ("llama"): a token's score is minus the rank of the first merge that makes
// it, so llama.cpp's score-ordered merging follows the same order; back from GGUF, merges are
// rebuilt from scores (every split of a token into two vocabulary pieces, best score first).
// Byte-level BPE ("gpt2"): merges stored verbatim; the pre-tokenizer regex is named by tokenizer.ggml.pre.
#include "io/gguf_tokenizer.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "qforge/status.h"

namespace qforge::io {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Pre-tokenizer regexes as the tokenizer.json files of these families spell them.
constexpr const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kGpt2Regex = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

json read_json_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Error(p.string() + ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    throw Error(p.string() + ": invalid JSON (" + e.what() + ")");
  }
}

std::string token_string(const json& c, const char* key) {
  if (!c.contains(key)) return "";
  const json& v = c[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

bool is_byte_token(const std::string& t) {
  return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(uint8_t(t[3])) &&
         std::isxdigit(uint8_t(t[4]));
}

// Collects the Split regex of a pre_tokenizer (possibly inside a Sequence).
void find_split_regex(const json& j, std::string& out) {
  if (j.is_object()) {
    if (j.value("type", "") == "Split" && j.contains("pattern") && j["pattern"].is_object() &&
        j["pattern"].contains("Regex") && j["pattern"]["Regex"].is_string() && out.empty())
      out = j["pattern"]["Regex"].get<std::string>();
    if (j.contains("pretokenizers")) find_split_regex(j["pretokenizers"], out);
  } else if (j.is_array()) {
    for (const auto& e : j) find_split_regex(e, out);
  }
}

std::string merge_string(const json& m) {
  if (m.is_string()) return m.get<std::string>();
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
    return m[0].get<std::string>() + " " + m[1].get<std::string>();
  throw Error("tokenizer.json: a merge is neither \"a b\" nor [\"a\", \"b\"]");
}

}  // namespace

std::vector<std::pair<std::string, GgufValue>> tokenizer_to_gguf(const fs::path& dir) {
  const fs::path tj_path = dir / "tokenizer.json";
  if (!fs::exists(tj_path)) throw Error(dir.string() + ": no tokenizer.json (needed for the GGUF vocabulary)");
  json tj = read_json_file(tj_path);
  const fs::path cfg_path = dir / "tokenizer_config.json";
  json c = fs::exists(cfg_path) ? read_json_file(cfg_path) : json::object();
  const std::string where = tj_path.string();
  std::vector<std::pair<std::string, GgufValue>> kv;
  try {
    const json& m = tj.at("model");
    if (m.value("type", "BPE") != "BPE") throw Error(where + ": only BPE tokenizers can be written to GGUF");
    // id -> token over the model vocabulary and added tokens.
    std::unordered_map<int64_t, std::string> by_id;
    int64_t n = 0;
    for (auto& [tok, id] : m.at("vocab").items()) {
      by_id[id.get<int64_t>()] = tok;
      n = std::max(n, id.get<int64_t>() + 1);
    }
    std::unordered_map<int64_t, bool> added_special;  // id -> special
    if (tj.contains("added_tokens"))
      for (const auto& e : tj["added_tokens"]) {
        int64_t id = e.at("id").get<int64_t>();
        by_id[id] = e.at("content").get<std::string>();
        added_special[id] = e.value("special", false);
        n = std::max(n, id + 1);
      }
    if (c.contains("added_tokens_decoder") && c["added_tokens_decoder"].is_object())
      for (auto& [ids, e] : c["added_tokens_decoder"].items()) {
        int64_t id = std::stoll(ids);
        by_id[id] = e.at("content").get<std::string>();
        added_special[id] = e.value("special", false);
        n = std::max(n, id + 1);
      }
    const bool byte_level = tj.value("pre_tokenizer", json()).dump().find("\"ByteLevel\"") != std::string::npos ||
                            tj.value("decoder", json()).dump().find("\"ByteLevel\"") != std::string::npos;
    std::vector<std::string> tokens(static_cast<size_t>(n));
    std::vector<double> types(static_cast<size_t>(n), double(GgufTokenType::Normal));
    std::unordered_map<std::string, int64_t> id_of;
    for (int64_t i = 0; i < n; ++i) {
      auto it = by_id.find(i);
      tokens[size_t(i)] = it != by_id.end() ? it->second : "[PAD" + std::to_string(i) + "]";
      if (it == by_id.end()) types[size_t(i)] = double(GgufTokenType::Unused);
      id_of.emplace(tokens[size_t(i)], i);
    }
    const std::string unk = m.contains("unk_token") && m["unk_token"].is_string() ? m["unk_token"].get<std::string>() : "";
    for (auto& [id, special] : added_special)
      types[size_t(id)] = double(special ? GgufTokenType::Control : GgufTokenType::UserDefined);
    for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"})
      if (auto t = token_string(c, key); !t.empty())
        if (auto it = id_of.find(t); it != id_of.end() && types[size_t(it->second)] == double(GgufTokenType::Normal))
          types[size_t(it->second)] = double(GgufTokenType::Control);
    std::vector<std::string> merges;
    for (const auto& mg : m.value("merges", json::array())) merges.push_back(merge_string(mg));
    if (byte_level) {
      kv.emplace_back("tokenizer.ggml.model", GgufValue::str("gpt2"));
      std::string re;
      find_split_regex(tj.value("pre_tokenizer", json()), re);
      std::string pre = re == kLlama3Regex ? "llama-bpe" : re == kQwen2Regex ? "qwen2" : re.empty() || re == kGpt2Regex ? "gpt-2" : "default";
      kv.emplace_back("tokenizer.ggml.pre", GgufValue::str(pre));
    } else {
      if (!unk.empty())
        if (auto it = id_of.find(unk); it != id_of.end()) types[size_t(it->second)] = double(GgufTokenType::Unknown);
      for (int64_t i = 0; i < n; ++i)
        if (types[size_t(i)] == double(GgufTokenType::Normal) && is_byte_token(tokens[size_t(i)]))
          types[size_t(i)] = double(GgufTokenType::Byte);
      kv.emplace_back("tokenizer.ggml.model", GgufValue::str("llama"));
      kv.emplace_back("tokenizer.ggml.pre", GgufValue::str("default"));
    }
    kv.emplace_back("tokenizer.ggml.tokens", GgufValue::str_array(tokens));
    if (!byte_level) {
      // score = -(rank of the first merge producing the token); tokens no merge produces rank below all.
      std::vector<double> scores(size_t(n), 0.0);
      std::vector<bool> seen(size_t(n), false);
      for (size_t r = 0; r < merges.size(); ++r) {
        const auto sp = merges[r].find(' ');
        if (sp == std::string::npos) continue;
        auto it = id_of.find(merges[r].substr(0, sp) + merges[r].substr(sp + 1));
        if (it != id_of.end() && !seen[size_t(it->second)]) {
          seen[size_t(it->second)] = true;
          scores[size_t(it->second)] = -double(r);
        }
      }
      for (int64_t i = 0; i < n; ++i)
        if (!seen[size_t(i)] && types[size_t(i)] == double(GgufTokenType::Normal))
          scores[size_t(i)] = -double(merges.size() + size_t(i));
      kv.emplace_back("tokenizer.ggml.scores", GgufValue::num_array(GgufType::F32, std::move(scores)));
    }
    kv.emplace_back("tokenizer.ggml.token_type", GgufValue::num_array(GgufType::I32, std::move(types)));
    if (byte_level) kv.emplace_back("tokenizer.ggml.merges", GgufValue::str_array(std::move(merges)));
    auto put_id = [&](const char* key, const char* cfg_key) {
      std::string t = token_string(c, cfg_key);
      if (t.empty() && std::string(cfg_key) == "unk_token") t = unk;
      if (auto it = id_of.find(t); !t.empty() && it != id_of.end())
        kv.emplace_back(key, GgufValue::u32(uint32_t(it->second)));
    };
    put_id("tokenizer.ggml.bos_token_id", "bos_token");
    put_id("tokenizer.ggml.eos_token_id", "eos_token");
    put_id("tokenizer.ggml.unknown_token_id", "unk_token");
    put_id("tokenizer.ggml.padding_token_id", "pad_token");
    // add_bos: tokenizer_config's flag, else whether the post-processor inserts the bos token.
    bool add_bos = false, add_eos = false;
    const std::string bos = token_string(c, "bos_token"), eos = token_string(c, "eos_token");
    const std::string pp = tj.value("post_processor", json()).dump();
    if (c.contains("add_bos_token") && c["add_bos_token"].is_boolean()) add_bos = c["add_bos_token"].get<bool>();
    else if (!bos.empty()) add_bos = pp.find(json(bos).dump()) != std::string::npos;
    if (c.contains("add_eos_token") && c["add_eos_token"].is_boolean()) add_eos = c["add_eos_token"].get<bool>();
    kv.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::boolean(add_bos));
    kv.emplace_back("tokenizer.ggml.add_eos_token", GgufValue::boolean(add_eos));
    if (!byte_level) {
      // SentencePiece adds the "▁" prefix unless the tokenizer says otherwise.
      bool prefix = !(c.contains("add_prefix_space") && c["add_prefix_space"].is_boolean() && !c["add_prefix_space"].get<bool>());
      kv.emplace_back("tokenizer.ggml.add_space_prefix", GgufValue::boolean(prefix));
    }
    std::string tmpl;
    if (c.contains("chat_template")) {
      const json& ct = c["chat_template"];
      if (ct.is_string()) tmpl = ct.get<std::string>();
      else if (ct.is_array())
        for (const auto& e : ct)
          if (e.value("name", std::string()) == "default" || tmpl.empty()) tmpl = e.value("template", std::string());
    }
    if (fs::path jp = dir / "chat_template.jinja"; fs::exists(jp)) {
      std::ifstream f(jp, std::ios::binary);
      std::stringstream ss;
      ss << f.rdbuf();
      tmpl = ss.str();
    }
    if (!tmpl.empty()) kv.emplace_back("tokenizer.chat_template", GgufValue::str(tmpl));
  } catch (const json::exception& e) {
    throw Error(where + ": malformed tokenizer (" + e.what() + ")");
  } catch (const std::logic_error&) {
    throw Error(where + ": malformed tokenizer (bad token id)");
  }
  return kv;
}

SynthesizedTokenizer tokenizer_from_gguf(const GgufFile& f) {
  const std::string model = f.require_string("tokenizer.ggml.model");
  if (model != "llama" && model != "gpt2")
    f.fail("tokenizer.ggml.model '" + model + "' is not supported (llama, gpt2)");
  const GgufValue* tv = f.find("tokenizer.ggml.tokens");
  if (!tv || tv->type != GgufType::Array || tv->array_type != GgufType::String)
    f.fail("metadata 'tokenizer.ggml.tokens' is missing or not an array of strings");
  const auto& tokens = tv->strs;
  const size_t n = tokens.size();
  if (n == 0) f.fail("metadata 'tokenizer.ggml.tokens' is empty");
  auto num_array = [&](const char* key, bool required) -> const std::vector<double>* {
    const GgufValue* v = f.find(key);
    if (!v) {
      if (required) f.fail("missing metadata '" + std::string(key) + "'");
      return nullptr;
    }
    if (v->type != GgufType::Array || v->array_type == GgufType::String)
      f.fail("metadata '" + std::string(key) + "' is not an array of numbers");
    if (v->nums.size() != n)
      f.fail("metadata '" + std::string(key) + "' has " + std::to_string(v->nums.size()) + " entries, tokenizer.ggml.tokens has " +
             std::to_string(n));
    return &v->nums;
  };
  const auto* types = num_array("tokenizer.ggml.token_type", false);
  if (types)  // llama.cpp's token types: 0 (undefined) .. 6 (byte)
    for (size_t i = 0; i < n; ++i) {
      const double t = (*types)[i];
      if (!(t >= 0 && t <= 6 && t == std::floor(t)))
        f.fail("tokenizer.ggml.token_type[" + std::to_string(i) + "] = " + std::to_string(t) + " is not a token type (0..6)");
    }
  const auto* scores = num_array("tokenizer.ggml.scores", model == "llama");
  auto type_of = [&](size_t i) { return types ? int((*types)[i]) : int(GgufTokenType::Normal); };
  auto token_id = [&](const char* key) -> std::optional<int64_t> {
    auto v = f.get_int(key);
    if (!v) return std::nullopt;
    if (*v < 0 || size_t(*v) >= n)
      f.fail("metadata '" + std::string(key) + "' = " + std::to_string(*v) + " is not a token id (vocabulary " +
             std::to_string(n) + ")");
    return v;
  };
  const auto bos = token_id("tokenizer.ggml.bos_token_id"), eos = token_id("tokenizer.ggml.eos_token_id"),
             unk = token_id("tokenizer.ggml.unknown_token_id"), pad = token_id("tokenizer.ggml.padding_token_id");
  const bool add_bos = f.get_bool("tokenizer.ggml.add_bos_token").value_or(model == "llama");
  const bool add_eos = f.get_bool("tokenizer.ggml.add_eos_token").value_or(false);

  json vocab = json::object();
  json added = json::array();
  std::unordered_map<std::string, int64_t> id_of;
  for (size_t i = 0; i < n; ++i) {
    id_of.emplace(tokens[i], int64_t(i));
    vocab[tokens[i]] = i;  // a duplicate string keeps its last id, as tokenizer.json would
    const int t = type_of(i);
    if (t == int(GgufTokenType::Control) || t == int(GgufTokenType::UserDefined) ||
        (unk && size_t(*unk) == i && model == "llama"))
      added.push_back({{"id", i},           {"content", tokens[i]}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false},   {"normalized", t == int(GgufTokenType::UserDefined)},
                       {"special", t != int(GgufTokenType::UserDefined)}});
  }
  json merges = json::array();
  json tj;
  if (model == "gpt2") {
    const GgufValue* mv = f.find("tokenizer.ggml.merges");
    if (!mv || mv->type != GgufType::Array || mv->array_type != GgufType::String)
      f.fail("metadata 'tokenizer.ggml.merges' is missing or not an array of strings (needed for gpt2)");
    for (const auto& s : mv->strs) {
      if (s.find(' ') == std::string::npos) f.fail("tokenizer.ggml.merges entry '" + s.substr(0, 60) + "' has no space");
      merges.push_back(s);
    }
    const std::string pre = f.get_string("tokenizer.ggml.pre").value_or("default");
    const char* re = pre == "llama-bpe" || pre == "llama3" || pre == "smaug-bpe" ? kLlama3Regex
                     : pre == "qwen2" || pre == "deepseek-r1-qwen"                ? kQwen2Regex
                                                                                  : kGpt2Regex;
    tj["normalizer"] = nullptr;
    tj["pre_tokenizer"] = {{"type", "Sequence"},
                           {"pretokenizers",
                            {{{"type", "Split"}, {"pattern", {{"Regex", re}}}, {"behavior", "Isolated"}, {"invert", false}},
                             {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
    tj["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
    tj["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                   {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
                   {"ignore_merges", pre == "llama-bpe" || pre == "llama3"}, {"vocab", vocab}, {"merges", merges}};
  } else {
    // Merges from scores: every split of a normal token into two vocabulary pieces, ranked by the
    // merged token's score (higher first), then by the pieces' ids (as transformers' extractor does).
    struct M { double score; int64_t l, r; };
    std::vector<M> ms;
    for (size_t i = 0; i < n; ++i) {
      if (type_of(i) != int(GgufTokenType::Normal)) continue;
      const std::string& t = tokens[i];
      const double sc = (*scores)[i];
      if (!std::isfinite(sc)) f.fail("tokenizer.ggml.scores[" + std::to_string(i) + "] is not finite");
      for (size_t k = 1; k < t.size(); ++k) {
        if ((uint8_t(t[k]) & 0xC0) == 0x80) continue;  // not a UTF-8 character boundary
        auto l = id_of.find(t.substr(0, k));
        if (l == id_of.end()) continue;
        auto r = id_of.find(t.substr(k));
        if (r == id_of.end()) continue;
        ms.push_back({sc, l->second, r->second});
      }
    }
    std::stable_sort(ms.begin(), ms.end(), [](const M& a, const M& b) {
      if (a.score != b.score) return a.score > b.score;
      if (a.l != b.l) return a.l < b.l;
      return a.r < b.r;
    });
    for (const auto& mm : ms) merges.push_back(tokens[size_t(mm.l)] + " " + tokens[size_t(mm.r)]);
    const bool prefix = f.get_bool("tokenizer.ggml.add_space_prefix").value_or(true);
    json norm = json::array();
    if (prefix) norm.push_back({{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}});
    norm.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}});
    tj["normalizer"] = {{"type", "Sequence"}, {"normalizers", norm}};
    tj["pre_tokenizer"] = nullptr;
    json dec = json::array({{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                            {{"type", "ByteFallback"}},
                            {{"type", "Fuse"}}});
    if (prefix) dec.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
    tj["decoder"] = {{"type", "Sequence"}, {"decoders", dec}};
    tj["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", unk ? json(tokens[size_t(*unk)]) : json(nullptr)},
                   {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", true},
                   {"byte_fallback", true}, {"vocab", vocab}, {"merges", merges}};
  }
  tj["version"] = "1.0";
  tj["added_tokens"] = added;
  // Post-processor: bos/eos as the GGUF flags say.
  json single = json::array();
  json specials = json::object();
  if (add_bos && bos) {
    single.push_back({{"SpecialToken", {{"id", tokens[size_t(*bos)]}, {"type_id", 0}}}});
    specials[tokens[size_t(*bos)]] = {{"id", tokens[size_t(*bos)]}, {"ids", {*bos}}, {"tokens", {tokens[size_t(*bos)]}}};
  }
  single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
  if (add_eos && eos) {
    single.push_back({{"SpecialToken", {{"id", tokens[size_t(*eos)]}, {"type_id", 0}}}});
    specials[tokens[size_t(*eos)]] = {{"id", tokens[size_t(*eos)]}, {"ids", {*eos}}, {"tokens", {tokens[size_t(*eos)]}}};
  }
  tj["post_processor"] = {{"type", "TemplateProcessing"}, {"single", single}, {"pair", single}, {"special_tokens", specials}};

  json cfg = json::object();
  if (bos) cfg["bos_token"] = tokens[size_t(*bos)];
  if (eos) cfg["eos_token"] = tokens[size_t(*eos)];
  if (unk) cfg["unk_token"] = tokens[size_t(*unk)];
  if (pad) cfg["pad_token"] = tokens[size_t(*pad)];
  cfg["clean_up_tokenization_spaces"] = false;
  if (auto t = f.get_string("tokenizer.chat_template")) cfg["chat_template"] = *t;
  const auto dump = [](const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); };
  return {dump(tj), dump(cfg)};
}

}  // namespace qforge::io
