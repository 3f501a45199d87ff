// model/gguf_model.h — Llama-family models as GGUF files: building ModelConfig + ModelWeights from
// llama.cpp's metadata and tensor names (undoing the Q/K row permutation llama.cpp applies to
// Llama attention weights), and writing a checkpoint (or random weights) as a GGUF llama.cpp loads.
#pragma once
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "qforge/model.h"
#include "qforge/tokenizer.h"

namespace qforge {

struct ModelWeights;
namespace io { class GgufFile; }

bool is_gguf_path(const std::string& path);  // ends in ".gguf" (any case)

// The ModelConfig a GGUF file describes (general.architecture llama or qwen2; mistral files use llama).
ModelConfig gguf_model_config(const io::GgufFile& f);

struct GgufLoaded {
  ModelConfig cfg;
  DType hold = DType::F32;
  std::unique_ptr<ModelWeights> weights;
};
// Loads every tensor (copied out of the mapping) into qforge's layout. Float linears are held in
// opt.dtype (default: the file's float type; F32 when the linears are quantized) and quantized on
// load when opt.quant is set; Q4_0/Q8_0/Q4_K tensors become QuantWeights bit for bit.
GgufLoaded load_gguf_model(const std::filesystem::path& path, const LoadOptions& opt);

// The tokenizer stored in the GGUF metadata. Throws "<file>: ..." when the file has none.
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::filesystem::path& path);

struct GgufWriteOptions {
  std::string format = "f16";  // f32 | f16 | bf16 | q8_0 | q4_0 | q4_1 | q5_0 | q5_1 | q4_k | q5_k | q6_k, or llama.cpp's
                               // mixes q4_k_m | q5_k_m
  bool force = false;          // replace an existing file
  uint64_t random_seed = 1;    // random-weight models only
};
struct GgufWriteSummary {
  std::string file_type;        // e.g. "Q4_0"
  int64_t tensors = 0;
  int64_t quantized = 0;        // 2-D weights in the requested format
  int64_t fallback = 0;         // 2-D weights whose row length forced another type (see docs/gguf.md)
  std::string fallback_type;    // the types those got, comma-separated (e.g. "Q5_0,Q8_0")
  std::map<std::string, int64_t> by_type;  // 2-D weights per ggml type name
  uint64_t bytes = 0;           // tensor data bytes
};
// From a model directory / hub repo id (config.json + safetensors + tokenizer.json).
GgufWriteSummary write_gguf_from_checkpoint(const std::string& model, const std::filesystem::path& out,
                                            const GgufWriteOptions& opt);
// Random weights N(0, 0.02) (norms 1) for a config.json, without a vocabulary
// (tokenizer.ggml.model "no_vocab"): for speed measurements only.
GgufWriteSummary write_gguf_random(const std::filesystem::path& config_json, const std::filesystem::path& out,
                                   const GgufWriteOptions& opt);

}  // namespace qforge
