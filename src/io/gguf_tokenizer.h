// io/gguf_tokenizer.h — the tokenizer in GGUF metadata, both ways: Hugging Face tokenizer.json +
// tokenizer_config.json → tokenizer.ggml.* keys (model "llama" = SentencePiece-style BPE with
// scores/token types, "gpt2" = byte-level BPE with merges), and GGUF metadata → equivalent
// tokenizer.json / tokenizer_config.json text that qforge's tokenizer loads.
#pragma once
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "io/gguf.h"

namespace qforge::io {

// llama.cpp token types (tokenizer.ggml.token_type).
enum class GgufTokenType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

// Reads <dir>/tokenizer.json (+ tokenizer_config.json, chat_template.jinja) and returns the
// tokenizer.* metadata entries. Throws qforge::Error naming the file when the tokenizer is not BPE.
std::vector<std::pair<std::string, GgufValue>> tokenizer_to_gguf(const std::filesystem::path& model_dir);

struct SynthesizedTokenizer {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
};
// From tokenizer.ggml.* metadata. Throws "<file>: ..." for an unsupported tokenizer.ggml.model or
// inconsistent arrays (tokens/scores/token_type lengths, ids out of range).
SynthesizedTokenizer tokenizer_from_gguf(const GgufFile& f);

}  // namespace qforge::io
