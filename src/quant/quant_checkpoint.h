// quant/quant_checkpoint.h — checkpoints that are already quantized (bitsandbytes nf4/fp4/int8,
// FP8 and NVFP4 in the vLLM/ModelOpt layouts, GPTQ int4): detection from config.json's
// quantization_config, and reading one linear module's tensors into a QuantWeight.
#pragma once
#include <optional>
#include <string>

#include "io/checkpoint.h"
#include "qforge/model_config.h"
#include "qforge/quant.h"

namespace qforge {

// The format a checkpoint's quantization_config describes; nullopt for a plain checkpoint.
// Throws qforge::Error naming config.json for a quantization method qforge cannot read.
std::optional<QuantFormat> prequantized_format(const ModelConfig& cfg);

// The QuantWeight of module `module` ("model.layers.0.self_attn.q_proj") of shape [out, in], or
// nullopt when the checkpoint stores that module unquantized (plain "<module>.weight").
std::optional<QuantWeight> load_prequantized_linear(const io::Checkpoint& ck, const ModelConfig& cfg,
                                                    const std::string& module, int64_t out, int64_t in);

}  // namespace qforge
