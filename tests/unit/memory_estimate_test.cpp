// tests/unit/memory_estimate_test.cpp — the memory estimator (issue 5): exact parameter counts
// from real config values, quant_storage_bytes layouts computed by hand, KV cache formula, the
// Llama-2-70B verdicts on a DGX Spark, largest-context search, presets and the size parsers.
#include <gtest/gtest.h>

#include <cmath>

#include "qforge/memory_estimate.h"
#include "qforge/model_config.h"
#include "qforge/quant.h"
#include "qforge/status.h"
#include "qforge/tensor.h"
#include "test_support.h"

using namespace qforge;

namespace {

ModelConfig llama(int64_t vocab, int64_t hidden, int64_t inter, int64_t layers, int64_t heads, int64_t kv,
                  bool tied = false) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv;
  c.head_dim = hidden / heads;
  c.tie_word_embeddings = tied;
  return c;
}

WeightScheme scheme(std::string_view name) {
  auto s = parse_weight_scheme(name);
  EXPECT_TRUE(s.has_value()) << name;
  return *s;
}

const DeviceSpec& device(std::string_view name) {
  for (const auto& d : known_devices())
    if (d.name == name) return d;
  throw Error("no device " + std::string(name));
}

constexpr int64_t kMiB = 1LL << 20;

}  // namespace

// ---- parameter counts -------------------------------------------------------------------------

TEST(MemoryParams, TinyLlamaExact) {
  // TinyLlama-1.1B config.json: vocab 32000, hidden 2048, inter 5632, 22 layers, 32 heads, 4 KV, untied.
  EXPECT_EQ(count_params(llama(32000, 2048, 5632, 22, 32, 4)).total(), 1'100'048'384);
}

TEST(MemoryParams, Llama3_8BExact) {
  EXPECT_EQ(count_params(llama(128256, 4096, 14336, 32, 32, 8)).total(), 8'030'261'248);
}

TEST(MemoryParams, Llama2_70BExactByComponent) {
  const ParamCounts p = count_params(llama(32000, 8192, 28672, 80, 64, 8));
  EXPECT_EQ(p.total(), 68'976'648'192);
  EXPECT_EQ(p.embeddings, 32000LL * 8192);
  EXPECT_EQ(p.lm_head, 32000LL * 8192);
  // q,o: 8192x8192; k,v: 1024x8192 — per layer 2*(67,108,864 + 8,388,608).
  EXPECT_EQ(p.attention, 80LL * 2 * (8192LL * 8192 + 1024LL * 8192));
  EXPECT_EQ(p.mlp, 80LL * 3 * 8192 * 28672);
  EXPECT_EQ(p.norms, 80LL * 2 * 8192 + 8192);
  EXPECT_EQ(p.attention_biases + p.mlp_biases, 0);
}

TEST(MemoryParams, Qwen2_5_0_5BTiedWithQkvBiases) {
  ModelConfig c = llama(151936, 896, 4864, 24, 14, 2, /*tied=*/true);
  c.architecture = "Qwen2ForCausalLM";
  c.attention_bias = true;  // q/k/v biases, no o_proj bias
  const ParamCounts p = count_params(c);
  EXPECT_EQ(p.total(), 494'032'768);
  EXPECT_EQ(p.lm_head, 0);                           // tied: counted once, in embeddings
  EXPECT_EQ(p.attention_biases, 24LL * (896 + 128 + 128));
  // Without the biases the count would be short by exactly that much.
  c.attention_bias = false;
  EXPECT_EQ(count_params(c).total(), 494'032'768 - 24LL * 1152);
}

TEST(MemoryParams, OProjAndMlpBiases) {
  ModelConfig c = llama(100, 64, 96, 2, 4, 2);
  const int64_t base = count_params(c).total();
  c.o_proj_bias = true;
  EXPECT_EQ(count_params(c).total(), base + 2 * 64);
  c.mlp_bias = true;
  EXPECT_EQ(count_params(c).total(), base + 2 * 64 + 2 * (96 + 96 + 64));
}

TEST(MemoryParams, DemoModelFromConfigJson) {
  // models/kjv-llama-14m: 14,528,160 parameters per its index metadata (tied embeddings).
  const ModelConfig c = load_model_config(test::demo_model_dir() / "config.json");
  EXPECT_EQ(count_params(c).total(), 14'528'160);
  EXPECT_EQ(weights_bytes(c, scheme("bf16"), DType::BF16), 29'056'320);  // index total_size
}

TEST(MemoryParams, RejectsUnusableConfig) {
  ModelConfig c = llama(32000, 2048, 5632, 22, 32, 4);
  c.num_key_value_heads = 0;
  try {
    count_params(c);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_key_value_heads"), std::string::npos) << e.what();
  }
}

// ---- presets ----------------------------------------------------------------------------------

TEST(MemoryPresets, CountsMatchPublishedCheckpoints) {
  // Expected: each checkpoint's model.safetensors.index.json total_size / 2 (bf16/fp16 weights).
  const std::pair<const char*, int64_t> expected[] = {
      {"TinyLlama-1.1B", 1'100'048'384},  {"Llama-2-7B", 6'738'415'616},     {"Llama-2-13B", 13'015'864'320},
      {"Llama-2-70B", 68'976'648'192},    {"Llama-3.1-8B", 8'030'261'248},   {"Llama-3.1-70B", 70'553'706'496},
      {"Llama-3.1-405B", 405'853'388'800}, {"Llama-3.2-1B", 1'235'814'400},  {"Llama-3.2-3B", 3'212'749'824},
      {"Mistral-7B", 7'241'732'096},      {"Qwen2.5-0.5B", 494'032'768},     {"Qwen2.5-1.5B", 1'543'714'304},
      {"Qwen2.5-3B", 3'085'938'688},      {"Qwen2.5-7B", 7'615'616'512},     {"Qwen2.5-14B", 14'770'033'664},
      {"Qwen2.5-32B", 32'763'876'352},    {"Qwen2.5-72B", 72'706'203'648},
  };
  for (const auto& [name, n] : expected) {
    auto c = preset_config(name);
    ASSERT_TRUE(c.has_value()) << name;
    EXPECT_EQ(count_params(*c).total(), n) << name;
  }
}

TEST(MemoryPresets, EveryPresetIsUsableAndLookupIsCaseInsensitive) {
  for (const auto& n : preset_names()) {
    auto c = preset_config(n);
    ASSERT_TRUE(c.has_value()) << n;
    EXPECT_NO_THROW(validate_for_estimate(*c)) << n;
    EXPECT_EQ(c->num_attention_heads % c->num_key_value_heads, 0) << n;
    EXPECT_GT(c->max_position_embeddings, 0) << n;
  }
  EXPECT_TRUE(preset_config("llama-2-70b").has_value());
  EXPECT_FALSE(preset_config("Llama-9-1T").has_value());
}

// ---- quant_storage_bytes: layouts computed by hand ----------------------------------------------

TEST(QuantStorageBytes, Nf4PlainAndDoubleQuant) {
  QuantParams p;  // blocksize 0 = 64
  // [4096, 4096]: n = 16,777,216; packed n/2 = 8,388,608; 262,144 fp32 absmax.
  EXPECT_EQ(quant_storage_bytes(QuantFormat::NF4, p, 4096, 4096), 8'388'608u + 262'144u * 4);
  p.double_quant = true;
  // absmax -> uint8 per block (262,144) + nested_absmax fp32 [1024] + offset fp32.
  EXPECT_EQ(quant_storage_bytes(QuantFormat::NF4, p, 4096, 4096), 8'388'608u + 262'144u + 4096 + 4);
  // Odd size, blocks straddle rows of the flattened weight: [3, 50] -> n = 150, 75 bytes, 3 blocks.
  QuantParams plain;
  EXPECT_EQ(quant_storage_bytes(QuantFormat::NF4, plain, 3, 50), 75u + 3 * 4);
  EXPECT_EQ(quant_storage_bytes(QuantFormat::FP4, plain, 3, 50), 75u + 3 * 4);
  // Odd element count: [1, 65] -> 33 bytes, 2 blocks.
  EXPECT_EQ(quant_storage_bytes(QuantFormat::NF4, plain, 1, 65), 33u + 2 * 4);
  // blocksize 128: [64, 64] -> 2048 + 32 blocks * 4.
  QuantParams b128;
  b128.blocksize = 128;
  EXPECT_EQ(quant_storage_bytes(QuantFormat::NF4, b128, 64, 64), 2048u + 128);
  // Double quant with 300 blocks (n = 19,200): 2 nested blocks.
  EXPECT_EQ(quant_storage_bytes(QuantFormat::NF4, p, 100, 192), 9600u + 300 + 2 * 4 + 4);
}

TEST(QuantStorageBytes, Int8Fp8) {
  QuantParams p;
  EXPECT_EQ(quant_storage_bytes(QuantFormat::INT8, p, 1024, 4096), 1024u * 4096 + 1024 * 4);
  EXPECT_EQ(quant_storage_bytes(QuantFormat::FP8_E4M3, p, 1024, 4096), 1024u * 4096 + 4);
  EXPECT_EQ(quant_storage_bytes(QuantFormat::FP8_E5M2, p, 1024, 4096), 1024u * 4096 + 4);
  p.per_channel = true;
  EXPECT_EQ(quant_storage_bytes(QuantFormat::FP8_E4M3, p, 1024, 4096), 1024u * 4096 + 1024 * 4);
}

TEST(QuantStorageBytes, Nvfp4Mxfp4) {
  QuantParams p;
  // [128, 4096]: codes 128*2048, e4m3 scale per 16: 128*256, weight_scale_2 fp32.
  EXPECT_EQ(quant_storage_bytes(QuantFormat::NVFP4, p, 128, 4096), 128u * 2048 + 128 * 256 + 4);
  // e8m0 byte per 32: 128*128.
  EXPECT_EQ(quant_storage_bytes(QuantFormat::MXFP4, p, 128, 4096), 128u * 2048 + 128 * 128);
  // Ragged K = 40 is zero-padded per row: to 48 (24 bytes, 3 scales) / to 64 (32 bytes, 2 scales).
  EXPECT_EQ(quant_storage_bytes(QuantFormat::NVFP4, p, 2, 40), 2u * 24 + 2 * 3 + 4);
  EXPECT_EQ(quant_storage_bytes(QuantFormat::MXFP4, p, 2, 40), 2u * 32 + 2 * 2);
}

TEST(QuantStorageBytes, Int4Gptq) {
  QuantParams p;  // group 128
  // N=4096, K=4096: qweight int32 [512, 4096]; qzeros int32 [32, 512]; scales f16 [32, 4096]; g_idx int32 [4096].
  EXPECT_EQ(quant_storage_bytes(QuantFormat::INT4, p, 4096, 4096),
            4u * 512 * 4096 + 4 * 32 * 512 + 2 * 32 * 4096 + 4 * 4096);
  p.symmetric = true;  // GPTQ stores qzeros for symmetric weights too
  EXPECT_EQ(quant_storage_bytes(QuantFormat::INT4, p, 4096, 4096),
            4u * 512 * 4096 + 4 * 32 * 512 + 2 * 32 * 4096 + 4 * 4096);
  // Ragged: N=10, K=100, group 32: qweight [13, 10], qzeros [4, 2], scales [4, 10], g_idx [100].
  QuantParams g32;
  g32.blocksize = 32;
  EXPECT_EQ(quant_storage_bytes(QuantFormat::INT4, g32, 10, 100), 4u * 13 * 10 + 4 * 4 * 2 + 2 * 4 * 10 + 4 * 100);
}

TEST(QuantStorageBytes, Gguf) {
  QuantParams p;
  EXPECT_EQ(quant_storage_bytes(QuantFormat::Q4_0, p, 64, 4096), 64u * 128 * 18);
  EXPECT_EQ(quant_storage_bytes(QuantFormat::Q8_0, p, 64, 4096), 64u * 128 * 34);
  EXPECT_EQ(quant_storage_bytes(QuantFormat::Q4_K, p, 64, 4096), 64u * 16 * 144);
}

TEST(QuantStorageBytes, RejectsBadInput) {
  QuantParams p;
  EXPECT_THROW(quant_storage_bytes(QuantFormat::NF4, p, 0, 64), Error);
  EXPECT_THROW(quant_storage_bytes(QuantFormat::NF4, p, 64, -1), Error);
  EXPECT_THROW(quant_storage_bytes(QuantFormat::None, p, 64, 64), Error);
  p.blocksize = -64;
  EXPECT_THROW(quant_storage_bytes(QuantFormat::NF4, p, 64, 64), Error);
}

TEST(QuantStorageBytes, EqualsRealQuantizedWeights) {
  // The estimate must price exactly what quantize_weight() holds, every buffer included.
  const std::pair<int64_t, int64_t> shapes[] = {{64, 256}, {3, 512}, {17, 768}, {3, 50}, {1, 65}};
  for (const auto& [N, K] : shapes) {
    Tensor w = Tensor::empty(DType::F32, {N, K});
    for (int64_t i = 0; i < N * K; ++i) w.data<float>()[i] = float((i * 7919) % 201 - 100) / 37.0f;
    for (const auto& name : weight_scheme_names()) {
      const WeightScheme s = scheme(name);
      if (s.format == QuantFormat::None) continue;
      const bool gguf = s.format == QuantFormat::Q4_0 || s.format == QuantFormat::Q8_0 || s.format == QuantFormat::Q4_K ||
                        s.format == QuantFormat::Q5_0 || s.format == QuantFormat::Q6_K || s.format == QuantFormat::Q4_1 ||
                        s.format == QuantFormat::Q5_1 || s.format == QuantFormat::Q5_K || s.format == QuantFormat::Q2_K ||
                        s.format == QuantFormat::Q3_K;
      if (gguf && K % quant_traits(s.format).default_block != 0) continue;  // ggml needs whole blocks
      const QuantWeight q = quantize_weight(w, s.format, s.params);
      EXPECT_EQ(q.storage_bytes(), quant_storage_bytes(s.format, s.params, N, K)) << name << " [" << N << ", " << K << "]";
    }
  }
}

// ---- weights ----------------------------------------------------------------------------------

TEST(MemoryWeights, PlainDtypesAreBytesTimesParams) {
  for (const auto& n : preset_names()) {
    const ModelConfig c = *preset_config(n);
    const int64_t params = count_params(c).total();
    EXPECT_EQ(weights_bytes(c, scheme("bf16"), DType::BF16), 2 * params) << n;
    EXPECT_EQ(weights_bytes(c, scheme("fp16"), DType::BF16), 2 * params) << n;
    EXPECT_EQ(weights_bytes(c, scheme("fp32"), DType::BF16), 4 * params) << n;
  }
}

TEST(MemoryWeights, Nf4TinyModelByHand) {
  // vocab 10, hidden 64, inter 128, 1 layer, 2 heads of 32, 1 KV head, untied.
  // q,o [64,64]: 2048 + 64 blocks*4 = 2304; k,v [32,64]: 1024 + 32*4 = 1152;
  // gate,up [128,64] and down [64,128]: 4096 + 128*4 = 4608.
  // bf16 rest: embeddings 640 + lm_head 640 + norms 192 = 1472 params * 2 bytes.
  const ModelConfig c = llama(10, 64, 128, 1, 2, 1);
  EXPECT_EQ(weights_bytes(c, scheme("nf4"), DType::BF16), 2 * 2304 + 2 * 1152 + 3 * 4608 + 1472 * 2);
  // Compute dtype f32 prices the unquantized modules at 4 bytes.
  EXPECT_EQ(weights_bytes(c, scheme("nf4"), DType::F32), 2 * 2304 + 2 * 1152 + 3 * 4608 + 1472 * 4);
}

TEST(MemoryWeights, QuantizedBiasesStayInComputeDtype) {
  ModelConfig c = *preset_config("Qwen2.5-0.5B");
  const ParamCounts p = count_params(c);
  const MemoryOptions o{scheme("int8")};
  const MemoryEstimate e = estimate_memory(c, o, DeviceKind::Cpu);
  // attention bytes = int8 linears (N*K + 4N per layer module) + bf16 biases.
  int64_t lin = 0;
  for (const auto& l : layer_linears(c))
    if (l.name == "q_proj" || l.name == "k_proj" || l.name == "v_proj" || l.name == "o_proj")
      lin += c.num_hidden_layers * (l.out_features * l.in_features + 4 * l.out_features);
  EXPECT_EQ(e.breakdown[1].first, "attention");
  EXPECT_EQ(e.breakdown[1].second, lin + 2 * p.attention_biases);
  EXPECT_EQ(e.breakdown[4].first, "lm_head");
  EXPECT_EQ(e.breakdown[4].second, 0);  // tied
}

TEST(MemoryWeights, AnalyticBitsPerWeight) {
  EXPECT_DOUBLE_EQ(analytic_bits_per_weight(scheme("fp32")), 32.0);
  EXPECT_DOUBLE_EQ(analytic_bits_per_weight(scheme("bf16")), 16.0);
  EXPECT_DOUBLE_EQ(analytic_bits_per_weight(scheme("int8")), 8.0);
  EXPECT_DOUBLE_EQ(analytic_bits_per_weight(scheme("nf4")), 4.5);
  EXPECT_DOUBLE_EQ(analytic_bits_per_weight(scheme("nf4-dq")), 4.0 + 8.0 / 64 + 32.0 / (256 * 64));
  EXPECT_DOUBLE_EQ(analytic_bits_per_weight(scheme("nvfp4")), 4.5);
  EXPECT_DOUBLE_EQ(analytic_bits_per_weight(scheme("mxfp4")), 4.25);
  EXPECT_DOUBLE_EQ(analytic_bits_per_weight(scheme("int4-g128")), 4.15625);
  EXPECT_DOUBLE_EQ(analytic_bits_per_weight(scheme("q4_0")), 4.5);
  EXPECT_DOUBLE_EQ(analytic_bits_per_weight(scheme("q8_0")), 8.5);
  EXPECT_DOUBLE_EQ(analytic_bits_per_weight(scheme("q4_k")), 4.5);
  // The analytic rate is the large-matrix limit of the exact layout; at 8192x8192 the per-row /
  // per-column 32-bit terms it drops (SCB, GPTQ g_idx) still add 32/8192 = 0.0039 bits.
  for (const auto& name : weight_scheme_names()) {
    const WeightScheme s = scheme(name);
    const double exact = 8.0 * double(linear_weight_bytes(s, 8192, 8192)) / (8192.0 * 8192.0);
    EXPECT_NEAR(exact, analytic_bits_per_weight(s), 32.0 / 8192 + 1e-9) << name;
    EXPECT_GE(exact, analytic_bits_per_weight(s)) << name;
  }
}

TEST(MemoryWeights, SchemeNames) {
  EXPECT_EQ(scheme("NF4+DQ").name, "nf4-dq");
  EXPECT_TRUE(scheme("nf4-dq").params.double_quant);
  EXPECT_EQ(scheme("int4").params.blocksize, 128);
  EXPECT_EQ(scheme("f16").dtype, DType::F16);
  EXPECT_FALSE(parse_weight_scheme("int3").has_value());
  EXPECT_EQ(scheme("bnb-nf4").name, "nf4");         // spellings of the quant traits table
  EXPECT_EQ(scheme("fp8_e5m2").name, "fp8-e5m2");
  // Analytic rates agree with the quant traits table at each format's default block.
  for (const auto& t : quant_formats()) {
    const WeightScheme s = scheme(t.name);
    EXPECT_EQ(s.format, t.format) << t.name;
    EXPECT_DOUBLE_EQ(analytic_bits_per_weight(s), t.bits_per_weight) << t.name;
  }
  EXPECT_EQ(table_weight_schemes().size(), 9u);
}

// ---- KV cache, overhead, totals ---------------------------------------------------------------

TEST(MemoryKvCache, Formula) {
  const ModelConfig c = *preset_config("Llama-2-70B");
  // 2 × 80 layers × 8 KV heads × 128 × 4096 tokens × 1 × 2 bytes.
  EXPECT_EQ(kv_cache_bytes(c, 4096, 1, DType::BF16), 2LL * 80 * 8 * 128 * 4096 * 2);
  EXPECT_EQ(kv_cache_bytes(c, 4096, 1, DType::BF16), 1'342'177'280);
  EXPECT_EQ(kv_cache_bytes(c, 4096, 3, DType::F8_E4M3), 2LL * 80 * 8 * 128 * 4096 * 3);
  EXPECT_EQ(kv_cache_bytes(c, 1000, 2, DType::F32), 2LL * 80 * 8 * 128 * 1000 * 2 * 4);
}

TEST(MemoryEstimateTotals, BreakdownSumsAndOverheads) {
  const ModelConfig c = *preset_config("Llama-3.1-8B");
  MemoryOptions o{scheme("nf4-dq")};
  o.context = 8192;
  o.batch = 2;
  const MemoryEstimate g = estimate_memory(c, o, DeviceKind::Cuda);
  int64_t sum = 0;
  for (const auto& [k, v] : g.breakdown) sum += v;
  EXPECT_EQ(sum, g.total_bytes);
  EXPECT_EQ(g.total_bytes, g.weights_bytes + g.kv_cache_bytes + g.overhead_bytes);
  // scratch: batch 2 × 512 rows × (4·4096 + 2·14336 + 128256) floats.
  const int64_t act = 2LL * 512 * (4 * 4096 + 2 * 14336 + 128256) * 4;
  EXPECT_EQ(g.overhead_bytes, 500 * kMiB + 32 * kMiB + act);
  const MemoryEstimate cpu = estimate_memory(c, o, DeviceKind::Cpu);
  EXPECT_EQ(cpu.overhead_bytes, act);  // no CUDA context on CPU
  // Short contexts shrink the scratch rows to the context.
  o.context = 100;
  EXPECT_EQ(estimate_memory(c, o, DeviceKind::Cpu).overhead_bytes, 2LL * 100 * (4 * 4096 + 2 * 14336 + 128256) * 4);
  o.context = 0;
  EXPECT_THROW(estimate_memory(c, o, DeviceKind::Cuda), Error);
}

TEST(MemoryVerdicts, Llama2_70BOnDgxSpark) {
  const ModelConfig c = *preset_config("Llama-2-70B");
  const DeviceSpec& spark = device("DGX Spark 128GB");
  MemoryOptions o{scheme("fp16")};
  o.context = 4096;
  const MemoryEstimate fp16 = estimate_memory(c, o, spark.kind);
  EXPECT_EQ(fp16.weights_bytes, 2 * 68'976'648'192);  // 137.95 GB of weights alone
  EXPECT_GT(fp16.weights_bytes, spark.memory_bytes);  // does not fit, not even the weights
  EXPECT_EQ(max_context_that_fits(c, o, spark, 4096), 0);
  for (const char* four_bit : {"nf4", "nf4-dq", "nvfp4", "int4-g128", "q4_0"}) {
    o.scheme = scheme(four_bit);
    const MemoryEstimate q = estimate_memory(c, o, spark.kind);
    EXPECT_LT(q.total_bytes, 45'000'000'000) << four_bit;  // ~36-42 GB at 4096 tokens
    EXPECT_LE(q.total_bytes, spark.memory_bytes) << four_bit;
    EXPECT_EQ(max_context_that_fits(c, o, spark, 4096), 4096) << four_bit;
  }
}

TEST(MemoryVerdicts, MaxContextIsTheExactBoundary) {
  const ModelConfig c = *preset_config("Llama-2-70B");
  MemoryOptions o{scheme("nf4")};
  o.context = 1000;
  const MemoryEstimate at1000 = estimate_memory(c, o, DeviceKind::Cuda);
  const int64_t per_token = kv_cache_bytes(c, 1, 1, DType::BF16);
  // A device that holds 1000 tokens and one byte short of the 1001st.
  DeviceSpec d{"test", at1000.total_bytes + per_token - 1, DeviceKind::Cuda, ""};
  EXPECT_EQ(max_context_that_fits(c, o, d, 1'000'000), 1000);
  d.memory_bytes = at1000.total_bytes + per_token;
  EXPECT_EQ(max_context_that_fits(c, o, d, 1'000'000), 1001);
  EXPECT_EQ(max_context_that_fits(c, o, d, 800), 800);  // capped by the limit
  d.memory_bytes = 1;
  EXPECT_EQ(max_context_that_fits(c, o, d, 1'000'000), 0);
}

TEST(MemoryVerdicts, QuickFormula) {
  const QuickEstimate q = quick_estimate(70'000'000'000, scheme("bf16"));
  EXPECT_EQ(q.weights_bytes, 140'000'000'000);
  EXPECT_EQ(q.shape_from, "Llama-3-70B");  // nearest preset by parameter count
  EXPECT_EQ(quick_estimate(70'000'000'000, scheme("nf4")).weights_bytes, 39'375'000'000);  // 4.5 bits
  EXPECT_EQ(quick_estimate(500'000'000, scheme("bf16")).shape_from, "Qwen2.5-0.5B");
  EXPECT_THROW(quick_estimate(0, scheme("bf16")), Error);
}

// ---- parsers ----------------------------------------------------------------------------------

TEST(MemoryParsers, ByteSizes) {
  EXPECT_EQ(parse_byte_size("24GiB", "--device-memory"), 24LL << 30);
  EXPECT_EQ(parse_byte_size("24 gib", "--device-memory"), 24LL << 30);
  EXPECT_EQ(parse_byte_size("24G", "--device-memory"), 24LL << 30);
  EXPECT_EQ(parse_byte_size("24GB", "--device-memory"), 24'000'000'000);
  EXPECT_EQ(parse_byte_size("1.5TiB", "--device-memory"), 3LL << 39);
  EXPECT_EQ(parse_byte_size("512MiB", "--device-memory"), 512LL << 20);
  EXPECT_EQ(parse_byte_size("123456", "--device-memory"), 123456);
  for (const char* bad : {"", "GiB", "24XB", "-5GiB", "0", "nan", "1e30TB"}) {
    try {
      parse_byte_size(bad, "--device-memory");
      FAIL() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--device-memory"), std::string::npos) << e.what();
    }
  }
}

TEST(MemoryParsers, ParamCounts) {
  EXPECT_EQ(parse_param_count("70B", "--params"), 70'000'000'000);
  EXPECT_EQ(parse_param_count("7.5b", "--params"), 7'500'000'000);
  EXPECT_EQ(parse_param_count("500M", "--params"), 500'000'000);
  EXPECT_EQ(parse_param_count("1.1e9", "--params"), 1'100'000'000);
  EXPECT_EQ(parse_param_count("8030261248", "--params"), 8'030'261'248);
  EXPECT_THROW(parse_param_count("70X", "--params"), Error);
  EXPECT_THROW(parse_param_count("B", "--params"), Error);
  EXPECT_THROW(parse_param_count("-7B", "--params"), Error);
}

TEST(MemoryDevices, KnownTable) {
  const auto& d = known_devices();
  EXPECT_EQ(d.size(), 10u);
  EXPECT_EQ(device("DGX Spark 128GB").kind, DeviceKind::CudaUnified);
  EXPECT_EQ(device("H100 80GB").memory_bytes, 81079 * kMiB);  // measured free-at-idle total
  EXPECT_EQ(device("Laptop 16GB").kind, DeviceKind::Cpu);
  for (const auto& x : d) EXPECT_GT(x.memory_bytes, 0) << x.name;
}
