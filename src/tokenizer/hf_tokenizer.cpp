// tokenizer/hf_tokenizer.cpp — loading tokenizer.json + tokenizer_config.json and the encode/decode
// pipeline (see hf_tokenizer.h); also Tokenizer::load and Tokenizer::ids_to_tokens.
#include "tokenizer/hf_tokenizer.h"

#include <fstream>
#include <sstream>

#include "qforge/status.h"
#include "tokenizer/text_util.h"

namespace qforge::tok {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json read_json(const fs::path& p) {
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

// A special-token entry of tokenizer_config.json: "text" or {"content": "text", ...} or null.
std::string token_string(const json& c, const char* key) {
  if (!c.contains(key)) return "";
  const json& v = c[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

bool mentions_byte_level(const json& j) { return !j.is_null() && j.dump().find("\"ByteLevel\"") != std::string::npos; }

AddedToken added_from_json(const json& e, int32_t id) {
  AddedToken t;
  t.id = id;
  t.content = e.at("content").get<std::string>();
  t.special = e.value("special", false);
  t.normalized = e.value("normalized", !t.special);
  t.lstrip = e.value("lstrip", false);
  t.rstrip = e.value("rstrip", false);
  t.single_word = e.value("single_word", false);
  return t;
}

}  // namespace

HfTokenizer::HfTokenizer(const fs::path& tokenizer_json, const fs::path& config_dir, const TokenizerLoadOptions& opts) {
  fs::path cfg = config_dir / "tokenizer_config.json";
  std::optional<std::string> jinja;
  if (fs::path jp = config_dir / "chat_template.jinja"; fs::exists(jp)) {
    std::ifstream f(jp, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    jinja = ss.str();
  }
  init(read_json(tokenizer_json), fs::exists(cfg) ? read_json(cfg) : json::object(), tokenizer_json.string(),
       cfg.string(), jinja, opts);
}

HfTokenizer::HfTokenizer(const json& tokenizer_json, const json& tokenizer_config, const std::string& name,
                         const TokenizerLoadOptions& opts) {
  init(tokenizer_json, tokenizer_config, name + " (tokenizer.json)", name + " (tokenizer_config.json)", std::nullopt, opts);
}

void HfTokenizer::init(const json& tj, const json& c, const std::string& where, const std::string& cfg_name,
                       const std::optional<std::string>& chat_template_jinja, const TokenizerLoadOptions& opts) {
  try {
    if (!tj.contains("model") || !tj["model"].is_object()) throw Error(where + ": no \"model\" object");
    std::string type = tj["model"].value("type", "");
    if (type.empty() && tj["model"].contains("merges")) type = "BPE";  // very old files omit "type"
    if (type != "BPE") throw Error(where + ": unsupported model type '" + type + "' (only BPE is implemented)");
    model_ = std::make_unique<BpeModel>(tj["model"]);
    normalizer_ = make_normalizer(tj.value("normalizer", json()));
    pre_tokenizer_ = make_pre_tokenizer(tj.value("pre_tokenizer", json()));
    decoder_ = make_decoder(tj.value("decoder", json()));
    if (tj.contains("added_tokens"))
      for (auto& e : tj["added_tokens"]) add_added_token(added_from_json(e, e.at("id").get<int32_t>()));
    post_processor_ = make_post_processor(tj.value("post_processor", json()), [this](const std::string& t) {
      auto id = token_to_id(t);
      return id ? *id : -1;
    });
    if (opts.transformers_compat) load_config(c, cfg_name, tj);
    else {
      // Metadata only (bos/eos/chat template); encode/decode stay exactly as tokenizer.json says.
      bos_token_ = token_string(c, "bos_token");
      eos_token_ = token_string(c, "eos_token");
      if (c.contains("chat_template") && c["chat_template"].is_string()) chat_template_ = c["chat_template"];
    }
  } catch (const Error&) {
    throw;
  } catch (const json::exception& e) {
    throw Error(where + ": malformed tokenizer (" + e.what() + ")");
  }
  if (opts.transformers_compat && chat_template_jinja) chat_template_ = *chat_template_jinja;
  if (!bos_token_.empty()) bos_id_ = token_to_id(bos_token_);
  if (!eos_token_.empty()) eos_id_ = token_to_id(eos_token_);
  vocab_size_ = model_->size();
  for (auto& t : added_) vocab_size_ = std::max<int64_t>(vocab_size_, t.id + 1);
  rebuild_matchers();
}

void HfTokenizer::add_added_token(const AddedToken& t) {
  if (auto it = added_by_id_.find(t.id); it != added_by_id_.end()) {
    auto& old = added_[it->second];
    added_by_content_.erase(old.content);
    old = t;
  } else {
    added_by_id_[t.id] = added_.size();
    added_.push_back(t);
  }
  added_by_content_[t.content] = t.id;
}

void HfTokenizer::rebuild_matchers() {
  raw_matcher_ = AddedTokenMatcher();
  normalized_matcher_ = AddedTokenMatcher();
  for (auto& t : added_) {
    if (t.normalized && normalizer_) {
      std::string n = t.content;
      normalizer_->normalize(n);
      normalized_matcher_.add(t.id, n, t);
    } else if (t.normalized) {
      normalized_matcher_.add(t.id, t.content, t);
    } else {
      raw_matcher_.add(t.id, t.content, t);
    }
  }
}

void HfTokenizer::load_config(const json& c, const std::string& cfg, const json& tj) {
  try {
    if (c.contains("added_tokens_decoder") && c["added_tokens_decoder"].is_object()) {
      for (auto& [id, e] : c["added_tokens_decoder"].items()) add_added_token(added_from_json(e, std::stoi(id)));
    }
    // Tokens transformers registers as special: bos/eos/unk/pad and additional_special_tokens.
    auto mark_special = [&](const std::string& content) {
      if (content.empty()) return;
      if (auto it = added_by_content_.find(content); it != added_by_content_.end()) {
        added_[added_by_id_[it->second]].special = true;
      } else if (auto id = model_->token_to_id(content)) {
        AddedToken t;
        t.id = *id;
        t.content = content;
        t.special = true;
        add_added_token(t);
      }
    };
    for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"}) mark_special(token_string(c, key));
    if (c.contains("additional_special_tokens") && c["additional_special_tokens"].is_array())
      for (auto& v : c["additional_special_tokens"])
        mark_special(v.is_string() ? v.get<std::string>() : v.value("content", std::string()));
    bos_token_ = token_string(c, "bos_token");
    eos_token_ = token_string(c, "eos_token");
    cleanup_spaces_ = c.value("clean_up_tokenization_spaces", false);

    std::string cls = c.value("tokenizer_class", std::string());
    bool llama = cls == "LlamaTokenizer" || cls == "LlamaTokenizerFast";
    // transformers 5 LlamaTokenizer keeps only vocab/merges from tokenizer.json and installs its own
    // pipeline: no normalizer, Metaspace pre-tokenizer, SentencePiece decoder. Byte-level files
    // mislabelled as LlamaTokenizer are left alone (transformers mangles those; we do not copy that).
    if (llama && !mentions_byte_level(tj.value("pre_tokenizer", json())) &&
        !mentions_byte_level(tj.value("decoder", json()))) {
      bool add_prefix_space = c.contains("add_prefix_space") && c["add_prefix_space"].is_boolean()
                                  ? c["add_prefix_space"].get<bool>() : true;
      bool legacy = c.contains("legacy") && c["legacy"].is_boolean() ? c["legacy"].get<bool>() : false;
      PrependScheme scheme = !add_prefix_space ? PrependScheme::never : legacy ? PrependScheme::always : PrependScheme::first;
      normalizer_.reset();
      pre_tokenizer_ = make_metaspace("\xE2\x96\x81", scheme, false);
      decoder_ = make_sentencepiece_decoder(add_prefix_space);
    }
    // add_bos_token / add_eos_token rebuild the single-sequence template as transformers does.
    if (c.contains("add_bos_token") || c.contains("add_eos_token")) {
      bool add_bos = c.contains("add_bos_token") && c["add_bos_token"].is_boolean() ? c["add_bos_token"].get<bool>() : llama;
      bool add_eos = c.contains("add_eos_token") && c["add_eos_token"].is_boolean() ? c["add_eos_token"].get<bool>() : false;
      std::optional<int32_t> bos, eos;
      if (add_bos && !bos_token_.empty()) bos = token_to_id(bos_token_);
      if (add_eos && !eos_token_.empty()) eos = token_to_id(eos_token_);
      post_processor_ = make_bos_eos_processor(bos, eos);
    }
    if (c.contains("chat_template")) {
      const json& ct = c["chat_template"];
      if (ct.is_string()) {
        chat_template_ = ct.get<std::string>();
      } else if (ct.is_array()) {
        for (auto& e : ct)
          if (e.value("name", std::string()) == "default") chat_template_ = e.value("template", std::string());
        if (chat_template_.empty() && !ct.empty()) chat_template_ = ct[0].value("template", std::string());
      }
    }
  } catch (const json::exception& e) {
    throw Error(cfg + ": malformed tokenizer config (" + e.what() + ")");
  } catch (const std::invalid_argument&) {
    throw Error(cfg + ": added_tokens_decoder has a non-numeric id");
  }
}

void HfTokenizer::encode_text(std::string_view text, bool at_start, std::vector<int32_t>& out) const {
  std::string t(text);
  if (normalizer_) normalizer_->normalize(t);
  for (auto& sub : normalized_matcher_.split(t)) {
    if (sub.id >= 0) {
      out.push_back(sub.id);
      continue;
    }
    std::vector<Piece> pieces{{std::string(sub.text), at_start && sub.offset == 0}};
    if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(pieces);
    for (auto& p : pieces) model_->tokenize(p.text, out);
  }
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text, bool add_special) const {
  std::string s = utf8_sanitize(text);
  std::vector<int32_t> ids;
  ids.reserve(s.size() / 3 + 4);
  for (auto& seg : raw_matcher_.split(s)) {
    if (seg.id >= 0) ids.push_back(seg.id);
    else encode_text(seg.text, seg.offset == 0, ids);
  }
  if (add_special && post_processor_) post_processor_->process(ids);
  return ids;
}

std::string HfTokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string text = decode_raw(ids, skip_special);
  if (cleanup_spaces_) text = cleanup_tokenization_spaces(std::move(text));
  return text;
}

std::string HfTokenizer::decode_raw(std::span<const int32_t> ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (auto it = added_by_id_.find(id); it != added_by_id_.end()) {
      if (skip_special && added_[it->second].special) continue;
      tokens.push_back(added_[it->second].content);
    } else if (const std::string* t = model_->id_to_token(id)) {
      tokens.push_back(*t);
    }  // unknown ids are dropped, as the Rust crate does
  }
  std::string text;
  if (decoder_) {
    decoder_->decode_chain(tokens);
    for (auto& t : tokens) text += t;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) text += ' ';
      text += tokens[i];
    }
  }
  return text;
}

bool HfTokenizer::is_special(int32_t id) const {
  auto it = added_by_id_.find(id);
  return it != added_by_id_.end() && added_[it->second].special;
}

std::optional<int32_t> HfTokenizer::token_to_id(std::string_view token) const {
  if (auto it = added_by_content_.find(std::string(token)); it != added_by_content_.end()) return it->second;
  return model_->token_to_id(token);
}

std::string HfTokenizer::id_to_token(int32_t id) const {
  if (auto it = added_by_id_.find(id); it != added_by_id_.end()) return added_[it->second].content;
  if (const std::string* t = model_->id_to_token(id)) return *t;
  return "";
}

bool HfTokenizer::is_byte_fallback_token(int32_t id) const {
  if (!model_->byte_fallback() || added_by_id_.count(id)) return false;
  const std::string* t = model_->id_to_token(id);
  return t && t->size() == 6 && t->compare(0, 3, "<0x") == 0 && (*t)[5] == '>';
}

}  // namespace qforge::tok

namespace qforge {

std::unique_ptr<Tokenizer> Tokenizer::load(const std::filesystem::path& model_dir) {
  return load(model_dir, TokenizerLoadOptions{});
}

std::unique_ptr<Tokenizer> Tokenizer::load(const std::filesystem::path& path, const TokenizerLoadOptions& opts) {
  namespace fs = std::filesystem;
  fs::path json_path, dir;
  if (fs::is_directory(path)) {
    dir = path;
    json_path = path / "tokenizer.json";
    if (!fs::exists(json_path)) {
      if (fs::exists(path / "tokenizer.model"))
        throw Error(path.string() + ": has only tokenizer.model (SentencePiece); qforge needs tokenizer.json");
      throw Error(path.string() + ": no tokenizer.json");
    }
  } else if (fs::is_regular_file(path)) {
    json_path = path;
    dir = path.parent_path();
  } else {
    throw Error(path.string() + ": no such tokenizer directory or file");
  }
  return std::make_unique<tok::HfTokenizer>(json_path, dir, opts);
}

std::unique_ptr<Tokenizer> Tokenizer::load_from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json,
                                                     const std::string& name, const TokenizerLoadOptions& opts) {
  auto parse = [&](std::string_view text, const char* what) {
    try {
      return text.empty() ? nlohmann::json::object() : nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw Error(name + ": invalid " + what + " (" + e.what() + ")");
    }
  };
  return std::make_unique<tok::HfTokenizer>(parse(tokenizer_json, "tokenizer.json"),
                                            parse(tokenizer_config_json, "tokenizer_config.json"), name, opts);
}

std::vector<std::string> Tokenizer::ids_to_tokens(std::span<const int32_t> ids) const {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (int32_t id : ids) out.push_back(id_to_token(id));
  return out;
}

}  // namespace qforge
