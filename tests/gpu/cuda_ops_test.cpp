// tests/gpu/cuda_ops_test.cpp — every CUDA op against the ref backend on random odd sizes:
// linear (f32/f16/bf16 weights; decode GEMV n <= 8 and cuBLAS prefill n > 8; plain, RMSNorm and
// SwiGLU inputs; bias; residual accumulate; several layers per call), embedding, and attention
// (decode and prefill, continuation pos0 > 0, GQA, sliding window, llama3 rope scaling).
#include <gtest/gtest.h>

#include "backends/gpu_info.h"
#include "gpu_test_util.h"
#include "qforge/status.h"

using namespace qforge;
using namespace qforge::gputest;

class CudaLinear : public ::testing::TestWithParam<std::tuple<DType, int, int>> {};

TEST_P(CudaLinear, MatchesRef) {
  QF_REQUIRE_GPU();
  auto [dt, n, in] = GetParam();
  auto gpu = make_backend("cuda");
  auto ref = make_backend("ref");
  const int outs[] = {1, 5, 130};
  std::vector<Linear> ls(3);
  std::vector<std::vector<float>> keep;
  for (int i = 0; i < 3; ++i) {
    ls[i].name = "layer" + std::to_string(i);
    ls[i].in = in;
    ls[i].out = outs[i];
    ls[i].weight = tensor_from(randv(size_t(in * outs[i]), 100 + i + in), {outs[i], in}, dt);
  }
  ls[0].bias = tensor_from(randv(size_t(outs[0]), 5), {outs[0]}, DType::F32);
  ls[2].bias = tensor_from(randv(size_t(outs[2]), 6), {outs[2]}, DType::F32);
  Tensor rms_w = tensor_from(randv(size_t(in), 8, 0.5f), {in}, DType::F32);
  const auto x = randv(size_t(n * in), 11 + n), up = randv(size_t(n * in), 12 + n);
  auto dx = upload(*gpu, x), dup = upload(*gpu, up);
  // Decode GEMV and f32 prefill GEMM: f32 math on the same weights as the reference (which
  // accumulates in double) → ~1e-6 relative. f16/bf16 prefill rounds the staged input to the
  // weight's 16-bit type for the tensor-core GEMM → that type's rounding (2^-11 / 2^-8 relative).
  const double tol = n <= 8 || dt == DType::F32 ? 2e-5 : dt == DType::F16 ? 4e-3 : 2e-2;
  for (int mode = 0; mode < 3; ++mode)
    for (bool acc : {false, true}) {
      LinearInput hin{x.data()}, din{dx.get()};
      if (mode == 1) hin.rms_weight = din.rms_weight = &rms_w, hin.eps = din.eps = 1e-5f;
      if (mode == 2) hin.up = up.data(), din.up = dup.get();
      std::vector<std::vector<float>> y_ref(3);
      std::vector<std::shared_ptr<float>> y_dev(3);
      std::vector<float*> yr(3), yd(3);
      for (int i = 0; i < 3; ++i) {
        y_ref[i] = randv(size_t(n * outs[i]), 50 + i);
        y_dev[i] = upload(*gpu, y_ref[i]);
        yr[i] = y_ref[i].data();
        yd[i] = y_dev[i].get();
      }
      const Linear* lp[] = {&ls[0], &ls[1], &ls[2]};
      ref->linear(lp, hin, n, yr, acc);
      gpu->linear(lp, din, n, yd, acc);
      for (int i = 0; i < 3; ++i) {
        auto got = download(*gpu, yd[i], y_ref[i].size());
        EXPECT_LT(rel_max_err(got, y_ref[i]), tol)
            << dtype_name(dt) << " n=" << n << " in=" << in << " out=" << outs[i] << " mode=" << mode << " acc=" << acc;
      }
    }
}

INSTANTIATE_TEST_SUITE_P(OddShapes, CudaLinear,
                         ::testing::Combine(::testing::Values(DType::F32, DType::F16, DType::BF16),
                                            ::testing::Values(1, 3, 8, 9, 17, 40), ::testing::Values(7, 64, 291, 2048)));

// Same-shaped 16-bit linears of one prefill call (k/v, gate/up) run as one strided batched GEMM; in
// both call orders, so that one order has the second weight at the lower address.
TEST(CudaLinear, SameShapePairsMatchRef) {
  QF_REQUIRE_GPU();
  auto ref = make_backend("ref");
  for (DType dt : {DType::F16, DType::BF16})
    for (int n : {9, 40, 257})  // 257 x 512: large enough for cuBLAS's TMA kernels (they fault on negative strides)
      for (int in : {64, 291, 512}) {
        if ((n == 257) != (in == 512)) continue;
        auto gpu = make_backend("cuda");  // fresh: its weight cache is keyed by host addresses, reused below
        const int out = n == 257 ? 256 : 33;
        std::vector<Linear> ls(3);
        for (int i = 0; i < 3; ++i) {
          ls[i].name = "same" + std::to_string(i);
          ls[i].in = in;
          ls[i].out = out;
          ls[i].weight = tensor_from(randv(size_t(in * out), 300 + i + in), {out, in}, dt);
        }
        const auto x = randv(size_t(n * in), 21 + n);
        auto dx = upload(*gpu, x);
        const double tol = dt == DType::F16 ? 4e-3 : 2e-2;
        for (bool reversed : {false, true})
          for (bool acc : {false, true}) {
            const Linear* lp[3] = {&ls[0], &ls[1], &ls[2]};
            if (reversed) std::swap(lp[0], lp[2]);
            std::vector<std::vector<float>> y_ref(3);
            std::vector<std::shared_ptr<float>> y_dev(3);
            std::vector<float*> yr(3), yd(3);
            for (int i = 0; i < 3; ++i) {
              y_ref[i] = randv(size_t(n * out), 60 + i);
              y_dev[i] = upload(*gpu, y_ref[i]);
              yr[i] = y_ref[i].data();
              yd[i] = y_dev[i].get();
            }
            ref->linear(lp, LinearInput{x.data()}, n, yr, acc);
            gpu->linear(lp, LinearInput{dx.get()}, n, yd, acc);
            for (int i = 0; i < 3; ++i)
              EXPECT_LT(rel_max_err(download(*gpu, yd[i], y_ref[i].size()), y_ref[i]), tol)
                  << dtype_name(dt) << " n=" << n << " in=" << in << " layer " << i << " reversed=" << reversed
                  << " acc=" << acc;
          }
      }
}

// The fused bf16 MLP of prefill (bf16 gate/up GEMM outputs, SwiGLU on bf16, down GEMM) against the
// ref backend (f32) and against the CUDA backend's own default (linear() twice, f32 gate/up): the only
// difference from the latter is gate and up rounded to bf16 (2^-9 relative). Sizes cover the
// vectorised and the scalar SwiGLU (inter * n odd multiples of 8 or not) and the residual accumulate.
TEST(CudaMlp, FusedBf16MatchesRefAndDefault) {
  QF_REQUIRE_GPU();
  auto ref = make_backend("ref");
  for (int n : {9, 33, 130})
    for (auto [hidden, inter] : {std::pair{64, 96}, std::pair{72, 100}})
      for (bool acc : {false, true})
        for (bool up_uploaded_first : {false, true}) {  // the GEMM takes the lower-address weight first
          auto gpu = make_backend("cuda");
          Linear gate, up, down;
          gate.name = "gate", up.name = "up", down.name = "down";
          gate.in = up.in = down.out = hidden;
          gate.out = up.out = down.in = inter;
          gate.weight = tensor_from(randv(size_t(inter * hidden), 401 + n), {inter, hidden}, DType::BF16);
          up.weight = tensor_from(randv(size_t(inter * hidden), 402 + n), {inter, hidden}, DType::BF16);
          down.weight = tensor_from(randv(size_t(hidden * inter), 403 + n), {hidden, inter}, DType::BF16);
          Tensor rms_w = tensor_from(randv(size_t(hidden), 404, 0.5f), {hidden}, DType::F32);
          const auto x = randv(size_t(n * hidden), 405 + n), y0 = randv(size_t(n * hidden), 406 + n);
          std::vector<float> want = y0, g(size_t(n * inter)), u(size_t(n * inter));
          ref->mlp(gate, up, down, {x.data(), &rms_w, 1e-5f}, n, g.data(), u.data(), want.data(), acc);
          auto dx = upload(*gpu, x), dg = upload(*gpu, g), du = upload(*gpu, u);
          auto dy = upload(*gpu, y0), dy_default = upload(*gpu, y0);
          const Linear* first[] = {up_uploaded_first ? &up : &gate};
          float* first_out[] = {dg.get()};
          gpu->linear(first, {dx.get()}, n, first_out, false);  // uploads that weight before the other
          gpu->mlp(gate, up, down, {dx.get(), &rms_w, 1e-5f}, n, dg.get(), du.get(), dy.get(), acc);
          const auto got = download(*gpu, dy.get(), want.size());
          gpu->Backend::mlp(gate, up, down, {dx.get(), &rms_w, 1e-5f}, n, dg.get(), du.get(), dy_default.get(), acc);
          const auto got_default = download(*gpu, dy_default.get(), want.size());
          const std::string what = "n=" + std::to_string(n) + " hidden=" + std::to_string(hidden) +
                                   " inter=" + std::to_string(inter) + " acc=" + std::to_string(acc) +
                                   " up_first=" + std::to_string(up_uploaded_first);
          EXPECT_LT(rel_max_err(got, want), 3e-2) << "fused vs ref " << what;
          EXPECT_LT(rel_max_err(got_default, want), 2e-2) << "default vs ref " << what;
          EXPECT_LT(rel_max_err(got, got_default), 1e-2) << "fused vs default " << what;
          EXPECT_GT(rel_max_err(got, got_default), 0.0) << "the fused path did not run " << what;
        }
}

TEST(CudaEmbed, MatchesRefAndRejectsBadIds) {
  QF_REQUIRE_GPU();
  auto gpu = make_backend("cuda");
  auto ref = make_backend("ref");
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    const int64_t vocab = 37, d = 29;
    Tensor table = tensor_from(randv(size_t(vocab * d), 3), {vocab, d}, dt);
    const int32_t ids[] = {0, 36, 5, 5, 17};
    std::vector<float> want(5 * d);
    ref->embed(table, ids, 5, want.data());
    auto out = gpu->alloc(5 * d, MemCategory::Scratch);
    gpu->embed(table, ids, 5, out.get());
    EXPECT_EQ(download(*gpu, out.get(), want.size()), want) << dtype_name(dt);
    const int32_t bad[] = {3, 37};
    EXPECT_THROW(gpu->embed(table, bad, 2, out.get()), Error);
  }
}

struct AttnCase {
  int64_t heads, kv_heads, hd, n, pos0, window;
  bool llama3;
};

class CudaAttention : public ::testing::TestWithParam<AttnCase> {};

TEST_P(CudaAttention, MatchesRef) {
  QF_REQUIRE_GPU();
  const AttnCase c = GetParam();
  auto gpu = make_backend("cuda");
  auto ref = make_backend("ref");
  ModelConfig cfg;
  cfg.head_dim = c.hd;
  cfg.rope_theta = 500000;
  if (c.llama3) {
    cfg.rope_scaling.type = RopeType::Llama3;
    cfg.rope_scaling.factor = 8;
    cfg.rope_scaling.low_freq_factor = 1;
    cfg.rope_scaling.high_freq_factor = 4;
    cfg.rope_scaling.original_max_position_embeddings = 64;
  }
  const int64_t cap = c.pos0 + c.n + 13, kvd = c.kv_heads * c.hd, qd = c.heads * c.hd;
  RopeTable rope = make_rope_table(cfg, cap + 7);
  auto cache_k = randv(size_t(cap * kvd), 1), cache_v = randv(size_t(cap * kvd), 2);
  auto q = randv(size_t(c.n * qd), 3), k = randv(size_t(c.n * kvd), 4), v = randv(size_t(c.n * kvd), 5);
  auto dq = upload(*gpu, q), dk = upload(*gpu, k), dv = upload(*gpu, v);
  auto dkc = upload(*gpu, cache_k, MemCategory::KvCache), dvc = upload(*gpu, cache_v, MemCategory::KvCache);
  auto dout = gpu->alloc(c.n * qd, MemCategory::Scratch);
  std::vector<float> out(size_t(c.n * qd));
  const AttentionShape s{c.heads, c.kv_heads, c.hd, c.window};
  ref->attention(q.data(), k.data(), v.data(), cache_k.data(), cache_v.data(), c.n, c.pos0, s, rope, out.data());
  gpu->attention(dq.get(), dk.get(), dv.get(), dkc.get(), dvc.get(), c.n, c.pos0, s, rope, dout.get());
  EXPECT_LT(rel_max_err(download(*gpu, dout.get(), out.size()), out), 2e-5) << "out";
  EXPECT_LT(rel_max_err(download(*gpu, dq.get(), q.size()), q), 1e-6) << "rotated q";
  EXPECT_LT(rel_max_err(download(*gpu, dk.get(), k.size()), k), 1e-6) << "rotated k";
  // Only rows [0, pos0+n) are defined by the contract; the rest must be untouched anyway.
  EXPECT_LT(rel_max_err(download(*gpu, dkc.get(), cache_k.size()), cache_k), 1e-6) << "k cache";
  EXPECT_EQ(download(*gpu, dvc.get(), cache_v.size()), cache_v) << "v cache";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaAttention,
    ::testing::Values(AttnCase{6, 2, 20, 1, 0, 0, false}, AttnCase{6, 2, 20, 1, 9, 0, false},
                      AttnCase{6, 2, 20, 5, 9, 0, false}, AttnCase{6, 2, 20, 5, 9, 4, false},
                      AttnCase{4, 4, 64, 1, 200, 0, true}, AttnCase{4, 4, 64, 1, 200, 37, false},
                      AttnCase{8, 1, 128, 70, 0, 0, true}, AttnCase{8, 1, 128, 70, 33, 0, false},
                      AttnCase{8, 2, 256, 3, 130, 0, false}, AttnCase{32, 8, 128, 1, 511, 0, true},
                      AttnCase{32, 8, 128, 100, 0, 16, false}, AttnCase{6, 3, 48, 33, 65, 40, false},
                      AttnCase{2, 2, 6, 9, 0, 0, false}));

TEST(CudaDevice, UnknownIndexIsAnError) {
  QF_REQUIRE_GPU();
  EXPECT_THROW(make_backend("cuda:7"), Error);  // usable only when 8 GPUs exist
}

TEST(CudaGpuInfo, ListsTheGpuAndMeasuresBandwidth) {
  QF_REQUIRE_GPU();
  auto gpus = list_gpus();
  ASSERT_FALSE(gpus.empty());
  for (const auto& g : gpus) {
    EXPECT_FALSE(g.name.empty());
    EXPECT_GE(g.cc_major, 7);
    EXPECT_GT(g.total_bytes, 0u);
    EXPECT_GT(g.free_bytes, 0u);
    std::printf("gpu %d: %s sm_%d%d, %.1f GiB (%.1f free), %d SMs, peak %.0f GB/s, formats:", g.index, g.name.c_str(),
                g.cc_major, g.cc_minor, g.total_bytes / 1073741824.0, g.free_bytes / 1073741824.0, g.multiprocessors,
                g.peak_bandwidth_gb_s);
    for (auto& f : g.native_formats) std::printf(" %s", f.c_str());
    std::printf("\n");
  }
  const double bw = measure_gpu_copy_bandwidth(0);
  std::printf("gpu_copy_bandwidth_gb_s=%.1f\n", bw);
  RecordProperty("gpu_copy_bandwidth_gb_s", std::to_string(bw));
  EXPECT_GT(bw, 10.0);
  EXPECT_THROW(measure_gpu_copy_bandwidth(99), Error);
  // The cuBLAS bf16 GEMM rate at the MLP shapes of a 2,048-token prefill (TinyLlama, Llama-3-8B).
  std::printf("cublas_bf16_tflops_tinyllama=%.1f\n", measure_gpu_gemm_tflops(0, 2048, 5632, 2048));
  std::printf("cublas_bf16_tflops_llama3_8b=%.1f\n", measure_gpu_gemm_tflops(0, 2048, 14336, 4096));
}

// Large row counts select 2 and 4 rows per warp in the GEMV (the shapes above use 1).
TEST(CudaLinearRows, TwoAndFourRowsPerWarp) {
  QF_REQUIRE_GPU();
  auto gpu = make_backend("cuda");
  auto ref = make_backend("ref");
  for (int rows : {4500, 9000})
    for (int n : {1, 3}) {
      const int in = 72;
      Linear l;
      l.name = "big";
      l.in = in;
      l.out = rows;
      l.weight = tensor_from(randv(size_t(in) * rows, rows), {rows, in}, DType::BF16);
      l.bias = tensor_from(randv(size_t(rows), 2), {rows}, DType::F32);
      const auto x = randv(size_t(n * in), 3);
      auto dx = upload(*gpu, x);
      std::vector<float> want(size_t(n) * rows);
      auto dy = gpu->alloc(int64_t(want.size()), MemCategory::Scratch);
      const Linear* lp[] = {&l};
      float* yr[] = {want.data()};
      float* yd[] = {dy.get()};
      ref->linear(lp, LinearInput{x.data()}, n, yr, false);
      gpu->linear(lp, LinearInput{dx.get()}, n, yd, false);
      EXPECT_LT(rel_max_err(download(*gpu, dy.get(), want.size()), want), 2e-5) << "rows=" << rows << " n=" << n;
    }
}
