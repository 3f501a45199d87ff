// benches/tokenizer_bench.cpp — encode throughput (MB/s) on ~1 MiB of English (eval/kjv_eval.txt
// repeated) for the demo tokenizer and any tokenizer folders given in $QFORGE_BENCH_TOKENIZERS
// (colon-separated, e.g. the npm Llama 3 package's models/ folder). Google Benchmark; not in tests.
// Build: g++ -O2 -std=c++20 -DQFORGE_BENCH_SOURCE_DIR=\"$PWD\" -Iinclude -Isrc benches/tokenizer_bench.cpp build/libqforge.a \
//          -lbenchmark -lpcre2-8 -lutf8proc -lpthread -o build/tokenizer_bench
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "qforge/tokenizer.h"

namespace {

std::string english_mib() {
  std::ifstream f(QFORGE_BENCH_SOURCE_DIR "/eval/kjv_eval.txt", std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string one = ss.str(), all;
  while (all.size() < (1u << 20)) all += one;
  return all;
}

void encode_bench(benchmark::State& state, std::string dir) {
  static const std::string text = english_mib();
  auto tok = qforge::Tokenizer::load(dir);
  size_t n = 0;
  for (auto _ : state) {
    auto ids = tok->encode(text, false);
    n = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(n);
}

int register_all = [] {
  benchmark::RegisterBenchmark("encode_1MiB/kjv-llama-14m", encode_bench,
                               std::string(QFORGE_BENCH_SOURCE_DIR "/models/kjv-llama-14m"))
      ->Unit(benchmark::kMillisecond);
  if (const char* extra = std::getenv("QFORGE_BENCH_TOKENIZERS")) {
    std::stringstream ss(extra);
    std::string dir;
    while (std::getline(ss, dir, ':'))
      if (!dir.empty()) benchmark::RegisterBenchmark(("encode_1MiB/" + dir).c_str(), encode_bench, dir)->Unit(benchmark::kMillisecond);
  }
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
