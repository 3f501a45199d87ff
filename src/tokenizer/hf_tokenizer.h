// tokenizer/hf_tokenizer.h — the Tokenizer implementation for Hugging Face tokenizer.json files:
// added-token splitting, normalizer, pre-tokenizer, BPE model, post-processor and decoder, plus the
// tokenizer_config.json rules transformers applies on top (see docs/tokenizer.md).
#pragma once
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "qforge/tokenizer.h"
#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/pipeline.h"

namespace qforge::tok {

class HfTokenizer final : public Tokenizer {
 public:
  HfTokenizer(const std::filesystem::path& tokenizer_json, const std::filesystem::path& config_dir,
              const TokenizerLoadOptions& opts);
  // From parsed tokenizer.json / tokenizer_config.json objects; `name` labels errors.
  HfTokenizer(const nlohmann::json& tokenizer_json, const nlohmann::json& tokenizer_config, const std::string& name,
              const TokenizerLoadOptions& opts);

  std::vector<int32_t> encode(std::string_view text, bool add_special = true) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  std::optional<int32_t> bos_id() const override { return bos_id_; }
  std::optional<int32_t> eos_id() const override { return eos_id_; }
  std::string bos_token() const override { return bos_token_; }
  std::string eos_token() const override { return eos_token_; }
  bool is_special(int32_t id) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  std::string chat_template() const override { return chat_template_; }

  bool cleanup_spaces() const { return cleanup_spaces_; }
  // decode() without transformers' clean_up_tokenization step.
  std::string decode_raw(std::span<const int32_t> ids, bool skip_special) const;
  bool is_byte_fallback_token(int32_t id) const;

 private:
  void init(const nlohmann::json& tj, const nlohmann::json& config, const std::string& where, const std::string& cfg_name,
            const std::optional<std::string>& chat_template_jinja, const TokenizerLoadOptions& opts);
  void load_config(const nlohmann::json& config, const std::string& cfg_name, const nlohmann::json& tokenizer_json);
  void encode_text(std::string_view text, bool at_start, std::vector<int32_t>& out) const;
  void add_added_token(const AddedToken& t);
  void rebuild_matchers();

  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<PostProcessor> post_processor_;
  std::unique_ptr<Decoder> decoder_;
  std::vector<AddedToken> added_;                       // in insertion order
  std::unordered_map<int32_t, size_t> added_by_id_;     // id -> index in added_
  std::unordered_map<std::string, int32_t> added_by_content_;
  AddedTokenMatcher raw_matcher_, normalized_matcher_;  // normalized=false / normalized=true tokens
  int64_t vocab_size_ = 0;
  std::optional<int32_t> bos_id_, eos_id_;
  std::string bos_token_, eos_token_;
  std::string chat_template_;
  bool cleanup_spaces_ = false;
};

}  // namespace qforge::tok
