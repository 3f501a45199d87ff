// benches/llama_cpp/llama_driver.cpp — drives llama.cpp (the prebuilt CPU libraries of the npm package
// @node-llama-cpp/linux-x64) through its public C API, compiled at bench time by run_peer_bench.sh.
// Modes: gen (greedy generation from given prompt ids: tokens + median prefill/decode tokens/s, warm-up
// excluded), logits (all-position logits of windows, float32 to a file), quantize (llama_model_quantize).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ggml-backend.h"
#include "llama.h"

namespace {

std::vector<llama_token> read_ids(const char* path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  for (char& c : s)
    if (c == ',') c = ' ';
  std::istringstream is(s);
  std::vector<llama_token> ids;
  for (long v; is >> v;) ids.push_back(llama_token(v));
  return ids;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

llama_token argmax(const float* l, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (l[i] > l[best]) best = i;
  return best;
}

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "llama_driver: %s\n", m.c_str());
  std::exit(1);
}

void quiet_log(ggml_log_level level, const char* text, void*) {
  if (level >= GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) die("usage: llama_driver gen MODEL IDS N_GEN THREADS RUNS | logits MODEL IDS CTX THREADS OUT | quantize IN OUT FTYPE [mixed]");
  const std::string mode = argv[1];
  llama_log_set(quiet_log, nullptr);
  if (const char* dir = std::getenv("LLAMA_BACKEND_DIR")) ggml_backend_load_all_from_path(dir);
  else ggml_backend_load_all();
  llama_backend_init();
  if (mode == "quantize") {
    if (argc < 5) die("quantize IN OUT FTYPE");
    llama_model_quantize_params qp = llama_model_quantize_default_params();
    qp.ftype = llama_ftype(std::atoi(argv[4]));
    // pure: every 2-D weight in the requested type (what qforge writes, too); "mixed": llama.cpp's own
    // per-tensor choice (Q4_K_M puts Q6_K in output / some attn_v and ffn_down, Q5_0 where rows are short).
    qp.pure = !(argc > 5 && std::string(argv[5]) == "mixed");
    qp.nthread = 2;
    if (llama_model_quantize(argv[2], argv[3], &qp) != 0) die("llama_model_quantize failed");
    std::printf("{\"quantized\": \"%s\"}\n", argv[3]);
    return 0;
  }
  if (argc < 7) die("bad arguments");
  const char* model_path = argv[2];
  const auto ids = read_ids(argv[3]);
  if (ids.empty()) die("no prompt ids");
  const int threads = std::atoi(argv[5]);
  llama_model_params mp = llama_model_default_params();
  mp.progress_callback = [](float, void*) { return true; };  // no progress dots
  llama_model* model = llama_model_load_from_file(model_path, mp);
  if (!model) die(std::string("cannot load ") + model_path);
  const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  llama_context_params cp = llama_context_default_params();
  cp.n_threads = threads;
  cp.n_threads_batch = threads;
  cp.no_perf = true;
  if (mode == "gen") {
    const int n_gen = std::atoi(argv[4]), runs = std::atoi(argv[6]);
    const int np = int(ids.size());
    cp.n_ctx = uint32_t(np + n_gen + 8);
    cp.n_batch = cp.n_ubatch = uint32_t(np);
    llama_context* ctx = llama_init_from_model(model, cp);
    if (!ctx) die("cannot create context");
    std::vector<double> pre, dec;
    std::vector<llama_token> out;
    for (int run = 0; run <= runs; ++run) {  // run 0: warm-up, not timed
      llama_memory_clear(llama_get_memory(ctx), true);
      std::vector<llama_token> prompt(ids);
      auto t0 = std::chrono::steady_clock::now();
      if (llama_decode(ctx, llama_batch_get_one(prompt.data(), np)) != 0) die("decode (prompt) failed");
      llama_token t = argmax(llama_get_logits_ith(ctx, -1), n_vocab);
      auto t1 = std::chrono::steady_clock::now();
      out.assign(1, t);
      for (int i = 1; i < n_gen; ++i) {
        if (llama_decode(ctx, llama_batch_get_one(&t, 1)) != 0) die("decode failed");
        t = argmax(llama_get_logits_ith(ctx, -1), n_vocab);
        out.push_back(t);
      }
      auto t2 = std::chrono::steady_clock::now();
      if (run > 0) {
        pre.push_back(np / std::chrono::duration<double>(t1 - t0).count());
        if (n_gen > 1) dec.push_back((n_gen - 1) / std::chrono::duration<double>(t2 - t1).count());
      }
    }
    std::printf("{\"engine\": \"llama.cpp\", \"prefill_tok_s\": %.4f, \"decode_tok_s\": %.4f, \"tokens\": [",
                median(pre), median(dec));
    for (size_t i = 0; i < out.size(); ++i) std::printf("%s%d", i ? ", " : "", out[i]);
    std::printf("]}\n");
    llama_free(ctx);
  } else if (mode == "logits") {
    const int n_ctx = std::atoi(argv[4]);
    cp.n_ctx = cp.n_batch = cp.n_ubatch = uint32_t(n_ctx);
    llama_context* ctx = llama_init_from_model(model, cp);
    if (!ctx) die("cannot create context");
    FILE* fo = std::fopen(argv[6], "wb");
    if (!fo) die(std::string("cannot write ") + argv[6]);
    for (size_t w = 0; w + size_t(n_ctx) <= ids.size(); w += size_t(n_ctx)) {
      llama_memory_clear(llama_get_memory(ctx), true);
      llama_batch b = llama_batch_init(n_ctx, 0, 1);
      for (int i = 0; i < n_ctx; ++i) {
        b.token[i] = ids[w + size_t(i)];
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;
      }
      b.n_tokens = n_ctx;
      if (llama_decode(ctx, b) != 0) die("decode (window) failed");
      for (int i = 0; i < n_ctx; ++i) std::fwrite(llama_get_logits_ith(ctx, i), 4, size_t(n_vocab), fo);
      llama_batch_free(b);
    }
    std::fclose(fo);
    std::printf("{\"logits\": \"%s\", \"vocab\": %d}\n", argv[6], n_vocab);
    llama_free(ctx);
  } else {
    die("unknown mode " + mode);
  }
  llama_model_free(model);
  return 0;
}
