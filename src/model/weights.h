// model/weights.h — the weights of one Llama-family model, held by slot (HF names map to slots
// once, in weight_loader.cpp). A Linear holds either a plain float tensor (f32/f16/bf16) or a
// QuantWeight, plus an optional bias; backends may attach a private repacked copy.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "qforge/quant.h"
#include "qforge/tensor.h"

namespace qforge {

struct Linear {
  std::string name;   // HF prefix, e.g. "model.layers.3.self_attn.q_proj"
  int64_t in = 0, out = 0;
  Tensor weight;      // [out, in] f32/f16/bf16, when not quantized
  QuantWeight qweight;  // when quantized (qweight.format != None)
  Tensor bias;        // [out] f32, optional
  std::shared_ptr<void> backend_data;  // backend-private (device copy, repacked layout)

  bool quantized() const { return qweight.format != QuantFormat::None; }
  size_t weight_bytes() const { return quantized() ? qweight.storage_bytes() : weight.nbytes(); }
};

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
