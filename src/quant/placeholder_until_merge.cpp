// TEMPORARY (removed when the quant branch lands): definitions so the engine links before the
// quantization formats exist. Every entry point refuses with a clear error.
#include "backends/quant_linear.h"
#include "qforge/status.h"

namespace qforge {
size_t QuantWeight::storage_bytes() const { return data.nbytes() + scales.nbytes() + scales2.nbytes() + zeros.nbytes(); }
void quant_linear_ref(const QuantWeight&, const float*, int64_t, float*) { throw Error("quantized formats are not built yet"); }
void quant_linear_cpu(const QuantWeight&, const float*, int64_t, float*) { throw Error("quantized formats are not built yet"); }
QuantWeight quantize_weight(const Tensor&, QuantFormat, const QuantParams&) { throw Error("quantized formats are not built yet"); }
std::optional<QuantFormat> parse_quant_format(std::string_view) { return std::nullopt; }
}  // namespace qforge
