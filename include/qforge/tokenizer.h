// qforge/tokenizer.h — Hugging Face tokenizer.json tokenizers (SentencePiece-style BPE with
// byte fallback, byte-level BPE), tokenizer_config.json special-token rules, and streaming
// detokenization that never emits half a UTF-8 character.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qforge {

struct TokenizerLoadOptions {
  // true: behave as transformers' AutoTokenizer (tokenizer_config.json add_bos/add_eos rules,
  // clean_up_tokenization_spaces, LlamaTokenizer's own Metaspace pipeline). false: exactly the
  // `tokenizers` library's Tokenizer.from_file("tokenizer.json"), ignoring tokenizer_config.json.
  bool transformers_compat = true;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Loads <dir>/tokenizer.json and, when present, tokenizer_config.json / chat_template.jinja.
  // `model_dir` may also be a tokenizer.json file. Throws qforge::Error naming the file and problem.
  static std::unique_ptr<Tokenizer> load(const std::filesystem::path& model_dir);
  static std::unique_ptr<Tokenizer> load(const std::filesystem::path& model_dir, const TokenizerLoadOptions& opts);
  // From the text of tokenizer.json and tokenizer_config.json (may be empty); `name` labels errors
  // (e.g. the GGUF file the JSON was synthesized from).
  static std::unique_ptr<Tokenizer> load_from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json,
                                                   const std::string& name, const TokenizerLoadOptions& opts = {});

  // As transformers' tokenizer(text): add_special -> post-processor / add_bos_token rules.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special = true) const = 0;
  // As tokenizer.decode(ids, skip_special_tokens=skip_special).
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special = false) const = 0;

  virtual int64_t vocab_size() const = 0;            // including added tokens
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::optional<int32_t> eos_id() const = 0;
  virtual std::string bos_token() const = 0;         // "" when none
  virtual std::string eos_token() const = 0;
  virtual bool is_special(int32_t id) const = 0;
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  virtual std::string id_to_token(int32_t id) const = 0;
  // chat_template from tokenizer_config.json (the "default" one if a list) or chat_template.jinja.
  virtual std::string chat_template() const = 0;
  // Token strings of `ids` as stored in the vocabulary (e.g. "▁Hello", "<0x0A>", "Ġworld").
  std::vector<std::string> ids_to_tokens(std::span<const int32_t> ids) const;
};

// Incremental detokenizer: push ids one at a time, get back only complete new text. The pieces
// returned by push() and finish() concatenate to exactly decode(all ids, skip_special). Text that a
// later id could still change is held back: an incomplete UTF-8 character, a run of byte-fallback
// tokens (<0xNN>) that is not closed yet, and (with clean_up_tokenization_spaces) a trailing space.
class StreamingDecoder {
 public:
  StreamingDecoder(const Tokenizer& tok, bool skip_special);
  std::string push(int32_t id);
  std::string finish();  // whatever is still held back (invalid UTF-8 replaced as decode does)
 private:
  std::string stable_text() const;  // the prefix of decode(ids_) that later ids cannot change
  const Tokenizer& tok_;
  bool skip_special_;
  std::vector<int32_t> ids_;
  size_t emitted_ = 0;  // bytes of decode(ids_) already returned
};

}  // namespace qforge
