// qforge/generate.h — the generation loop: prefill the prompt, then decode token by token with
// the sampler, stopping on EOS (unless ignored), max_new_tokens or the context limit; each new
// token is handed to a callback together with its complete-UTF-8 text piece (streaming).
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "qforge/model.h"
#include "qforge/sampler.h"
#include "qforge/tokenizer.h"

namespace qforge {

struct GenerationDefaults {  // from generation_config.json (falling back to config.json)
  std::vector<int32_t> eos_ids;
  bool do_sample = false;
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int> top_k;
};
GenerationDefaults load_generation_defaults(const std::filesystem::path& model_dir, const ModelConfig& cfg);

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  SamplingParams sampling;
  bool ignore_eos = false;
  std::vector<int32_t> eos_ids;
};

struct GenerateResult {
  std::vector<int32_t> prompt_ids, new_ids;
  std::string text;         // decode(new_ids, skip_special)
  std::string stop_reason;  // "eos" | "length" | "context"
  double prefill_seconds = 0, decode_seconds = 0;
  int64_t decode_steps = 0;  // forward calls after the prefill
  double prefill_tokens_per_s() const { return prefill_seconds > 0 ? double(prompt_ids.size()) / prefill_seconds : 0; }
  double decode_tokens_per_s() const { return decode_seconds > 0 ? double(decode_steps) / decode_seconds : 0; }
};

using TokenCallback = std::function<void(int32_t id, const std::string& piece)>;

// `pos0` > 0 continues a conversation whose first pos0 positions are already in the KV cache
// (`prompt_ids` then holds only the new tokens; `history` the earlier ones, for the penalty).
GenerateResult generate(Model& model, const Tokenizer* tok, std::span<const int32_t> prompt_ids,
                        const GenerateOptions& opt, const TokenCallback& on_token = {}, int64_t pos0 = 0,
                        std::span<const int32_t> history = {});

}  // namespace qforge
