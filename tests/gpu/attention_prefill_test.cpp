// tests/gpu/attention_prefill_test.cpp — the CUDA prefill path against the ref backend: the
// tensor-core flash-attention kernel (bf16 Q/K/V/P, f32 softmax) and the f32 kernel over n, pos0,
// GQA groups, head dims and sliding windows (outputs poisoned with NaN), the FP8 cuBLASLt GEMM of
// fp8 weights (e4m3 activations; tolerance from the e4m3 rounding bound), and printed throughput
// (attention TFLOP/s, prefill GEMM TFLOP/s of the backend's linear() vs cuBLAS). No timing asserts.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "backends/cuda/cuda_prefill_api.h"
#include "backends/gpu_info.h"
#include "gpu_test_util.h"
#include "qforge/quant.h"

using namespace qforge;
using namespace qforge::gputest;

namespace {

struct PrefillCase {
  int heads, kv_heads, hd, n, pos0, window;
};

std::string case_name(const PrefillCase& c) {
  return "h" + std::to_string(c.heads) + "_kv" + std::to_string(c.kv_heads) + "_d" + std::to_string(c.hd) + "_n" +
         std::to_string(c.n) + "_p" + std::to_string(c.pos0) + "_w" + std::to_string(c.window);
}

double rms_rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  double e = 0, r = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    e += double(got[i] - want[i]) * (got[i] - want[i]);
    r += double(want[i]) * want[i];
  }
  return std::sqrt(e / std::max(r, 1e-30));
}

class CudaAttentionPrefillTc : public ::testing::TestWithParam<PrefillCase> {};

// Rope + cache write through the backend (f32 kernel output checked at 2e-5), then the tensor-core
// kernel alone on the same rotated q and filled caches, then the fused path (rope + cache write +
// tensor-core attention in one call, as the backend runs it for bf16 / quantized models). Its error comes from rounding q·scale, k, v
// and p to bf16 (2^-9 relative each): ~1e-3..5e-3 of max|out| in practice; bounds 2e-2 (max) and
// 8e-3 (rms).
TEST_P(CudaAttentionPrefillTc, MatchesRef) {
  QF_REQUIRE_GPU();
  const PrefillCase c = GetParam();
  ASSERT_TRUE(cuda::prefill_attention_tc_supported(c.n, c.hd));
  auto gpu = make_backend("cuda");
  auto ref = make_backend("ref");
  ModelConfig cfg;
  cfg.head_dim = c.hd;
  cfg.rope_theta = 10000;
  const int64_t cap = c.pos0 + c.n + 5, kvd = int64_t(c.kv_heads) * c.hd, qd = int64_t(c.heads) * c.hd;
  RopeTable rope = make_rope_table(cfg, cap);
  const uint32_t seed = uint32_t(c.n * 131 + c.pos0 * 7 + c.hd + c.heads * 3 + c.window);
  auto cache_k = randv(size_t(cap * kvd), seed + 1), cache_v = randv(size_t(cap * kvd), seed + 2);
  auto q = randv(size_t(c.n * qd), seed + 3), k = randv(size_t(c.n * kvd), seed + 4), v = randv(size_t(c.n * kvd), seed + 5);
  const auto q0 = q, k0 = k, cache_k0 = cache_k, cache_v0 = cache_v;  // ref->attention rotates / writes in place
  auto dq = upload(*gpu, q), dk = upload(*gpu, k), dv = upload(*gpu, v);
  auto dkc = upload(*gpu, cache_k, MemCategory::KvCache), dvc = upload(*gpu, cache_v, MemCategory::KvCache);
  const std::vector<float> poison(size_t(c.n * qd), NAN);
  auto dout = upload(*gpu, poison), dout_tc = upload(*gpu, poison);
  std::vector<float> out(size_t(c.n * qd));
  const AttentionShape s{c.heads, c.kv_heads, c.hd, c.window};
  ref->attention(q.data(), k.data(), v.data(), cache_k.data(), cache_v.data(), c.n, c.pos0, s, rope, out.data());
  gpu->attention(dq.get(), dk.get(), dv.get(), dkc.get(), dvc.get(), c.n, c.pos0, s, rope, dout.get());
  EXPECT_LT(rel_max_err(download(*gpu, dout.get(), out.size()), out), 2e-5) << "backend (f32 kernel) " << case_name(c);
  cuda::PrefillAttentionProbe p;
  p.q = dq.get(), p.k_cache = dkc.get(), p.v_cache = dvc.get(), p.out = dout_tc.get();
  p.n = c.n, p.heads = c.heads, p.kv_heads = c.kv_heads, p.head_dim = c.hd, p.window = c.window, p.pos0 = c.pos0;
  p.capacity = int(cap);
  cuda::run_prefill_attention(p, true, 1);
  const auto got = download(*gpu, dout_tc.get(), out.size());
  const double mx = rel_max_err(got, out), rms = rms_rel_err(got, out);
  EXPECT_LT(mx, 2e-2) << "tensor cores " << case_name(c);
  EXPECT_LT(rms, 8e-3) << "tensor cores " << case_name(c);
  RecordProperty("max_rel_err", std::to_string(mx));
  std::printf("tc_prefill %s: max_rel_err %.2e rms_rel_err %.2e\n", case_name(c).c_str(), mx, rms);
  // The f32 kernel through the probe gives the backend's result again (same kernel).
  auto dout_f32 = upload(*gpu, poison);
  p.out = dout_f32.get();
  cuda::run_prefill_attention(p, false, 1);
  EXPECT_LT(rel_max_err(download(*gpu, dout_f32.get(), out.size()), out), 2e-5) << "probe f32 " << case_name(c);

  // The backend's fused path: unrotated q and k, the new rows written to the caches by the call itself
  // (k rotated, bf16 shadows of the new rows), q rotated as the kernel loads it.
  auto fq = upload(*gpu, q0), fk = upload(*gpu, k0), fv = upload(*gpu, v);
  auto fkc = upload(*gpu, cache_k0, MemCategory::KvCache), fvc = upload(*gpu, cache_v0, MemCategory::KvCache);
  auto dcos = upload(*gpu, rope.cos), dsin = upload(*gpu, rope.sin), dout_fused = upload(*gpu, poison);
  cuda::PrefillAttentionProbe pf = p;
  pf.q = fq.get(), pf.k = fk.get(), pf.v = fv.get(), pf.k_cache = fkc.get(), pf.v_cache = fvc.get();
  pf.out = dout_fused.get(), pf.rope_cos = dcos.get(), pf.rope_sin = dsin.get(), pf.rope_max_pos = int(rope.max_pos);
  cuda::run_prefill_attention(pf, true, 1);
  const auto got_fused = download(*gpu, dout_fused.get(), out.size());
  EXPECT_LT(rel_max_err(got_fused, out), 2e-2) << "fused tensor cores " << case_name(c);
  EXPECT_LT(rms_rel_err(got_fused, out), 8e-3) << "fused tensor cores " << case_name(c);
  // Every cache row as the ref backend left it: rotated new k rows (f32 rounding only), v copied, the
  // rest untouched.
  EXPECT_LT(rel_max_err(download(*gpu, fkc.get(), cache_k.size()), cache_k), 1e-6) << "fused k cache " << case_name(c);
  EXPECT_EQ(download(*gpu, fvc.get(), cache_v.size()), cache_v) << "fused v cache " << case_name(c);
}

std::vector<PrefillCase> prefill_cases() {
  std::vector<PrefillCase> v;
  for (auto [h, kv] : {std::pair{6, 2}, std::pair{32, 8}, std::pair{4, 4}})
    for (int hd : {48, 64, 128})
      for (int n : {16, 33, 128, 300})
        for (int pos0 : {0, 17})
          for (int window : {0, 40}) v.push_back({h, kv, hd, n, pos0, window});
  // head_dim 256 (Gemma-like), 80 and 16 (padded register tiles), a long window and GQA 8:1.
  v.push_back({8, 2, 256, 70, 9, 0});
  v.push_back({8, 1, 80, 65, 0, 0});
  v.push_back({4, 2, 16, 40, 3, 7});
  v.push_back({8, 1, 128, 200, 100, 150});
  return v;
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaAttentionPrefillTc, ::testing::ValuesIn(prefill_cases()),
                         [](const auto& info) { return case_name(info.param); });

TEST(CudaAttentionPrefillTcSupport, FallsBackToF32) {
  EXPECT_FALSE(cuda::prefill_attention_tc_supported(8, 64));    // short: f32 kernel
  EXPECT_FALSE(cuda::prefill_attention_tc_supported(100, 20));  // head_dim not a multiple of 16
  EXPECT_FALSE(cuda::prefill_attention_tc_supported(100, 272));
  EXPECT_TRUE(cuda::prefill_attention_tc_supported(16, 64));
}

// Kernel throughput at the bench shapes (causal FLOPs: 4·hd·heads·n(n+1)/2).
TEST(CudaAttentionPrefillTc, Throughput) {
  QF_REQUIRE_GPU();
  auto gpu = make_backend("cuda");
  struct Shape {
    const char* name;
    int heads, kv_heads, hd, n;
  };
  for (const Shape& sh : {Shape{"tinyllama", 32, 4, 64, 2047}, Shape{"llama3_8b", 32, 8, 128, 2048}}) {
    const int64_t qd = int64_t(sh.heads) * sh.hd, kvd = int64_t(sh.kv_heads) * sh.hd;
    auto dq = upload(*gpu, randv(size_t(sh.n * qd), 1)), dk = upload(*gpu, randv(size_t(sh.n * kvd), 2));
    auto dv = upload(*gpu, randv(size_t(sh.n * kvd), 3));
    auto dout = gpu->alloc(sh.n * qd, MemCategory::Scratch);
    cuda::PrefillAttentionProbe p;
    p.q = dq.get(), p.k_cache = dk.get(), p.v_cache = dv.get(), p.out = dout.get();
    p.n = sh.n, p.heads = sh.heads, p.kv_heads = sh.kv_heads, p.head_dim = sh.hd, p.capacity = sh.n;
    const double flop = 4.0 * sh.hd * sh.heads * double(sh.n) * (sh.n + 1) / 2;
    const double ms_tc = cuda::run_prefill_attention(p, true, 20), ms_f32 = cuda::run_prefill_attention(p, false, 3);
    // The fused path as the backend runs it (rope of k and the cache write included, q rotated on load).
    ModelConfig cfg;
    cfg.head_dim = sh.hd;
    cfg.rope_theta = 10000;
    const RopeTable rope = make_rope_table(cfg, sh.n);
    auto dcos = upload(*gpu, rope.cos), dsin = upload(*gpu, rope.sin);
    auto dk_new = upload(*gpu, randv(size_t(sh.n * kvd), 4)), dv_new = upload(*gpu, randv(size_t(sh.n * kvd), 5));
    cuda::PrefillAttentionProbe pf = p;
    pf.k = dk_new.get(), pf.v = dv_new.get(), pf.rope_cos = dcos.get(), pf.rope_sin = dsin.get();
    pf.rope_max_pos = int(rope.max_pos);
    const double ms_fused = cuda::run_prefill_attention(pf, true, 20);
    std::printf("prefill_attention_%s: n=%d tensor-core %.3f ms = %.1f TFLOP/s (fused rope + cache write %.3f ms); "
                "f32 %.3f ms = %.1f TFLOP/s\n",
                sh.name, sh.n, ms_tc, flop / ms_tc / 1e9, ms_fused, ms_f32, flop / ms_f32 / 1e9);
    EXPECT_GT(ms_tc, 0.0);
  }
}

// A one-layer model around `l` so that prepare() sizes the dequantization scratch (all seven
// projections share the weight).
ModelWeights one_layer(const Linear& l) {
  ModelWeights w;
  w.embed = tensor_from(randv(size_t(4 * l.in), 9), {4, l.in}, DType::F32);
  w.final_norm = tensor_from(std::vector<float>(size_t(l.in), 1.f), {l.in}, DType::F32);
  w.lm_head.name = "lm_head";
  w.lm_head.in = l.in;
  w.lm_head.out = 4;
  w.lm_head.weight = w.embed;
  LayerWeights L;
  L.attn_norm = w.final_norm;
  L.ffn_norm = w.final_norm;
  L.q = L.k = L.v = L.o = L.gate = L.up = L.down = l;
  w.layers.push_back(std::move(L));
  return w;
}

// A one-layer model prepared on a cuda backend, with a ref backend to compare against.
struct PreparedLayer {
  ModelWeights mw;
  std::unique_ptr<Backend> gpu, ref;
  const LayerWeights& L() const { return mw.layers[0]; }
};
// The layer around q with k, v, o replaced (attention linears sharing one input); or with its MLP (hidden ->
// inter -> hidden) from make(name, out, in, seed).
PreparedLayer prepared_layer(const Linear& q, const Linear& k, const Linear& v, const Linear& o) {
  PreparedLayer m;
  m.mw = one_layer(q);
  m.mw.layers[0].k = k;
  m.mw.layers[0].v = v;
  m.mw.layers[0].o = o;
  m.gpu = make_backend("cuda");
  m.ref = make_backend("ref");
  m.gpu->prepare(m.mw, ModelConfig{});
  return m;
}
template <class Make>
PreparedLayer mlp_layer(Make&& make, int hidden, int inter) {
  const Linear attn = make("attn", hidden, hidden, 1u);
  PreparedLayer m;
  m.mw = one_layer(attn);
  m.mw.layers[0].gate = make("gate", inter, hidden, 2u);
  m.mw.layers[0].up = make("up", inter, hidden, 3u);
  m.mw.layers[0].down = make("down", hidden, inter, 4u);
  m.gpu = make_backend("cuda");
  m.ref = make_backend("ref");
  m.gpu->prepare(m.mw, ModelConfig{});
  return m;
}

int sm_version() {
  auto g = list_gpus();
  return g.empty() ? 0 : g[0].cc_major * 10 + g[0].cc_minor;
}

// Checks y (n x rows) of one linear against the reference `want` with the FP8 path's bound (above) when
// `fp8` ran, else the bf16 path's 1e-2 sum|w x|; returns the worst err / tol.
double check_fp8_linear(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& base,
                        const std::vector<float>& x, const std::vector<float>& wdq, int n, int rows, int cols, bool fp8,
                        bool acc, const std::string& what) {
  float amax = 0;
  for (float e : x) amax = std::max(amax, std::fabs(e));
  const double sb = amax / 448.0;
  int bad = 0;
  double worst = 0;
  for (int t = 0; t < n && bad < 3; ++t)
    for (int r = 0; r < rows && bad < 3; ++r) {
      double bound = 0, sabs = 0;
      for (int kk = 0; kk < cols; ++kk) {
        const double w = std::fabs(wdq[size_t(r) * cols + kk]), xv = std::fabs(x[size_t(t) * cols + kk]);
        bound += w * std::max(xv / 16.0, sb / 1024.0);
        sabs += w * xv;
      }
      const size_t j = size_t(t) * rows + r;
      const double tol = (fp8 ? bound + 1e-5 * sabs : 1e-2 * sabs) + (acc ? 1e-6 * std::fabs(base[j]) : 0) + 1e-30;
      const double err = std::fabs(double(got[j]) - want[j]);
      worst = std::max(worst, err / tol);
      if (!(err <= tol)) {
        ++bad;
        ADD_FAILURE() << what << " [" << rows << "x" << cols << "] n " << n << " acc " << acc << " elem " << j
                      << ": got " << got[j] << " want " << want[j] << " tol " << tol;
      }
    }
  return worst;
}

// FP8 weights on the prefill path: per-tensor e4m3/e5m2 go to the FP8 tensor cores on sm_89+ with the
// activations quantized to e4m3 (scale amax/448). Per element |x - e4m3(x)| <= max(2^-4 |x|,
// 2^-10 s_b) (relative half-ulp of 3 mantissa bits; half the subnormal step 2^-9 s_b), the weight
// codes are exact, so |y - ref| <= sum_k |w_k| max(2^-4 |x_k|, 2^-10 s_b) + f32 accumulation.
// Per-channel fp8 takes the bf16 path (tolerance 1e-2 sum|w x| as in quant_gpu_test).
TEST(CudaFp8Prefill, MatchesRef) {
  QF_REQUIRE_GPU();
  const bool fp8_hw = sm_version() >= 89;
  struct FCase {
    QuantFormat f;
    bool per_channel;
    int rows, cols;
  };
  for (const FCase& fc : {FCase{QuantFormat::FP8_E4M3, false, 256, 512}, FCase{QuantFormat::FP8_E4M3, false, 132, 1040},
                          FCase{QuantFormat::FP8_E5M2, false, 64, 256}, FCase{QuantFormat::FP8_E4M3, true, 96, 512}}) {
    auto wf = randv(size_t(fc.rows) * fc.cols, 77 + fc.rows, 0.05f);
    wf[3] = 0.6f;  // an outlier
    QuantParams qp;
    qp.per_channel = fc.per_channel;
    Linear l;
    l.name = "fp8_layer";
    l.in = fc.cols;
    l.out = fc.rows;
    l.qweight = quantize_weight(tensor_from(wf, {fc.rows, fc.cols}, DType::F32), fc.f, qp);
    std::vector<float> wdq(wf.size());
    dequantize_rows(l.qweight, 0, fc.rows, wdq.data());
    ModelWeights mw = one_layer(l);
    ModelConfig cfg;
    auto gpu = make_backend("cuda");
    auto ref = make_backend("ref");
    gpu->prepare(mw, cfg);
    const Linear& gl = mw.layers[0].q;
    for (int n : {16, 64, 300})
      for (bool acc : {false, true}) {
        auto x = randv(size_t(n) * fc.cols, 5u + n, 1.f);
        x[7] = 9.f;  // an activation outlier sets the per-tensor scale
        auto dx = upload(*gpu, x);
        std::vector<float> want = acc ? randv(size_t(n) * fc.rows, 3u) : std::vector<float>(size_t(n) * fc.rows, 0.f);
        const std::vector<float> base = want;
        auto dy = upload(*gpu, acc ? want : std::vector<float>(want.size(), NAN));
        const Linear* lp[] = {&gl};
        float* yr[] = {want.data()};
        float* yd[] = {dy.get()};
        const int64_t before = cuda::fp8_prefill_gemm_count();
        ref->linear(lp, LinearInput{x.data()}, n, yr, acc);
        gpu->linear(lp, LinearInput{dx.get()}, n, yd, acc);
        const auto got = download(*gpu, dy.get(), want.size());
        const bool used_fp8 = cuda::fp8_prefill_gemm_count() > before;
        if (!fc.per_channel && fp8_hw)
          EXPECT_TRUE(used_fp8) << "the FP8 tensor-core path did not run: " << cuda::fp8_prefill_last_error();
        if (fc.per_channel) EXPECT_FALSE(used_fp8);
        const double worst = check_fp8_linear(got, want, base, x, wdq, n, fc.rows, fc.cols, used_fp8, acc,
                                              std::string(quant_traits(fc.f).name) + (fc.per_channel ? " per-channel" : ""));
        RecordProperty("worst_err_over_tol", std::to_string(worst));
        std::printf("fp8_prefill %s%s [%dx%d] n=%d acc=%d: fp8=%d worst err/tol %.3f\n",
                    std::string(quant_traits(fc.f).name).c_str(),
                    fc.per_channel ? " per-channel" : "", fc.rows, fc.cols, n, int(acc), int(used_fp8), worst);
      }
  }
}

// The fused FP8 MLP of prefill (e4m3 GEMMs with bf16 gate/up outputs, SwiGLU on bf16 with its amax, the
// product quantized to e4m3, down GEMM) against the ref backend and against the backend's own default
// (two FP8 linear() calls): exactly three FP8 GEMMs, no worse than the default against the reference.
TEST(CudaFp8Prefill, FusedMlpMatchesRefAndDefault) {
  QF_REQUIRE_GPU();
  if (sm_version() < 89) GTEST_SKIP() << "no FP8 tensor cores";
  const int hidden = 256, inter = 512;
  auto fp8_linear = [](const char* name, int out, int in, uint32_t seed) {
    Linear l;
    l.name = name;
    l.in = in;
    l.out = out;
    l.qweight = quantize_weight(tensor_from(randv(size_t(out) * in, seed, 0.05f), {out, in}, DType::F32),
                                QuantFormat::FP8_E4M3, QuantParams{});
    return l;
  };
  const PreparedLayer m = mlp_layer(fp8_linear, hidden, inter);
  Backend* gpu = m.gpu.get();
  Backend* ref = m.ref.get();
  const LayerWeights& L = m.L();
  // rms scale 0.01: a product far below 1, where an activation scale stuck at 1 would flush it to zero.
  for (float rms_scale : {0.5f, 0.01f})
  for (int n : {16, 300})
    for (bool acc : {false, true}) {
      const Tensor rms_w = tensor_from(randv(size_t(hidden), 7, rms_scale), {hidden}, DType::F32);
      const auto x = randv(size_t(n) * hidden, 11u + n, 1.f), y0 = randv(size_t(n) * hidden, 12u + n);
      std::vector<float> want = y0, g(size_t(n) * inter), u(size_t(n) * inter);
      ref->mlp(L.gate, L.up, L.down, {x.data(), &rms_w, 1e-5f}, n, g.data(), u.data(), want.data(), acc);
      auto dx = upload(*gpu, x), dg = upload(*gpu, g), du = upload(*gpu, u);
      auto dy = upload(*gpu, y0), dy_default = upload(*gpu, y0);
      const int64_t before = cuda::fp8_prefill_gemm_count();
      gpu->mlp(L.gate, L.up, L.down, {dx.get(), &rms_w, 1e-5f}, n, dg.get(), du.get(), dy.get(), acc);
      const auto got = download(*gpu, dy.get(), want.size());
      EXPECT_EQ(cuda::fp8_prefill_gemm_count() - before, 3)
          << "gate, up and down as FP8 GEMMs, n=" << n << ": " << cuda::fp8_prefill_last_error();
      gpu->Backend::mlp(L.gate, L.up, L.down, {dx.get(), &rms_w, 1e-5f}, n, dg.get(), du.get(), dy_default.get(), acc);
      const auto got_default = download(*gpu, dy_default.get(), want.size());
      const double e_fused = rms_rel_err(got, want), e_default = rms_rel_err(got_default, want);
      std::printf("fp8 mlp rms_w*%g n=%d acc=%d: rms error fused %.2e, default %.2e\n", rms_scale, n, int(acc), e_fused,
                  e_default);
      EXPECT_LT(e_fused, 1.5 * e_default + 1e-3) << "n=" << n << " acc=" << acc << " rms_w*" << rms_scale;
      // e4m3 codes flip where bf16 rounding crosses their boundaries: the two paths differ by ~0.4-0.5 of the
      // default's own error (host emulation of this test over 50 seeds).
      EXPECT_LT(rms_rel_err(got, got_default), 0.75 * e_default + 1e-3) << "n=" << n << " acc=" << acc;
      EXPECT_GT(rel_max_err(got, got_default), 0.0) << "the fused path did not run, n=" << n;
    }
}

// The dequantizing form of the fused prefill MLP (every quantized format but the FP8 tensor-core path): gate
// and up dequantized side by side into the scratch, one batched bf16 GEMM with bf16 outputs, SwiGLU on bf16,
// down dequantized into the scratch's first half after that GEMM. Against the ref backend and against the
// backend's default (two linear() calls through quant_gemm, f32 gate/up): no worse than the default, and not
// equal to it (the fused path ran: it rounds gate and up to bf16 before the SwiGLU).
TEST(CudaQuantPrefill, FusedMlpMatchesRefAndDefault) {
  QF_REQUIRE_GPU();
  const int hidden = 256, inter = 512;
  struct Fmt {
    QuantFormat gate_up, down;
    int blocksize;
    bool per_channel;
    const char* name;
  };
  const Fmt fmts[] = {{QuantFormat::NF4, QuantFormat::NF4, 64, false, "nf4"},
                      {QuantFormat::Q4_K, QuantFormat::Q6_K, 0, false, "q4_k + q6_k down"},
                      {QuantFormat::INT8, QuantFormat::INT8, 0, false, "int8"},
                      {QuantFormat::Q8_0, QuantFormat::Q4_0, 0, false, "q8_0 + q4_0 down"},
                      {QuantFormat::FP8_E4M3, QuantFormat::FP8_E4M3, 0, true, "fp8 per channel"}};
  for (const Fmt& f : fmts) {
    auto qlinear = [&](const char* name, QuantFormat fmt, int out, int in, uint32_t seed) {
      Linear l;
      l.name = name;
      l.in = in;
      l.out = out;
      QuantParams p;
      p.blocksize = f.blocksize;
      p.per_channel = f.per_channel;
      l.qweight = quantize_weight(tensor_from(randv(size_t(out) * in, seed, 0.05f), {out, in}, DType::F32), fmt, p);
      return l;
    };
    const PreparedLayer m = mlp_layer(
        [&](const char* name, int out, int in, uint32_t seed) {
          return qlinear(name, std::string(name) == "down" ? f.down : f.gate_up, out, in, seed);
        },
        hidden, inter);
    Backend* gpu = m.gpu.get();
    Backend* ref = m.ref.get();
    const LayerWeights& L = m.L();
    for (int n : {16, 300})
      for (bool acc : {false, true}) {
        const Tensor rms_w = tensor_from(randv(size_t(hidden), 7, 0.5f), {hidden}, DType::F32);
        const auto x = randv(size_t(n) * hidden, 11u + n, 1.f), y0 = randv(size_t(n) * hidden, 12u + n);
        std::vector<float> want = y0, g(size_t(n) * inter), u(size_t(n) * inter);
        ref->mlp(L.gate, L.up, L.down, {x.data(), &rms_w, 1e-5f}, n, g.data(), u.data(), want.data(), acc);
        auto dx = upload(*gpu, x), dg = upload(*gpu, g), du = upload(*gpu, u);
        auto dy = upload(*gpu, y0), dy_default = upload(*gpu, y0);
        gpu->mlp(L.gate, L.up, L.down, {dx.get(), &rms_w, 1e-5f}, n, dg.get(), du.get(), dy.get(), acc);
        const auto got = download(*gpu, dy.get(), want.size());
        gpu->Backend::mlp(L.gate, L.up, L.down, {dx.get(), &rms_w, 1e-5f}, n, dg.get(), du.get(), dy_default.get(), acc);
        const auto got_default = download(*gpu, dy_default.get(), want.size());
        const double e_fused = rms_rel_err(got, want), e_default = rms_rel_err(got_default, want);
        std::printf("%s mlp n=%d acc=%d: rms error fused %.2e, default %.2e\n", f.name, n, int(acc), e_fused, e_default);
        EXPECT_LT(e_fused, 1.5 * e_default + 1e-3) << f.name << " n=" << n << " acc=" << acc;
        EXPECT_LT(e_fused, 2e-2) << f.name << " n=" << n << " acc=" << acc;
        EXPECT_GT(rel_max_err(got, got_default), 0.0) << "the fused path did not run: " << f.name << " n=" << n;
      }
  }
}

// Quantized q/k/v/o-like linears of one prefill call off the FP8 path: the input staged once as bf16, k and v
// (same shape) dequantized side by side for one batched GEMM, the others one GEMM each; every output against
// the ref backend (bf16 activations: about 2^-9 relative per product).
TEST(CudaQuantPrefill, SharedInputLinearsAndPairMatchRef) {
  QF_REQUIRE_GPU();
  const int cols = 512, n = 40;
  auto make = [&](QuantFormat f, int rows, uint32_t seed, const char* name) {
    Linear l;
    l.name = name;
    l.in = cols;
    l.out = rows;
    l.qweight = quantize_weight(tensor_from(randv(size_t(rows) * cols, seed, 0.05f), {rows, cols}, DType::F32), f,
                                QuantParams{});
    return l;
  };
  const PreparedLayer m = prepared_layer(make(QuantFormat::NF4, 96, 31, "q"), make(QuantFormat::Q4_0, 32, 32, "k"),
                                         make(QuantFormat::Q4_0, 32, 33, "v"), make(QuantFormat::INT8, 96, 34, "o"));
  Backend* gpu = m.gpu.get();
  Backend* ref = m.ref.get();
  const LayerWeights& L = m.L();
  const Linear* lp[] = {&L.q, &L.k, &L.v, &L.o};
  const auto x = randv(size_t(n) * cols, 35, 1.f);
  auto dx = upload(*gpu, x);
  for (bool acc : {false, true}) {
    std::vector<std::vector<float>> want;
    std::vector<std::shared_ptr<float>> dys;
    float* yr[4];
    float* yd[4];
    for (int i = 0; i < 4; ++i) {
      want.push_back(randv(size_t(n) * lp[i]->out, 40u + i));
      dys.push_back(upload(*gpu, want.back()));
    }
    for (int i = 0; i < 4; ++i) yr[i] = want[size_t(i)].data(), yd[i] = dys[size_t(i)].get();
    ref->linear(lp, LinearInput{x.data()}, n, yr, acc);
    gpu->linear(lp, LinearInput{dx.get()}, n, yd, acc);
    for (int i = 0; i < 4; ++i) {
      const double e = rms_rel_err(download(*gpu, yd[i], want[size_t(i)].size()), want[size_t(i)]);
      std::printf("quant linear %s acc=%d: rms error %.2e\n", lp[i]->name.c_str(), int(acc), e);
      EXPECT_LT(e, acc ? 2e-3 : 1e-2) << lp[i]->name << " acc=" << acc;
    }
  }
}

// Linears sharing one input in one prefill call (q/k/v-like): the FP8 path quantizes the input once and
// reuses it with each weight's own scale. A weight on the dequantizing path in between (the input staged as
// bf16 in its own buffer) leaves the quantized input alone, so the later FP8 weights reuse it too (before
// session 13 that path converted the input in the shared scratch, and C quantized again). Order: fp8 A,
// nf4 B, fp8 C, fp8 D.
TEST(CudaFp8Prefill, SharedInputQuantizedOnceAndAfterOtherPaths) {
  QF_REQUIRE_GPU();
  const bool fp8_hw = sm_version() >= 89;
  const int rows = 96, cols = 512, n = 64;
  auto make = [&](QuantFormat f, uint32_t seed, float scale, const char* name) {
    auto wf = randv(size_t(rows) * cols, seed, scale);
    Linear l;
    l.name = name;
    l.in = cols;
    l.out = rows;
    l.qweight = quantize_weight(tensor_from(wf, {rows, cols}, DType::F32), f, QuantParams{});
    return l;
  };
  // c: other per-tensor scales than a's.
  const PreparedLayer m = prepared_layer(make(QuantFormat::FP8_E4M3, 11, 0.05f, "a"), make(QuantFormat::NF4, 12, 0.05f, "b"),
                                         make(QuantFormat::FP8_E4M3, 13, 0.3f, "c"),
                                         make(QuantFormat::FP8_E4M3, 14, 0.01f, "d"));
  Backend* gpu = m.gpu.get();
  Backend* ref = m.ref.get();
  const LayerWeights& L = m.L();
  const Linear* lp[] = {&L.q, &L.k, &L.v, &L.o};
  auto x = randv(size_t(n) * cols, 21, 1.f);
  x[5] = 7.f;
  auto dx = upload(*gpu, x);
  std::vector<std::vector<float>> want(4, std::vector<float>(size_t(n) * rows, 0.f));
  std::vector<std::shared_ptr<float>> dys;
  float* yr[4];
  float* yd[4];
  for (int i = 0; i < 4; ++i) {
    dys.push_back(upload(*gpu, std::vector<float>(size_t(n) * rows, NAN)));
    yr[i] = want[size_t(i)].data();
    yd[i] = dys.back().get();
  }
  const int64_t before = cuda::fp8_prefill_gemm_count(), quants_before = cuda::fp8_prefill_act_quant_count();
  ref->linear(lp, LinearInput{x.data()}, n, yr, false);
  gpu->linear(lp, LinearInput{dx.get()}, n, yd, false);
  if (fp8_hw) {
    EXPECT_EQ(cuda::fp8_prefill_gemm_count() - before, 3) << cuda::fp8_prefill_last_error();
    EXPECT_EQ(cuda::fp8_prefill_act_quant_count() - quants_before, 1) << "a: quantize; b: bf16 input; c, d: reuse";
  }
  for (int i = 0; i < 4; ++i) {
    std::vector<float> wdq(size_t(rows) * cols);
    dequantize_rows(lp[i]->qweight, 0, rows, wdq.data());
    const auto got = download(*gpu, yd[i], want[size_t(i)].size());
    const bool fp8 = fp8_hw && i != 1;
    const double worst = check_fp8_linear(got, want[size_t(i)], want[size_t(i)], x, wdq, n, rows, cols, fp8, false,
                                          std::string("shared input, weight ") + lp[i]->name);
    std::printf("fp8_shared_input weight %s: fp8=%d worst err/tol %.3f\n", lp[i]->name.c_str(), int(fp8), worst);
  }
}

// The backend's prefill linear (staging + GEMM) at the bench's MLP shapes vs the cuBLAS rate, and
// the FP8 path at the same shapes (printed; no assertions on speed).
TEST(CudaPrefillLinear, Throughput) {
  QF_REQUIRE_GPU();
  struct Shape {
    const char* name;
    int n, in, out;
  };
  for (const Shape& sh : {Shape{"tinyllama_gate", 2048, 2048, 5632}, Shape{"tinyllama_down", 2048, 5632, 2048},
                          Shape{"llama3_8b_gate", 2048, 4096, 14336}, Shape{"llama3_8b_down", 2048, 14336, 4096}}) {
    const double cublas = measure_gpu_gemm_tflops(0, sh.n, sh.out, sh.in);
    const double flop = 2.0 * sh.n * double(sh.in) * sh.out;
    auto wf = randv(size_t(sh.in) * sh.out, 1, 0.02f);
    Linear lb;
    lb.name = "bf16";
    lb.in = sh.in;
    lb.out = sh.out;
    lb.weight = tensor_from(wf, {sh.out, sh.in}, DType::BF16);
    Linear l8 = lb;
    l8.name = "fp8";
    l8.weight = Tensor();
    l8.qweight = quantize_weight(tensor_from(wf, {sh.out, sh.in}, DType::F32), QuantFormat::FP8_E4M3, QuantParams{});
    ModelWeights mw = one_layer(l8);
    ModelConfig cfg;
    auto gpu = make_backend("cuda");
    gpu->prepare(mw, cfg);
    const Tensor rms = tensor_from(std::vector<float>(size_t(sh.in), 1.f), {sh.in}, DType::F32);
    auto dx = upload(*gpu, randv(size_t(sh.n) * sh.in, 2)), dup = upload(*gpu, randv(size_t(sh.n) * sh.in, 3));
    auto dy = gpu->alloc(int64_t(sh.n) * sh.out, MemCategory::Scratch);
    auto time = [&](const Linear& l, const LinearInput& in, bool acc) {
      const Linear* lp[] = {&l};
      float* yd[] = {dy.get()};
      gpu->linear(lp, in, sh.n, yd, acc);
      download(*gpu, dy.get(), 1);
      const int reps = 10;
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < reps; ++i) gpu->linear(lp, in, sh.n, yd, acc);
      download(*gpu, dy.get(), 1);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
      return flop / s / 1e12;
    };
    LinearInput plain{dx.get()}, normed{dx.get(), &rms, 1e-5f}, swiglu{dx.get(), nullptr, 0, dup.get()};
    const double b_plain = time(lb, plain, false), b_rms = time(lb, normed, false), b_swi = time(lb, swiglu, true);
    const double f_plain = time(mw.layers[0].q, plain, false), f_rms = time(mw.layers[0].q, normed, false);
    std::printf(
        "prefill_linear_%s: cublas_bf16 %.1f TFLOP/s; backend bf16 plain %.1f, rmsnorm %.1f, swiglu+acc %.1f; fp8 plain "
        "%.1f, rmsnorm %.1f TFLOP/s\n",
        sh.name, cublas, b_plain, b_rms, b_swi, f_plain, f_rms);
    std::printf("fp8 GEMMs run so far: %lld; last fallback: '%s'\n", (long long)cuda::fp8_prefill_gemm_count(),
                cuda::fp8_prefill_last_error().c_str());
  }
}

}  // namespace
