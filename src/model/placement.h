// model/placement.h — where each part of the model runs, like accelerate's device_map="auto":
// the embeddings, then the decoder layers in order, then the final norm + lm_head fill the
// candidate devices one after another (GPUs first, then the CPU), each within its budget
// (--max-memory DEV=SIZE, else the GPU's free memory minus a working margin, unlimited on the CPU).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/weights.h"
#include "qforge/model_config.h"

namespace qforge {

struct PlacementSegment {
  std::string device;           // backend name: "cuda:0", "cpu", "ref"
  int64_t layer_begin = 0, layer_end = 0;
  bool embed = false, head = false;
  int64_t bytes = 0;            // weights + KV cache reserve placed here
};

// `devices`: candidates in order; `budgets`: bytes per device name (absent = unlimited).
// `kv_positions`: the context each layer's KV cache is budgeted for. Throws qforge::Error with the
// sizes when the model does not fit.
std::vector<PlacementSegment> plan_placement(const ModelWeights& w, const ModelConfig& c,
                                             const std::vector<std::string>& devices,
                                             const std::map<std::string, int64_t>& budgets, int64_t kv_positions);

// "cuda:0=20GiB,cpu=64GiB" -> {cuda:0: ..., cpu: ...} ("cuda" means "cuda:0").
std::map<std::string, int64_t> parse_max_memory(const std::string& spec);

}  // namespace qforge
