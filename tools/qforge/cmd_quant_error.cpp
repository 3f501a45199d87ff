// tools/qforge/cmd_quant_error.cpp — `qforge quant-error --model PATH [--formats a,b] [--blocksize N]
// [--double-quant] [--layers] [--json]`: quantizes every linear weight of the model (q/k/v/o, gate/up/down
// of each layer; not lm_head or embeddings) with the reference quantizer of each format, dequantizes it
// and reports relative MSE, SQNR, max abs error and bytes per weight, per layer, per layer type and total.
#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "command.h"
#include "core/thread_pool.h"
#include "io/checkpoint.h"
#include "qforge/model_config.h"
#include "qforge/quant.h"
#include "qforge/status.h"

namespace qforge::cli {
namespace {

struct Err {
  double sq_err = 0, sq_w = 0, max_abs = 0;
  double bytes = 0, numel = 0;
  void add(const Err& o) {
    sq_err += o.sq_err;
    sq_w += o.sq_w;
    max_abs = std::max(max_abs, o.max_abs);
    bytes += o.bytes;
    numel += o.numel;
  }
  double rel_mse() const { return sq_w > 0 ? sq_err / sq_w : 0.0; }
  double sqnr_db() const { return sq_err > 0 ? 10.0 * std::log10(sq_w / sq_err) : INFINITY; }
};

nlohmann::json to_json(const Err& e) {
  nlohmann::json j = {{"rel_mse", e.rel_mse()}, {"max_abs", e.max_abs}, {"bytes_per_weight", e.bytes / e.numel}};
  const double s = e.sqnr_db();
  j["sqnr_db"] = std::isfinite(s) ? nlohmann::json(s) : nlohmann::json(nullptr);
  return j;
}

// Error of one weight (f32 copy, [rows, cols]) in one format; dequantized 64 rows at a time.
Err measure(const Tensor& w, const std::string& name, QuantFormat f, const QuantParams& p) {
  QuantWeight q;
  try {
    q = quantize_weight(w, f, p);
  } catch (const Error& e) {
    throw Error(name + ": " + e.what());
  }
  Err e;
  const int64_t R = w.dim(0), C = w.dim(1);
  const float* src = w.data<float>();
  std::vector<float> buf(size_t(std::min<int64_t>(64, R) * C));
  for (int64_t r0 = 0; r0 < R; r0 += 64) {
    const int64_t n = std::min<int64_t>(64, R - r0);
    dequantize_rows(q, r0, n, buf.data());
    for (int64_t i = 0; i < n * C; ++i) {
      const double a = src[r0 * C + i], d = a - double(buf[size_t(i)]);
      e.sq_err += d * d;
      e.sq_w += a * a;
      e.max_abs = std::max(e.max_abs, std::fabs(d));
    }
  }
  e.bytes = double(q.storage_bytes());
  e.numel = double(R * C);
  return e;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) v.push_back(item);
  return v;
}

Registrar reg("quant-error", "Per-layer weight quantization error (rel. MSE, SQNR, max abs) of each format",
              [](CLI::App& app) {
  struct Opts {
    std::string model, formats = "nf4,int8,fp8,nvfp4,mxfp4,int4,q4_0";
    int blocksize = 0;
    bool double_quant = false, json = false, layers = false;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("--model", o->model, "Model directory or ORG/NAME in the Hugging Face cache")->required();
  app.add_option("--formats", o->formats, "Comma-separated formats (see `qforge dtypes`)")->capture_default_str();
  app.add_option("--blocksize", o->blocksize, "Block size for nf4/fp4 (32..4096) and int4 group (32/64/128)");
  app.add_flag("--double-quant", o->double_quant, "nf4/fp4: double-quantize the absmax");
  app.add_flag("--layers", o->layers, "Human table: one row per layer (default: per layer type)");
  app.add_flag("--json", o->json, "Print one JSON object");
  return [o]() -> int {
    std::vector<QuantFormat> fmts;
    for (const auto& name : split_list(o->formats)) {
      auto f = parse_quant_format(name);
      if (!f) throw Error("--formats: unknown format '" + name + "' (see `qforge dtypes`)");
      fmts.push_back(*f);
    }
    if (fmts.empty()) throw Error("--formats: no format given");
    auto params_for = [&](QuantFormat f) {
      QuantParams p;
      const bool bnb = f == QuantFormat::NF4 || f == QuantFormat::FP4;
      if (bnb || f == QuantFormat::INT4) p.blocksize = o->blocksize;
      p.double_quant = bnb && o->double_quant;
      return p;
    };
    const auto dir = io::resolve_model_dir(o->model);
    const ModelConfig cfg = load_model_config(dir / "config.json");
    const auto ck = io::Checkpoint::open(dir);
    const char* kinds[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                           "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
    struct Layer {
      std::string name, kind;
      std::vector<Err> errs;
    };
    std::vector<Layer> layers;
    for (int64_t i = 0; i < cfg.num_hidden_layers; ++i)
      for (const char* k : kinds) {
        const std::string name = "model.layers." + std::to_string(i) + "." + k + ".weight";
        const auto& info = ck.require(name);
        if (info.shape.size() != 2)
          throw Error(info.file + ": tensor '" + name + "' is not 2-D");
        Tensor w = ck.tensor(name).to(DType::F32);
        Layer L{name.substr(0, name.size() - 7), std::string(k).substr(std::string(k).find('.') + 1),
                std::vector<Err>(fmts.size())};
        ThreadPool::global().parallel_for(int64_t(fmts.size()), 1, [&](int64_t a, int64_t b) {
          for (int64_t f = a; f < b; ++f) L.errs[size_t(f)] = measure(w, name, fmts[size_t(f)], params_for(fmts[size_t(f)]));
        });
        layers.push_back(std::move(L));
      }
    if (layers.empty()) throw Error(dir.string() + ": the model has no linear layers");
    std::vector<Err> total(fmts.size());
    std::vector<double> mean_rel(fmts.size(), 0.0);
    std::vector<std::string> kind_order;
    std::map<std::string, std::vector<Err>> by_kind;
    for (const auto& L : layers) {
      if (!by_kind.count(L.kind)) {
        kind_order.push_back(L.kind);
        by_kind[L.kind].resize(fmts.size());
      }
      for (size_t f = 0; f < fmts.size(); ++f) {
        total[f].add(L.errs[f]);
        by_kind[L.kind][f].add(L.errs[f]);
        mean_rel[f] += L.errs[f].rel_mse() / double(layers.size());
      }
    }
    std::vector<std::string> names;
    for (auto f : fmts) names.emplace_back(quant_traits(f).name);
    if (o->json) {
      nlohmann::json j;
      j["model"] = dir.string();
      j["formats"] = names;
      j["blocksize"] = o->blocksize;
      j["double_quant"] = o->double_quant;
      j["layers"] = nlohmann::json::array();
      for (const auto& L : layers) {
        nlohmann::json l = {{"name", L.name}, {"type", L.kind}};
        for (size_t f = 0; f < fmts.size(); ++f) l[names[f]] = to_json(L.errs[f]);
        j["layers"].push_back(l);
      }
      for (size_t f = 0; f < fmts.size(); ++f) {
        j["total"][names[f]] = to_json(total[f]);
        j["total"][names[f]]["mean_layer_rel_mse"] = mean_rel[f];
      }
      print_json(j);
      return 0;
    }
    std::printf("%s: %zu linear layers; rel. MSE = sum (w-wq)^2 / sum w^2 (SQNR dB in parentheses)\n",
                dir.filename().string().c_str(), layers.size());
    std::printf("%-28s", "layer");
    for (const auto& n : names) std::printf(" %22s", n.c_str());
    std::printf("\n");
    auto row = [&](const std::string& label, const std::vector<Err>& errs) {
      std::printf("%-28s", label.c_str());
      for (const auto& e : errs) std::printf("   %10.3e (%6.2f dB)", e.rel_mse(), e.sqnr_db());
      std::printf("\n");
    };
    if (o->layers)
      for (const auto& L : layers) row(L.name, L.errs);
    else
      for (const auto& k : kind_order) row(k, by_kind[k]);
    row("total", total);
    std::printf("%-28s", "mean over layers");
    for (double m : mean_rel) std::printf("   %10.3e           ", m);
    std::printf("\n%-28s", "max abs error");
    for (const auto& e : total) std::printf(" %22.4g", e.max_abs);
    std::printf("\n%-28s", "bytes per weight");
    for (const auto& e : total) std::printf(" %22.4f", e.bytes / e.numel);
    std::printf("\n");
    return 0;
  };
});

}  // namespace
}  // namespace qforge::cli
