// quant/quant_checkpoint.h — checkpoints that are already quantized (bitsandbytes nf4/fp4/int8,
// FP8 in the compressed-tensors layout (also reads HF "fp8" and ModelOpt FP8), NVFP4 in the ModelOpt
// layout, GPTQ int4): detection from config.json's quantization_config, reading one linear module's
// tensors into a QuantWeight, and writing such a checkpoint from a float one (`qforge quantize`).
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "qforge/model_config.h"
#include "qforge/quant.h"

namespace qforge {

// The format a checkpoint's quantization_config describes; nullopt for a plain checkpoint.
// Throws qforge::Error naming config.json for a quantization method qforge cannot read.
std::optional<QuantFormat> prequantized_format(const ModelConfig& cfg);

// The QuantWeight of module `module` ("model.layers.0.self_attn.q_proj") of shape [out, in], or
// nullopt when the checkpoint stores that module unquantized (plain float "<module>.weight").
// Throws qforge::Error naming the file and tensor for a missing tensor or a wrong dtype/shape.
std::optional<QuantWeight> load_prequantized_linear(const io::Checkpoint& ck, const ModelConfig& cfg,
                                                    const std::string& module, int64_t out, int64_t in);

// ---- writing (qforge quantize) ----

struct QuantizeCheckpointOptions {
  QuantFormat format = QuantFormat::None;  // nf4, fp4, int8, fp8 (E4M3), nvfp4 or int4
  QuantParams params;
  DType compute_dtype = DType::BF16;                  // unquantized tensors, config dtype
  std::vector<std::string> skip_modules{"lm_head"};   // substrings of module names kept unquantized
  bool force = false;                                 // replace an existing output directory
  uint64_t max_shard_bytes = 5'000'000'000;           // larger checkpoints are sharded with an index
};

struct QuantizeCheckpointSummary {
  std::string serialization;     // "bitsandbytes-4bit", "bitsandbytes-8bit", "compressed-tensors", "modelopt", "gptq"
  int64_t quantized_modules = 0;
  int64_t kept_modules = 0;      // linear modules kept in the compute dtype (skip list)
  uint64_t tensor_bytes = 0;     // bytes of tensor data written
  int shards = 0;
  std::vector<std::string> copied_files;  // tokenizer/generation files copied
};

// The serialization a format is written in; throws qforge::Error for a format with no
// Hugging Face checkpoint layout (mxfp4, fp8-e5m2, GGUF formats).
std::string checkpoint_serialization(QuantFormat f);

// Quantizes every linear layer of the float checkpoint `model_dir` and writes a checkpoint the
// ecosystem reads to `out`: everything goes to "<out>.tmp-<pid>" first and is renamed to `out` at
// the end; any failure removes the temporary directory, so nothing is left behind. Refuses an
// existing `out` unless opt.force, and a missing parent directory.
QuantizeCheckpointSummary write_quantized_checkpoint(const std::filesystem::path& model_dir,
                                                     const std::filesystem::path& out,
                                                     const QuantizeCheckpointOptions& opt);

}  // namespace qforge
