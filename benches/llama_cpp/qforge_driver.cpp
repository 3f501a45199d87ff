// benches/llama_cpp/qforge_driver.cpp — the qforge side of the peer benchmark, compiled at bench time
// against build/libqforge.a by run_peer_bench.sh. Same modes and output as llama_driver.cpp (gen, logits)
// plus compare: perplexity of a logits file and KL divergence against a reference logits file.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "qforge/model.h"
#include "qforge/status.h"

namespace {

std::vector<int32_t> read_ids(const char* path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  for (char& c : s)
    if (c == ',') c = ' ';
  std::istringstream is(s);
  std::vector<int32_t> ids;
  for (long v; is >> v;) ids.push_back(int32_t(v));
  return ids;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

int32_t argmax(const std::vector<float>& l) { return int32_t(std::max_element(l.begin(), l.end()) - l.begin()); }

// log-softmax of one row
void log_softmax(const float* x, int n, std::vector<double>& out) {
  double mx = *std::max_element(x, x + n), s = 0;
  for (int i = 0; i < n; ++i) s += std::exp(double(x[i]) - mx);
  const double lse = mx + std::log(s);
  out.resize(size_t(n));
  for (int i = 0; i < n; ++i) out[size_t(i)] = double(x[i]) - lse;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) throw qforge::Error("usage: qforge_driver gen MODEL IDS N_GEN THREADS RUNS [QUANT] | logits MODEL IDS CTX THREADS OUT [QUANT] | compare IDS CTX VOCAB REF TEST");
  const std::string mode = argv[1];
  if (mode == "compare") {
    if (argc < 7) throw qforge::Error("compare IDS CTX VOCAB REF TEST");
    const auto ids = read_ids(argv[2]);
    const int ctx = std::atoi(argv[3]), V = std::atoi(argv[4]);
    std::ifstream fr(argv[5], std::ios::binary), ft(argv[6], std::ios::binary);
    if (!fr || !ft) throw qforge::Error("compare: cannot open the logits files");
    std::vector<float> r(static_cast<size_t>(V)), t(static_cast<size_t>(V));
    std::vector<double> lr, lt;
    double nll_r = 0, nll_t = 0, kl = 0;
    int64_t n = 0, agree = 0;
    for (size_t w = 0; w + size_t(ctx) <= ids.size(); w += size_t(ctx))
      for (int i = 0; i < ctx; ++i) {
        if (!fr.read(reinterpret_cast<char*>(r.data()), V * 4) || !ft.read(reinterpret_cast<char*>(t.data()), V * 4))
          throw qforge::Error("compare: logits files are shorter than the windows");
        if (i == ctx - 1) continue;  // no next token inside the window
        log_softmax(r.data(), V, lr);
        log_softmax(t.data(), V, lt);
        const int32_t next = ids[w + size_t(i) + 1];
        nll_r -= lr[size_t(next)];
        nll_t -= lt[size_t(next)];
        double k = 0;
        for (int j = 0; j < V; ++j) k += std::exp(lr[size_t(j)]) * (lr[size_t(j)] - lt[size_t(j)]);
        kl += k;
        agree += std::max_element(r.begin(), r.end()) - r.begin() == std::max_element(t.begin(), t.end()) - t.begin();
        ++n;
      }
    std::printf("{\"positions\": %lld, \"ppl_ref\": %.6f, \"ppl\": %.6f, \"kl\": %.8f, \"top1_agree\": %.6f}\n", (long long)n,
                std::exp(nll_r / double(n)), std::exp(nll_t / double(n)), kl / double(n), double(agree) / double(n));
    return 0;
  }
  if (argc < 7) throw qforge::Error("bad arguments");
  qforge::LoadOptions opt;
  opt.device = "cpu";
  opt.threads = std::atoi(argv[5]);
  if (argc > 7 && std::string(argv[7]) != "none") {
    auto q = qforge::parse_quant_format(argv[7]);
    if (!q) throw qforge::Error(std::string("unknown quant format ") + argv[7]);
    opt.quant = *q;
    opt.skip_modules.clear();  // lm_head quantized as well: the GGUF formats quantize output.weight too
  }
  auto model = qforge::Model::load(argv[2], opt);
  const auto ids = read_ids(argv[3]);
  if (ids.empty()) throw qforge::Error("no prompt ids");
  if (mode == "gen") {
    const int n_gen = std::atoi(argv[4]), runs = std::atoi(argv[6]);
    const int64_t np = int64_t(ids.size());
    model->reserve_context(np + n_gen + 8);
    std::vector<double> pre, dec;
    std::vector<int32_t> out;
    for (int run = 0; run <= runs; ++run) {  // run 0: warm-up, not timed (the KV cache is simply overwritten)
      auto t0 = std::chrono::steady_clock::now();
      int32_t t = argmax(model->forward(ids, 0));
      auto t1 = std::chrono::steady_clock::now();
      out.assign(1, t);
      for (int i = 1; i < n_gen; ++i) {
        t = argmax(model->forward(std::span<const int32_t>(&t, 1), np + i - 1));
        out.push_back(t);
      }
      auto t2 = std::chrono::steady_clock::now();
      if (run > 0) {
        pre.push_back(double(np) / std::chrono::duration<double>(t1 - t0).count());
        if (n_gen > 1) dec.push_back((n_gen - 1) / std::chrono::duration<double>(t2 - t1).count());
      }
    }
    std::printf("{\"engine\": \"qforge\", \"prefill_tok_s\": %.4f, \"decode_tok_s\": %.4f, \"tokens\": [", median(pre), median(dec));
    for (size_t i = 0; i < out.size(); ++i) std::printf("%s%d", i ? ", " : "", out[i]);
    std::printf("]}\n");
  } else if (mode == "logits") {
    const int ctx = std::atoi(argv[4]);
    FILE* fo = std::fopen(argv[6], "wb");
    if (!fo) throw qforge::Error(std::string("cannot write ") + argv[6]);
    for (size_t w = 0; w + size_t(ctx) <= ids.size(); w += size_t(ctx)) {
      auto l = model->forward(std::span<const int32_t>(ids.data() + w, size_t(ctx)), 0, true);
      std::fwrite(l.data(), 4, l.size(), fo);
    }
    std::fclose(fo);
    std::printf("{\"logits\": \"%s\", \"vocab\": %lld}\n", argv[6], (long long)model->config().vocab_size);
  } else {
    throw qforge::Error("unknown mode " + mode);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "qforge_driver: %s\n", e.what());
  return 1;
}
