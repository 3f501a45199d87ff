// quant/quant_checkpoint.cpp — see quant_checkpoint.h. (Readers per serialization land with the
// `qforge quantize` writers; until then a quantized checkpoint is refused by name.)
#include "quant/quant_checkpoint.h"

#include "qforge/status.h"

namespace qforge {

std::optional<QuantFormat> prequantized_format(const ModelConfig& cfg) {
  if (cfg.quantization_config_json.empty()) return std::nullopt;
  throw Error("config.json: quantization_config is present; reading pre-quantized checkpoints is not supported yet");
}

std::optional<QuantWeight> load_prequantized_linear(const io::Checkpoint&, const ModelConfig&, const std::string&,
                                                    int64_t, int64_t) {
  return std::nullopt;
}

}  // namespace qforge
