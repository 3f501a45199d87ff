// tests/unit/quant_checkpoint_test.cpp — quantized checkpoints on the demo model: for every writable
// format, write -> read back gives QuantWeight buffers identical to quantize_weight's and logits identical
// to quantize-at-load; nf4 bytes/absmax equal the bnb kernel rule on every layer; key names, dtypes,
// shapes, quant_state JSON and quantization_config as the specs say; a hand-built transformers+bnb
// fixture loads; sharding; reader and writer errors leave nothing behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "qforge/model.h"
#include "qforge/status.h"
#include "quant/quant_checkpoint.h"
#include "quant/quant_codecs.h"
#include "test_support.h"

using namespace qforge;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::vector<int32_t> kPrompt = {1, 450, 3186, 310, 278, 3303, 29892, 322, 278};

struct Case {
  std::string name;
  QuantFormat format;
  QuantParams params;
};

std::vector<Case> cases() {
  QuantParams dq;
  dq.double_quant = true;
  QuantParams b128;
  b128.blocksize = 128;
  QuantParams pc;
  pc.per_channel = true;
  QuantParams sym;
  sym.symmetric = true;
  QuantParams g64;
  g64.blocksize = 64;
  return {{"nf4", QuantFormat::NF4, {}},        {"nf4_dq", QuantFormat::NF4, dq},
          {"nf4_b128", QuantFormat::NF4, b128}, {"fp4_dq", QuantFormat::FP4, dq},
          {"fp4", QuantFormat::FP4, {}},        {"int8", QuantFormat::INT8, {}},
          {"fp8", QuantFormat::FP8_E4M3, {}},   {"fp8_channel", QuantFormat::FP8_E4M3, pc},
          {"nvfp4", QuantFormat::NVFP4, {}},    {"int4_sym", QuantFormat::INT4, sym},
          {"int4_asym_g64", QuantFormat::INT4, g64}};
}

// Writes each case's checkpoint once per test process.
fs::path written(const Case& c) {
  static std::map<std::string, fs::path> cache;
  auto it = cache.find(c.name);
  if (it != cache.end()) return it->second;
  const fs::path out = test::temp_dir("qckpt") / c.name;
  QuantizeCheckpointOptions o;
  o.format = c.format;
  o.params = c.params;
  write_quantized_checkpoint(test::demo_model_dir(), out, o);
  return cache[c.name] = out;
}

std::vector<std::string> linear_names(const ModelConfig& c) {
  std::vector<std::string> v;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    for (const char* leaf : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                             "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"})
      v.push_back("model.layers." + std::to_string(i) + "." + leaf);
  return v;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.defined() != b.defined()) return false;
  if (!a.defined()) return true;
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

void expect_identical(const QuantWeight& got, const QuantWeight& want, const std::string& what) {
  EXPECT_EQ(got.format, want.format) << what;
  EXPECT_EQ(got.rows, want.rows) << what;
  EXPECT_EQ(got.cols, want.cols) << what;
  EXPECT_EQ(got.params.blocksize, want.params.blocksize) << what;
  EXPECT_EQ(got.params.double_quant, want.params.double_quant) << what;
  EXPECT_EQ(got.params.per_channel, want.params.per_channel) << what;
  EXPECT_EQ(got.params.symmetric, want.params.symmetric) << what;
  EXPECT_TRUE(same_bytes(got.data, want.data)) << what << " data";
  EXPECT_TRUE(same_bytes(got.scales, want.scales)) << what << " scales";
  EXPECT_TRUE(same_bytes(got.scales2, want.scales2)) << what << " scales2";
  EXPECT_TRUE(same_bytes(got.zeros, want.zeros)) << what << " zeros";
  EXPECT_TRUE(same_bytes(got.g_idx, want.g_idx)) << what << " g_idx";
  EXPECT_EQ(f32_bits(got.offset), f32_bits(want.offset)) << what << " offset";
}

std::vector<float> logits_of(const std::string& dir, QuantFormat quant = QuantFormat::None, QuantParams p = {}) {
  LoadOptions o;
  o.device = "cpu";
  o.quant = quant;
  o.quant_params = p;
  auto m = Model::load(dir, o);
  return m->forward(kPrompt, 0, true);
}

json config_of(const fs::path& dir) { return json::parse(test::read_file(dir / "config.json")); }

std::vector<std::string> dir_listing(const fs::path& d) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(d)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

class RoundTrip : public ::testing::TestWithParam<Case> {};

}  // namespace

TEST_P(RoundTrip, BuffersEqualQuantizeWeight) {
  const Case& c = GetParam();
  const fs::path out = written(c);
  const auto src = io::Checkpoint::open(test::demo_model_dir());
  const auto ck = io::Checkpoint::open(out);
  const ModelConfig cfg = load_model_config(out / "config.json");
  ASSERT_EQ(prequantized_format(cfg), c.format);
  for (const auto& m : linear_names(cfg)) {
    const auto& info = src.require(m + ".weight");
    auto got = load_prequantized_linear(ck, cfg, m, info.shape[0], info.shape[1]);
    ASSERT_TRUE(got.has_value()) << m;
    expect_identical(*got, quantize_weight(src.tensor(m + ".weight"), c.format, c.params), c.name + " " + m);
  }
}

TEST_P(RoundTrip, LogitsEqualQuantizeAtLoad) {
  const Case& c = GetParam();
  const auto reloaded = logits_of(written(c).string());
  const auto at_load = logits_of(test::demo_model_dir().string(), c.format, c.params);
  ASSERT_EQ(reloaded.size(), at_load.size());
  size_t diff = 0;
  for (size_t i = 0; i < reloaded.size(); ++i) diff += f32_bits(reloaded[i]) != f32_bits(at_load[i]);
  EXPECT_EQ(diff, 0u) << c.name;
  // and the model is not the float one (the weights really are quantized)
  const auto plain = logits_of(test::demo_model_dir().string());
  EXPECT_NE(std::memcmp(plain.data(), reloaded.data(), plain.size() * 4), 0);
}

INSTANTIATE_TEST_SUITE_P(QuantCheckpoint, RoundTrip, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

// The bnb CUDA rule (bitsandbytes.md §1.2–1.3) written out here: absmax = max|x| per 64 flattened
// elements; y = x * rcp.approx.ftz(absmax); code = number of the 15 thresholds t_i (fp32 hex from the
// spec) with y > t_i; even flat index in the high nibble. Checked on every element of every layer.
TEST(QuantCheckpoint, Nf4BytesAndAbsmaxFollowTheKernelRuleOnEveryLayer) {
  static const uint32_t kThresholdHex[15] = {0xbf591cd8, 0xbf1c5270, 0xbeeb8480, 0xbeadea76, 0xbe703cec,
                                             0xbe0d38bc, 0xbd3a7871, 0x3d22faff, 0x3df64862, 0x3e5067e0,
                                             0x3e9582d4, 0x3ec753f9, 0x3f006d04, 0x3f248daf, 0x3f5c89da};
  const fs::path out = written(cases()[0]);
  const auto src = io::Checkpoint::open(test::demo_model_dir());
  const auto ck = io::Checkpoint::open(out);
  const ModelConfig cfg = load_model_config(out / "config.json");
  int64_t blocks_checked = 0;
  for (const auto& m : linear_names(cfg)) {
    const Tensor w = src.tensor(m + ".weight");
    std::vector<float> x(size_t(w.numel()));
    convert_floats(w.raw(), w.dtype(), x.data(), DType::F32, x.size());
    const auto& packed = ck.require(m + ".weight");
    const auto& absmax = ck.require(m + ".weight.absmax");
    const int64_t n = int64_t(x.size()), B = 64, nb = (n + B - 1) / B;
    ASSERT_EQ(packed.shape, (std::vector<int64_t>{(n + 1) / 2, 1})) << m;
    ASSERT_EQ(absmax.shape, (std::vector<int64_t>{nb})) << m;
    const float* am = reinterpret_cast<const float*>(absmax.data);
    for (int64_t b = 0; b < nb; ++b, ++blocks_checked) {
      float a = 0.0f;
      for (int64_t e = b * B; e < std::min(n, (b + 1) * B); ++e) a = std::max(a, std::fabs(x[size_t(e)]));
      ASSERT_EQ(f32_bits(am[b]), f32_bits(a)) << m << " block " << b;
      const float inv = quant_detail::rcp_approx_ftz(a);
      for (int64_t e = b * B; e < std::min(n, (b + 1) * B); ++e) {
        const float y = quant_detail::ftz(x[size_t(e)] * inv);
        int code = 0;
        for (uint32_t t : kThresholdHex) code += y > f32_from_bits(t);
        const uint8_t byte = packed.data[e / 2];
        ASSERT_EQ((e % 2 == 0) ? byte >> 4 : byte & 15, code) << m << " element " << e;
      }
    }
  }
  EXPECT_GT(blocks_checked, 80000);
}

TEST(QuantCheckpoint, Nf4OneBlockByHand) {
  // q_proj of layer 0, block 0: the 64 elements, absmax and the two first bytes recomputed from the
  // NF4 table midpoints with IEEE division (the approximate reciprocal differs from it by < 2 ulp,
  // which cannot move these values across a threshold unless they sit within 1e-6 of one).
  const auto src = io::Checkpoint::open(test::demo_model_dir());
  const auto ck = io::Checkpoint::open(written(cases()[0]));
  const std::string m = "model.layers.0.self_attn.q_proj";
  const Tensor w = src.tensor(m + ".weight");
  float x[64], a = 0;
  for (int i = 0; i < 64; ++i) a = std::max(a, std::fabs(x[i] = bf16_to_f32(w.data<uint16_t>()[i])));
  EXPECT_EQ(reinterpret_cast<const float*>(ck.require(m + ".weight.absmax").data)[0], a);
  const float nf4[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                         -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                         0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
                         0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};
  const uint8_t* packed = ck.require(m + ".weight").data;
  for (int i = 0; i < 64; ++i) {
    const double y = double(x[i]) / double(a);
    int code = 0;
    for (int t = 0; t < 15; ++t) code += y > (double(nf4[t]) + double(nf4[t + 1])) / 2;
    const int got = (i % 2 == 0) ? packed[i / 2] >> 4 : packed[i / 2] & 15;
    EXPECT_EQ(got, code) << "element " << i << " y=" << y;
  }
}

TEST(QuantCheckpoint, BnbKeyNamesQuantStateAndConfigAsTheSpec) {
  const fs::path out = written(cases()[1]);  // nf4 + double quant
  const auto ck = io::Checkpoint::open(out);
  const std::string p = "model.layers.3.mlp.down_proj.weight";  // [288, 768]
  const int64_t n = 288 * 768, nb = n / 64;
  struct Want { std::string key; DType dt; std::vector<int64_t> shape; };
  const std::vector<Want> want = {{"", DType::U8, {n / 2, 1}},
                                  {".absmax", DType::U8, {nb}},
                                  {".quant_map", DType::F32, {16}},
                                  {".nested_absmax", DType::F32, {(nb + 255) / 256}},
                                  {".nested_quant_map", DType::F32, {256}}};
  for (const auto& w : want) {
    const auto* t = ck.find(p + w.key);
    ASSERT_NE(t, nullptr) << p + w.key;
    EXPECT_EQ(t->dtype, w.dt) << w.key;
    EXPECT_EQ(t->shape, w.shape) << w.key;
  }
  // Every key of the module is one of those plus the quant_state: nothing else.
  int module_keys = 0;
  for (const auto& k : ck.names()) module_keys += k.rfind("model.layers.3.mlp.down_proj.", 0) == 0;
  EXPECT_EQ(module_keys, 6);
  const auto& qs = ck.require(p + ".quant_state.bitsandbytes__nf4");
  EXPECT_EQ(qs.dtype, DType::U8);
  const std::string text(reinterpret_cast<const char*>(qs.data), qs.nbytes);
  const QuantWeight q = quantize_weight(io::Checkpoint::open(test::demo_model_dir()).tensor(p), QuantFormat::NF4,
                                        cases()[1].params);
  EXPECT_EQ(text, "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"bfloat16\", \"shape\": [288, 768], "
                  "\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": " +
                      json(double(q.offset)).dump() + "}");
  EXPECT_EQ(float(json::parse(text)["nested_offset"].get<double>()), q.offset);
  // quant_map bytes are the NF4 table, nested map the dynamic map (fp32 hex from the spec, 3 entries).
  const float* qm = reinterpret_cast<const float*>(ck.require(p + ".quant_map").data);
  EXPECT_EQ(f32_bits(qm[1]), 0xbf3239b1u);
  EXPECT_EQ(f32_bits(qm[8]), 0x3da2faffu);
  const float* nm = reinterpret_cast<const float*>(ck.require(p + ".nested_quant_map").data);
  EXPECT_EQ(f32_bits(nm[0]), 0xbf7e3333u);
  EXPECT_EQ(f32_bits(nm[127]), 0u);
  EXPECT_EQ(f32_bits(nm[255]), 0x3f800000u);
  // Unquantized tensors in the compute dtype; lm_head tied (only the embedding is stored).
  EXPECT_EQ(ck.require("model.embed_tokens.weight").dtype, DType::BF16);
  EXPECT_EQ(ck.require("model.norm.weight").dtype, DType::BF16);
  EXPECT_EQ(ck.find("lm_head.weight"), nullptr);

  const json cfg = config_of(out);
  const json want_q = json::parse(R"({"_load_in_4bit": true, "_load_in_8bit": false, "bnb_4bit_compute_dtype": "bfloat16",
    "bnb_4bit_quant_storage": "uint8", "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": true,
    "llm_int8_enable_fp32_cpu_offload": false, "llm_int8_has_fp16_weight": false, "llm_int8_skip_modules": ["lm_head"],
    "llm_int8_threshold": 6.0, "load_in_4bit": true, "load_in_8bit": false, "quant_method": "bitsandbytes"})");
  EXPECT_EQ(cfg["quantization_config"], want_q);
  EXPECT_EQ(cfg["dtype"], "bfloat16");
  EXPECT_EQ(cfg["torch_dtype"], "bfloat16");
  EXPECT_EQ(cfg["hidden_size"], 288);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"})
    EXPECT_EQ(test::read_file(out / f), test::read_file(test::demo_model_dir() / f)) << f;
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  EXPECT_FALSE(fs::exists(out / "model.safetensors.index.json"));
  auto st = io::SafetensorsFile::open(out / "model.safetensors");
  EXPECT_EQ(st.metadata().at("format"), "pt");  // transformers refuses files without it
}

TEST(QuantCheckpoint, Int8Fp8Nvfp4GptqKeyNamesAndConfigs) {
  const std::string m = "model.layers.1.self_attn.k_proj";  // [96, 288]
  {
    const fs::path out = written(cases()[5]);
    const auto ck = io::Checkpoint::open(out);
    EXPECT_EQ(ck.require(m + ".weight").dtype, DType::I8);
    EXPECT_EQ(ck.require(m + ".weight").shape, (std::vector<int64_t>{96, 288}));
    EXPECT_EQ(ck.require(m + ".SCB").dtype, DType::F32);
    EXPECT_EQ(ck.require(m + ".SCB").shape, (std::vector<int64_t>{96}));
    EXPECT_EQ(ck.require(m + ".weight_format").dtype, DType::U8);
    EXPECT_TRUE(ck.require(m + ".weight_format").shape.empty());
    const json q = config_of(out)["quantization_config"];
    EXPECT_EQ(q["load_in_8bit"], true);
    EXPECT_EQ(q["load_in_4bit"], false);
    EXPECT_EQ(q["quant_method"], "bitsandbytes");
  }
  {
    const fs::path out = written(cases()[7]);  // fp8 per channel
    const auto ck = io::Checkpoint::open(out);
    EXPECT_EQ(ck.require(m + ".weight").dtype, DType::F8_E4M3);
    EXPECT_EQ(ck.require(m + ".weight_scale").shape, (std::vector<int64_t>{96, 1}));
    EXPECT_EQ(ck.find(m + ".input_scale"), nullptr);  // dynamic per-token activations
    const json q = config_of(out)["quantization_config"];
    EXPECT_EQ(q["quant_method"], "compressed-tensors");
    EXPECT_EQ(q["format"], "float-quantized");
    EXPECT_EQ(q["config_groups"]["group_0"]["weights"]["strategy"], "channel");
    EXPECT_EQ(q["config_groups"]["group_0"]["input_activations"]["dynamic"], true);
    EXPECT_EQ(q["ignore"], json::array({"lm_head"}));
    EXPECT_EQ(io::Checkpoint::open(written(cases()[6])).require(m + ".weight_scale").shape, (std::vector<int64_t>{1}));
  }
  {
    const fs::path out = written(cases()[8]);  // nvfp4
    const auto ck = io::Checkpoint::open(out);
    EXPECT_EQ(ck.require(m + ".weight").dtype, DType::U8);
    EXPECT_EQ(ck.require(m + ".weight").shape, (std::vector<int64_t>{96, 144}));
    EXPECT_EQ(ck.require(m + ".weight_scale").dtype, DType::F8_E4M3);
    EXPECT_EQ(ck.require(m + ".weight_scale").shape, (std::vector<int64_t>{96, 18}));
    EXPECT_TRUE(ck.require(m + ".weight_scale_2").shape.empty());
    const auto& is = ck.require(m + ".input_scale");
    EXPECT_TRUE(is.shape.empty());
    // input_scale = sqrt(288) * max|input_layernorm| / 2688 (the RMSNorm bound)
    const Tensor g = io::Checkpoint::open(test::demo_model_dir()).tensor("model.layers.1.input_layernorm.weight");
    float gmax = 0;
    for (int i = 0; i < 288; ++i) gmax = std::max(gmax, std::fabs(bf16_to_f32(g.data<uint16_t>()[i])));
    EXPECT_NEAR(*reinterpret_cast<const float*>(is.data), std::sqrt(288.0) * gmax / 2688.0, 1e-6 * gmax);
    const json q = config_of(out)["quantization_config"];
    EXPECT_EQ(q["quant_method"], "modelopt");
    EXPECT_EQ(q["quant_algo"], "NVFP4");
    EXPECT_EQ(q["group_size"], 16);
    const json h = json::parse(test::read_file(out / "hf_quant_config.json"));
    EXPECT_EQ(h["quantization"]["quant_algo"], "NVFP4");
    EXPECT_EQ(h["quantization"]["exclude_modules"], json::array({"lm_head"}));
  }
  {
    const fs::path out = written(cases()[9]);  // int4 sym, group 128
    const auto ck = io::Checkpoint::open(out);
    EXPECT_EQ(ck.require(m + ".qweight").shape, (std::vector<int64_t>{36, 96}));
    EXPECT_EQ(ck.require(m + ".qzeros").shape, (std::vector<int64_t>{3, 12}));
    EXPECT_EQ(ck.require(m + ".scales").dtype, DType::F16);
    EXPECT_EQ(ck.require(m + ".scales").shape, (std::vector<int64_t>{3, 96}));
    EXPECT_EQ(ck.require(m + ".g_idx").shape, (std::vector<int64_t>{288}));
    EXPECT_EQ(ck.find(m + ".weight"), nullptr);
    // v1 convention: symmetric zero 8 is stored as 7 in every nibble
    EXPECT_EQ(reinterpret_cast<const uint32_t*>(ck.require(m + ".qzeros").data)[0], 0x77777777u);
    const json q = config_of(out)["quantization_config"];
    EXPECT_EQ(q["quant_method"], "gptq");
    EXPECT_EQ(q["bits"], 4);
    EXPECT_EQ(q["group_size"], 128);
    EXPECT_EQ(q["sym"], true);
    EXPECT_EQ(q["desc_act"], false);
    EXPECT_EQ(q["checkpoint_format"], "gptq");
  }
}

// A checkpoint laid out as transformers + bitsandbytes save it, built here key by key from the spec
// (bitsandbytes.md §4), with quant_storage bf16 (the same bytes viewed as bf16) to exercise that path.
TEST(QuantCheckpoint, ReadsAHandBuiltTransformersBnbCheckpoint) {
  const fs::path dir = test::temp_dir("bnbfixture");
  const auto src = io::Checkpoint::open(test::demo_model_dir());
  QuantParams dq;
  dq.double_quant = true;
  std::vector<QuantWeight> keep;
  std::vector<std::string> json_keep;
  std::vector<io::TensorToWrite> tensors;
  const ModelConfig cfg = load_model_config(test::demo_model_dir() / "config.json");
  const auto names = linear_names(cfg);
  for (const auto& name : src.names()) {
    const auto& info = src.require(name);
    const std::string m = name.substr(0, name.size() - 7);
    if (std::find(names.begin(), names.end(), m) == names.end()) {
      tensors.push_back({name, info.dtype, info.shape, info.data, info.nbytes});
      continue;
    }
    keep.push_back(quantize_weight(src.tensor(name), QuantFormat::NF4, dq));
    const QuantWeight& q = keep.back();
    const int64_t n = q.rows * q.cols;
    tensors.push_back({name, DType::BF16, {n / 4, 1}, q.data.raw(), q.data.nbytes()});
    tensors.push_back({name + ".absmax", DType::U8, {q.scales.numel()}, q.scales.raw(), q.scales.nbytes()});
    tensors.push_back({name + ".quant_map", DType::F32, {16}, quant_detail::kNf4Values.data(), 64});
    tensors.push_back({name + ".nested_absmax", DType::F32, {q.scales2.numel()}, q.scales2.raw(), q.scales2.nbytes()});
    tensors.push_back({name + ".nested_quant_map", DType::F32, {256}, quant_detail::kDynamicMap8.data(), 1024});
    json_keep.push_back("{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"bfloat16\", \"shape\": [" +
                        std::to_string(q.rows) + ", " + std::to_string(q.cols) +
                        "], \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": " +
                        json(double(q.offset)).dump() + "}");
  }
  size_t j = 0;
  for (const auto& name : src.names()) {
    const std::string m = name.substr(0, name.size() - 7);
    if (std::find(names.begin(), names.end(), m) == names.end()) continue;
    tensors.push_back({name + ".quant_state.bitsandbytes__nf4", DType::U8, {int64_t(json_keep[j].size())},
                       json_keep[j].data(), json_keep[j].size()});
    ++j;
  }
  io::write_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
  json config = json::parse(test::read_file(test::demo_model_dir() / "config.json"));
  config["quantization_config"] = json::parse(R"({"_load_in_4bit": true, "_load_in_8bit": false,
    "bnb_4bit_compute_dtype": "bfloat16", "bnb_4bit_quant_storage": "bfloat16", "bnb_4bit_quant_type": "nf4",
    "bnb_4bit_use_double_quant": true, "llm_int8_enable_fp32_cpu_offload": false, "llm_int8_has_fp16_weight": false,
    "llm_int8_skip_modules": null, "llm_int8_threshold": 6.0, "load_in_4bit": true, "load_in_8bit": false,
    "quant_method": "bitsandbytes"})");
  std::ofstream(dir / "config.json") << config.dump(2);
  const auto a = logits_of(dir.string());
  const auto b = logits_of(test::demo_model_dir().string(), QuantFormat::NF4, dq);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0);
}

TEST(QuantCheckpoint, ShardsWithAnIndexWhenLargerThanTheShardSize) {
  const fs::path out = test::temp_dir("qshard") / "nf4";
  QuantizeCheckpointOptions o;
  o.format = QuantFormat::NF4;
  o.max_shard_bytes = 8'000'000;
  const auto s = write_quantized_checkpoint(test::demo_model_dir(), out, o);
  EXPECT_GE(s.shards, 2);
  const json idx = json::parse(test::read_file(out / "model.safetensors.index.json"));
  EXPECT_EQ(idx["metadata"]["total_size"].get<uint64_t>(), s.tensor_bytes);
  EXPECT_TRUE(fs::exists(out / ("model-00001-of-0000" + std::to_string(s.shards) + ".safetensors")));
  EXPECT_FALSE(fs::exists(out / "model.safetensors"));
  const auto a = logits_of(out.string());
  const auto b = logits_of(written(cases()[0]).string());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0);
}

TEST(QuantCheckpoint, WriterErrorsLeaveNothingBehind) {
  const fs::path parent = test::temp_dir("qerr");
  auto expect_error = [&](QuantizeCheckpointOptions o, const fs::path& out, const std::string& needle) {
    const auto before = dir_listing(parent);
    try {
      write_quantized_checkpoint(test::demo_model_dir(), out, o);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
    EXPECT_EQ(dir_listing(parent), before) << needle;
  };
  QuantizeCheckpointOptions o;
  o.format = QuantFormat::MXFP4;
  expect_error(o, parent / "a", "--format mxfp4");
  o.format = QuantFormat::Q4_0;
  expect_error(o, parent / "a", "--format q4_0");
  o.format = QuantFormat::NF4;
  o.params.blocksize = 48;
  expect_error(o, parent / "a", "--blocksize 48");
  o.params.blocksize = 0;
  o.skip_modules = {"mlp"};
  expect_error(o, parent / "a", "lm_head");
  o.skip_modules = {"lm_head"};
  fs::create_directory(parent / "exists");
  expect_error(o, parent / "exists", "already exists");
  expect_error(o, parent / "nope" / "out", "does not exist");
  std::ofstream(parent / "file") << "x";
  expect_error(o, parent / "file" / "out", "does not exist");
  o.format = QuantFormat::INT4;
  o.skip_modules = {"lm_head", "down_proj"};
  expect_error(o, parent / "a", "cannot skip single layers");
  // A failure after the temporary directory exists (source tensor of the wrong shape) removes it.
  const fs::path bad = test::temp_dir("qbadsrc");
  for (const auto& e : fs::directory_iterator(test::demo_model_dir())) fs::copy(e.path(), bad / e.path().filename());
  json c = json::parse(test::read_file(bad / "config.json"));
  c["intermediate_size"] = 700;
  std::ofstream(bad / "config.json") << c.dump();
  o = {};
  o.format = QuantFormat::NF4;
  const auto before = dir_listing(parent);
  try {
    write_quantized_checkpoint(bad, parent / "late", o);
    ADD_FAILURE() << "no error for a shape mismatch";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json implies"), std::string::npos) << e.what();
  }
  EXPECT_EQ(dir_listing(parent), before);
  // --force replaces an existing directory.
  o.force = true;
  write_quantized_checkpoint(test::demo_model_dir(), parent / "exists", o);
  EXPECT_TRUE(fs::exists(parent / "exists" / "model.safetensors"));
}

TEST(QuantCheckpoint, ReaderErrorsNameTheFileAndTensor) {
  ModelConfig cfg;
  auto fmt_error = [&](const std::string& qc, const std::string& needle) {
    cfg.quantization_config_json = qc;
    try {
      prequantized_format(cfg);
      ADD_FAILURE() << "no error for " << qc;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
    }
  };
  fmt_error(R"({"quant_method": "awq", "bits": 4})", "quant_method 'awq'");
  fmt_error(R"({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": true})", "desc_act");
  fmt_error(R"({"quant_method": "gptq", "bits": 8, "group_size": 128})", "bits 8");
  fmt_error(R"({"quant_method": "fp8", "weight_block_size": [128, 128]})", "weight_block_size");
  fmt_error(R"({"quant_method": "modelopt", "quant_algo": "W4A8_AWQ"})", "W4A8_AWQ");
  fmt_error(R"({"quant_method": "bitsandbytes"})", "neither load_in_4bit");
  fmt_error(R"({"quant_method": "mxfp4"})", "mxfp4");
  cfg.quantization_config_json = R"({"quant_method": "bitsandbytes", "load_in_4bit": true})";
  EXPECT_EQ(prequantized_format(cfg), QuantFormat::FP4);  // BitsAndBytesConfig's default quant type

  // A corrupted nf4 checkpoint: absmax of the wrong dtype, a custom quant_map.
  const fs::path dir = test::temp_dir("qcorrupt");
  const auto good = io::Checkpoint::open(written(cases()[0]));
  const std::string m = "model.layers.0.self_attn.q_proj";
  auto rewrite = [&](const std::string& victim, DType dt, std::vector<int64_t> shape, const void* data, size_t n) {
    std::vector<io::TensorToWrite> ts;
    for (const auto& name : good.names()) {
      const auto& i = good.require(name);
      if (name == victim) ts.push_back({name, dt, shape, data, n});
      else ts.push_back({name, i.dtype, i.shape, i.data, i.nbytes});
    }
    fs::remove(dir / "model.safetensors");
    io::write_safetensors(dir / "model.safetensors", ts);
    fs::copy_file(written(cases()[0]) / "config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  };
  auto load_error = [&](const std::string& needle) {
    try {
      Model::load(dir.string());
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
    }
  };
  const auto& am = good.require(m + ".weight.absmax");
  rewrite(m + ".weight.absmax", DType::U8, {int64_t(am.nbytes)}, am.data, am.nbytes);
  load_error("'" + m + ".weight.absmax' (absmax) has dtype U8, expected F32");
  std::vector<float> custom(16, 0.5f);
  rewrite(m + ".weight.quant_map", DType::F32, {16}, custom.data(), 64);
  load_error("'" + m + ".weight.quant_map' is not the standard nf4 table");
  const std::string bad_json = "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"bfloat16\", \"shape\": [288, 287]}";
  rewrite(m + ".weight.quant_state.bitsandbytes__nf4", DType::U8, {int64_t(bad_json.size())}, bad_json.data(), bad_json.size());
  load_error("shape [288,287]");
}

// The same FP8 tensors under the other configs vLLM reads (HF "fp8" per-tensor, ModelOpt FP8) load
// identically; GPTQ "gptq_v2" (zero stored as is) reads the zero without the +1.
TEST(QuantCheckpoint, ReadsHfFp8ModeloptFp8AndGptqV2Configs) {
  const auto want = logits_of(written(cases()[6]).string());
  for (const std::string qc : {R"({"quant_method": "fp8", "activation_scheme": "dynamic"})",
                               R"({"quant_method": "modelopt", "quant_algo": "FP8", "kv_cache_quant_algo": null})",
                               R"({"quant_method": "modelopt", "quantization": {"quant_algo": "FP8"}})"}) {
    const fs::path dir = test::temp_dir("qfp8cfg");
    for (const auto& e : fs::directory_iterator(written(cases()[6]))) fs::copy(e.path(), dir / e.path().filename());
    json c = config_of(dir);
    c["quantization_config"] = json::parse(qc);
    std::ofstream(dir / "config.json") << c.dump();
    const auto got = logits_of(dir.string());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * 4), 0) << qc;
  }
  // gptq_v2: rewrite every qzeros nibble z-1 -> z and flip checkpoint_format.
  const fs::path dir = test::temp_dir("qgptqv2");
  const auto v1 = io::Checkpoint::open(written(cases()[10]));
  std::vector<std::vector<uint32_t>> zeros;
  std::vector<io::TensorToWrite> ts;
  for (const auto& name : v1.names()) {
    const auto& i = v1.require(name);
    if (name.size() > 7 && name.substr(name.size() - 7) == ".qzeros") {
      const uint32_t* z = reinterpret_cast<const uint32_t*>(i.data);
      zeros.emplace_back(z, z + i.nbytes / 4);
      for (auto& w : zeros.back()) {
        uint32_t out = 0;
        for (int k = 0; k < 8; ++k) out |= ((((w >> (4 * k)) & 15) + 1) & 15) << (4 * k);
        w = out;
      }
    }
  }
  size_t zi = 0;
  for (const auto& name : v1.names()) {
    const auto& i = v1.require(name);
    if (name.size() > 7 && name.substr(name.size() - 7) == ".qzeros")
      ts.push_back({name, i.dtype, i.shape, zeros[zi++].data(), i.nbytes});
    else
      ts.push_back({name, i.dtype, i.shape, i.data, i.nbytes});
  }
  io::write_safetensors(dir / "model.safetensors", ts, {{"format", "pt"}});
  json c = config_of(written(cases()[10]));
  c["quantization_config"]["checkpoint_format"] = "gptq_v2";
  std::ofstream(dir / "config.json") << c.dump();
  const auto a = logits_of(dir.string());
  const auto b = logits_of(written(cases()[10]).string());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0);
}
