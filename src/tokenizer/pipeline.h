// tokenizer/pipeline.h — the stages of a Hugging Face tokenizer.json pipeline other than the model:
// normalizers, pre-tokenizers, decoders and post-processors, each built from its JSON object by a
// factory that throws qforge::Error naming the unsupported "type". Semantics follow the Rust
// `tokenizers` crate (offsets are not tracked; only what changes ids or text is reproduced).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace qforge::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;
};
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j);  // null json -> nullptr

// A piece of normalized text on its way to the model. `at_start` is true when the piece begins at
// offset 0 of the original input (Metaspace prepend_scheme "first" depends on it).
struct Piece {
  std::string text;
  bool at_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j);

// Metaspace pre-tokenizer settings, exposed because transformers' LlamaTokenizer installs one.
enum class PrependScheme { always, first, never };
std::unique_ptr<PreTokenizer> make_metaspace(const std::string& replacement, PrependScheme scheme, bool split);

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rust `decode_chain`: maps the token strings to new strings (possibly fewer).
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j);
// The SentencePiece-style chain Replace(▁,' '), ByteFallback, Fuse[, Strip(' ',1,0)].
std::unique_ptr<Decoder> make_sentencepiece_decoder(bool strip_leading_space);

// Looks up a token's id (added tokens first, then the model); -1 when unknown.
using TokenLookup = std::function<int32_t(const std::string&)>;

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Adds the special tokens of a single sequence around `ids` (only called with add_special).
  virtual void process(std::vector<int32_t>& ids) const = 0;
};
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j, const TokenLookup& lookup);
// Single-sequence template: [bos] $A [eos] (either may be absent), as transformers builds for
// tokenizers that carry add_bos_token / add_eos_token.
std::unique_ptr<PostProcessor> make_bos_eos_processor(std::optional<int32_t> bos, std::optional<int32_t> eos);

// transformers' clean_up_tokenization: " ." -> ".", " n't" -> "n't", ...
std::string cleanup_tokenization_spaces(std::string s);

}  // namespace qforge::tok
