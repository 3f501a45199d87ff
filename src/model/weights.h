// model/weights.h — the weights of one Llama-family model, held by slot (HF names map to slots
// once, in weight_loader.cpp). A Linear holds either a plain float tensor (f32/f16/bf16) or a
// QuantWeight, plus an optional bias; backends may attach a private repacked copy.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "qforge/quant.h"
#include "qforge/status.h"
#include "qforge/tensor.h"

namespace qforge {

struct Linear {
  std::string name;   // HF prefix, e.g. "model.layers.3.self_attn.q_proj"
  int64_t in = 0, out = 0;
  Tensor weight;      // [out, in] f32/f16/bf16, when not quantized
  QuantWeight qweight;  // when quantized (qweight.format != None)
  Tensor bias;        // [out] f32, optional
  std::shared_ptr<void> backend_data;  // backend-private (device copy, repacked layout)
  // Bytes of a backend copy that replaced qweight's buffers (the cpu backend's interleaved q4_0 / q8_0 layout:
  // qweight.data is then released, its shape and format stay); 0 otherwise.
  size_t replaced_bytes = 0;

  bool quantized() const { return qweight.format != QuantFormat::None; }
  // qweight's buffers were handed to a backend copy: only that backend can run this linear.
  bool released() const { return replaced_bytes != 0; }
  size_t weight_bytes() const { return quantized() ? qweight.storage_bytes() + replaced_bytes : weight.nbytes(); }
};

// Throws qforge::Error when l's quantized bytes were released to the cpu backend's copy (`who` reads them).
inline void require_weight_bytes(const Linear& l, const char* who) {
  if (l.released())
    throw Error(std::string(who) + ": " + l.name + " has no " + std::string(quant_traits(l.qweight.format).name) +
                " bytes here: they were released to the cpu backend's interleaved copy, which alone runs it");
}

struct LayerWeights {
  Tensor attn_norm;  // input_layernorm [hidden] f32
  Tensor ffn_norm;   // post_attention_layernorm [hidden] f32
  Linear q, k, v, o, gate, up, down;
};

struct ModelWeights {
  Tensor embed;       // [vocab, hidden] in the compute dtype
  Tensor final_norm;  // [hidden] f32
  Linear lm_head;     // tied: views `embed`
  std::vector<LayerWeights> layers;
  std::shared_ptr<void> backend_data;

  size_t total_bytes() const;  // every weight byte held (tied lm_head counted once)
};

}  // namespace qforge
