// quant/ckpt_writer.cpp — `qforge quantize` as a library call: quantizes every linear layer of a float
// checkpoint with the reference quantizers and writes a checkpoint the ecosystem reads (one shard, or
// shards of at most max_shard_bytes with model.safetensors.index.json), config.json with its
// quantization_config, tokenizer/generation files; all in "<out>.tmp-<pid>", renamed to <out> at the end.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "qforge/status.h"
#include "quant/ckpt_internal.h"
#include "quant/quant_checkpoint.h"

namespace qforge {

namespace fs = std::filesystem;
using nlohmann::ordered_json;
using namespace ckpt_detail;

std::string checkpoint_serialization(QuantFormat f) {
  switch (f) {
    case QuantFormat::NF4: case QuantFormat::FP4: return "bitsandbytes-4bit";
    case QuantFormat::INT8: return "bitsandbytes-8bit";
    case QuantFormat::FP8_E4M3: return "compressed-tensors";
    case QuantFormat::NVFP4: return "modelopt";
    case QuantFormat::INT4: return "gptq";
    default: break;
  }
  const std::string name = f == QuantFormat::None ? "none" : std::string(quant_traits(f).name);
  throw Error("--format " + name + ": no Hugging Face checkpoint layout is written for this format (writable: nf4, fp4, "
              "int8, fp8, nvfp4, int4); quantize it at load time with --quant instead");
}

namespace {

// Files of a model directory that travel with the weights.
constexpr const char* kCopiedFiles[] = {"tokenizer.json",         "tokenizer_config.json", "special_tokens_map.json",
                                        "generation_config.json", "chat_template.jinja",   "chat_template.json",
                                        "tokenizer.model",        "vocab.json",            "merges.txt",
                                        "added_tokens.json"};

struct LinearModule {
  std::string name;
  int64_t out, in;
};

// The linear modules of a Llama-family model, as src/model/weight_loader.cpp names them.
std::vector<LinearModule> linear_modules(const ModelConfig& c) {
  std::vector<LinearModule> v;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    v.push_back({p + "self_attn.q_proj", c.q_dim(), c.hidden_size});
    v.push_back({p + "self_attn.k_proj", c.kv_dim(), c.hidden_size});
    v.push_back({p + "self_attn.v_proj", c.kv_dim(), c.hidden_size});
    v.push_back({p + "self_attn.o_proj", c.hidden_size, c.q_dim()});
    v.push_back({p + "mlp.gate_proj", c.intermediate_size, c.hidden_size});
    v.push_back({p + "mlp.up_proj", c.intermediate_size, c.hidden_size});
    v.push_back({p + "mlp.down_proj", c.hidden_size, c.intermediate_size});
  }
  return v;
}

bool skipped(const std::string& name, const std::vector<std::string>& skip) {
  return std::any_of(skip.begin(), skip.end(),
                     [&](const std::string& s) { return !s.empty() && name.find(s) != std::string::npos; });
}

std::vector<float> as_f32(const Tensor& t) {
  std::vector<float> v(size_t(t.numel()));
  convert_floats(t.raw(), t.dtype(), v.data(), DType::F32, v.size());
  return v;
}

// max over rows of sum_k |W[r,k]| + |bias[r]| of a [rows, cols] float tensor.
double max_row_l1(const io::Checkpoint& ck, const std::string& module) {
  const auto w = as_f32(ck.tensor(module + ".weight"));
  const auto& info = ck.require(module + ".weight");
  const int64_t rows = info.shape.at(0), cols = info.shape.at(1);
  std::vector<float> b(size_t(rows), 0.0f);
  if (ck.find(module + ".bias")) b = as_f32(ck.tensor(module + ".bias"));
  double best = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double s = std::fabs(double(b[size_t(r)]));
    for (int64_t k = 0; k < cols; ++k) s += std::fabs(double(w[size_t(r * cols + k)]));
    best = std::max(best, s);
  }
  return best;
}

// |RMSNorm(x) * g|_inf <= sqrt(H) * max|g| for every x: |x_i| / rms(x) <= sqrt(H).
double norm_bound(const io::Checkpoint& ck, const std::string& norm, int64_t hidden) {
  const auto g = as_f32(ck.tensor(norm + ".weight"));
  double m = 0;
  for (float v : g) m = std::max(m, std::fabs(double(v)));
  return std::sqrt(double(hidden)) * m;
}

// A data-free upper bound on |input| of a Llama linear module (NVFP4 input_scale = bound / 2688), from
// the RMSNorm bound, the v/gate/up weights' row L1 norms (attention output is a convex combination of
// v rows) and |silu(x)| <= max(|x|, 0.2785). Loose, but no activation block scale can saturate.
float input_amax_bound(const io::Checkpoint& ck, const ModelConfig& c, const std::string& m) {
  const size_t dot = m.rfind('.');
  const std::string layer = m.substr(0, m.rfind('.', dot - 1) + 1), leaf = m.substr(dot + 1);
  const double attn = norm_bound(ck, layer + "input_layernorm", c.hidden_size);
  const double ffn = norm_bound(ck, layer + "post_attention_layernorm", c.hidden_size);
  double b = 0;
  if (leaf == "q_proj" || leaf == "k_proj" || leaf == "v_proj") b = attn;
  else if (leaf == "gate_proj" || leaf == "up_proj") b = ffn;
  else if (leaf == "o_proj") b = max_row_l1(ck, layer + "self_attn.v_proj") * attn;
  else if (leaf == "down_proj")
    b = std::max(max_row_l1(ck, layer + "mlp.gate_proj") * ffn, 0.2785) * (max_row_l1(ck, layer + "mlp.up_proj") * ffn);
  return float(std::min(b, 3.0e38));
}

// Collects tensors and writes them in shards of at most max_bytes (a tensor is never split).
class ShardWriter {
 public:
  ShardWriter(fs::path dir, uint64_t max_bytes, std::map<std::string, std::string> metadata)
      : dir_(std::move(dir)), max_(std::max<uint64_t>(max_bytes, 1)), metadata_(std::move(metadata)) {}
  void add(OutTensor t) {
    const uint64_t n = t.t.nbytes();
    if (!pending_.empty() && pending_bytes_ + n > max_) flush();
    pending_bytes_ += n;
    total_ += n;
    pending_.push_back(std::move(t));
  }
  // Renames the shards to their final names and writes the index when there are several.
  int finish() {
    if (!pending_.empty() || shards_.empty()) flush();
    const size_t count = shards_.size();
    auto final_name = [&](size_t i) {
      if (count == 1) return std::string("model.safetensors");
      char buf[64];
      std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, count);
      return std::string(buf);
    };
    ordered_json index;
    index["metadata"] = {{"total_size", total_}};
    std::map<std::string, std::string> weight_map;
    for (size_t i = 0; i < count; ++i) {
      std::error_code ec;
      fs::rename(shards_[i].first, dir_ / final_name(i), ec);
      if (ec) throw Error((dir_ / final_name(i)).string() + ": cannot rename shard: " + ec.message());
      for (const auto& n : shards_[i].second) weight_map[n] = final_name(i);
    }
    if (count > 1) {
      index["weight_map"] = weight_map;
      write_text(dir_ / "model.safetensors.index.json", index.dump(2) + "\n");
    }
    return int(count);
  }
  uint64_t total_bytes() const { return total_; }

  static void write_text(const fs::path& p, const std::string& text) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << text;
    f.close();
    if (!f) throw Error(p.string() + ": cannot write");
  }

 private:
  void flush() {
    std::vector<io::TensorToWrite> list;
    std::vector<std::string> names;
    for (const auto& t : pending_) {
      list.push_back({t.name, t.t.dtype(), t.shape, t.t.raw(), t.t.nbytes()});
      names.push_back(t.name);
    }
    const fs::path p = dir_ / ("shard-" + std::to_string(shards_.size()) + ".safetensors");
    io::write_safetensors(p, list, metadata_);
    shards_.emplace_back(p, std::move(names));
    pending_.clear();
    pending_bytes_ = 0;
  }
  fs::path dir_;
  uint64_t max_, pending_bytes_ = 0, total_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<OutTensor> pending_;
  std::vector<std::pair<fs::path, std::vector<std::string>>> shards_;
};

// Removes the temporary output directory unless released.
struct TempDirGuard {
  fs::path path;
  bool armed = true;
  ~TempDirGuard() {
    std::error_code ec;
    if (armed) fs::remove_all(path, ec);
  }
};

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Error(p.string() + ": cannot read");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Returns the parameters with the format's defaults resolved (blocksize).
QuantParams check_params(const QuantizeCheckpointOptions& opt) {
  checkpoint_serialization(opt.format);
  torch_dtype_name(opt.compute_dtype);
  // The format's own parameter checks (blocksize range, per-channel only for fp8, ...) on a dummy weight.
  Tensor dummy = Tensor::empty(DType::F32, {8, 64}, MemCategory::Other, true);
  for (int64_t i = 0; i < dummy.numel(); ++i) dummy.data<float>()[i] = float(i % 7) - 3.0f;
  const QuantParams resolved = quantize_weight(dummy, opt.format, opt.params).params;
  if (opt.params.symmetric && opt.format != QuantFormat::INT4) throw Error("--symmetric applies to int4 only");
  if (!skipped("lm_head", opt.skip_modules))
    throw Error("--skip-modules must keep lm_head unquantized when writing a checkpoint (qforge and transformers "
                "read lm_head as a float tensor)");
  return resolved;
}

}  // namespace

QuantizeCheckpointSummary write_quantized_checkpoint(const fs::path& model_dir, const fs::path& out_arg,
                                                     const QuantizeCheckpointOptions& opt) {
  const QuantParams params = check_params(opt);
  if (out_arg.empty()) throw Error("--out is required");
  const fs::path out = out_arg.has_filename() ? out_arg : out_arg.parent_path();  // "dir/" -> "dir"
  std::error_code ec;
  if (fs::exists(out, ec) && !opt.force)
    throw Error(out.string() + ": already exists (choose another --out or pass --force to replace it)");
  const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec)) throw Error(out.string() + ": parent directory " + parent.string() + " does not exist or is not a directory");
  const fs::path src = io::resolve_model_dir(model_dir.string());
  if (fs::exists(out, ec) && fs::equivalent(src, out, ec)) throw Error(out.string() + ": --out is the input model directory");

  const ModelConfig cfg = load_model_config(src / "config.json");
  if (!cfg.quantization_config_json.empty())
    throw Error((src / "config.json").string() + ": the model is already quantized (quantization_config present)");
  const io::Checkpoint ck = io::Checkpoint::open(src);

  QuantizeCheckpointSummary sum;
  sum.serialization = checkpoint_serialization(opt.format);
  const auto modules = linear_modules(cfg);
  std::map<std::string, const LinearModule*> to_quantize;
  ConfigInputs ci{opt.format, params, opt.compute_dtype, {"lm_head"}};
  for (const auto& m : modules) {
    if (skipped(m.name, opt.skip_modules)) ci.unquantized.push_back(m.name);
    else to_quantize[m.name + ".weight"] = &m;
  }
  sum.kept_modules = int64_t(ci.unquantized.size()) - 1;
  // The quantization_config is built first: its own checks (e.g. GPTQ's skip rule) fail before any work.
  ordered_json qcfg;
  switch (opt.format) {
    case QuantFormat::NF4: case QuantFormat::FP4: case QuantFormat::INT8: qcfg = bnb_quantization_config(ci); break;
    case QuantFormat::FP8_E4M3: qcfg = fp8_quantization_config(ci); break;
    case QuantFormat::NVFP4: qcfg = nvfp4_quantization_config(ci); break;
    default: qcfg = gptq_quantization_config(ci); break;
  }
  ordered_json config;
  try {
    config = ordered_json::parse(read_text(src / "config.json"));
  } catch (const nlohmann::json::exception&) {
    throw Error((src / "config.json").string() + ": not valid JSON");
  }

  const fs::path tmp = out.string() + ".tmp-" + std::to_string(::getpid());
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec) || ec)
    throw Error(out.string() + ": cannot create " + tmp.string() + (ec ? ": " + ec.message() : std::string()));
  TempDirGuard guard{tmp};

  // "format": "pt" is required by transformers; qforge.source lets the validation script find the source.
  ShardWriter shards(tmp, opt.max_shard_bytes, {{"format", "pt"}, {"qforge.source", fs::absolute(src).string()}});
  std::vector<std::string> names = ck.names();
  std::sort(names.begin(), names.end());
  std::set<std::string> done;
  for (const auto& name : names) {
    const auto& info = ck.require(name);
    auto it = to_quantize.find(name);
    if (it == to_quantize.end()) {
      Tensor t = ck.tensor(name);
      if (is_float_dtype(t.dtype()) && t.dtype() != opt.compute_dtype) t = t.to(opt.compute_dtype, MemCategory::Weights);
      shards.add({name, t, t.shape()});
      continue;
    }
    const LinearModule& m = *it->second;
    if (info.shape != std::vector<int64_t>{m.out, m.in})
      throw Error(info.file + ": tensor '" + name + "' has shape " + shape_text(info.shape) + ", config.json implies " +
                  shape_text({m.out, m.in}));
    if (!is_float_dtype(info.dtype))
      throw Error(info.file + ": tensor '" + name + "' has dtype " + std::string(dtype_traits(info.dtype).safetensors_name) +
                  " (expected F32, F16 or BF16)");
    const Tensor src_w = ck.tensor(name);
    const QuantWeight q = quantize_weight(src_w, opt.format, opt.params);
    io::release_mapped_pages(src_w.raw(), src_w.nbytes());  // stream: keep one input tensor resident
    TensorSink sink;
    switch (opt.format) {
      case QuantFormat::NF4: case QuantFormat::FP4: emit_bnb4(m.name, q, info.dtype, sink); break;
      case QuantFormat::INT8: emit_bnb8(m.name, q, sink); break;
      case QuantFormat::FP8_E4M3: emit_fp8(m.name, q, sink); break;
      case QuantFormat::NVFP4: emit_nvfp4(m.name, q, input_amax_bound(ck, cfg, m.name), sink); break;
      default: emit_gptq(m.name, q, sink); break;
    }
    for (auto& t : sink.tensors) shards.add(std::move(t));
    done.insert(name);
    ++sum.quantized_modules;
  }
  for (const auto& [name, m] : to_quantize)
    if (!done.count(name)) throw Error(src.string() + ": missing tensor '" + name + "'");
  sum.shards = shards.finish();
  sum.tensor_bytes = shards.total_bytes();

  config["quantization_config"] = qcfg;
  config["dtype"] = torch_dtype_name(opt.compute_dtype);
  if (config.contains("torch_dtype")) config["torch_dtype"] = torch_dtype_name(opt.compute_dtype);
  ShardWriter::write_text(tmp / "config.json", config.dump(2) + "\n");
  if (opt.format == QuantFormat::NVFP4) ShardWriter::write_text(tmp / "hf_quant_config.json", nvfp4_hf_quant_config(ci).dump(2) + "\n");
  for (const char* f : kCopiedFiles) {
    if (!fs::is_regular_file(src / f, ec)) continue;
    fs::copy_file(src / f, tmp / f, ec);
    if (ec) throw Error((tmp / f).string() + ": cannot copy " + (src / f).string() + ": " + ec.message());
    sum.copied_files.push_back(f);
  }

  // Move into place: an existing <out> (--force) is moved aside first and removed only after the rename.
  const fs::path old = out.string() + ".old-" + std::to_string(::getpid());
  const bool replacing = fs::exists(out, ec);
  if (replacing) {
    fs::rename(out, old, ec);
    if (ec) throw Error(out.string() + ": cannot move the existing directory aside: " + ec.message());
  }
  fs::rename(tmp, out, ec);
  if (ec) {
    std::error_code ec2;
    if (replacing) fs::rename(old, out, ec2);
    throw Error(out.string() + ": cannot rename " + tmp.string() + " into place: " + ec.message());
  }
  guard.armed = false;
  if (replacing) fs::remove_all(old, ec);
  return sum;
}

}  // namespace qforge
