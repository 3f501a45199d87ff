// tests/gpu/quant_gpu_test.cpp — quantized weights on the GPU against the scalar reference: for every
// format, odd shapes, the decode GEMV (n_tokens 1/3/8, plain/rmsnorm/swiglu input, accumulate on/off,
// several weights in one launch), the bf16 dequantizer bit for bit against bf16(reference dequant),
// and the prefill GEMM (n = 9/64/300). Needs nvcc (the file includes .cuh headers); skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "backends/cuda/cuda_quant.cuh"
#include "backends/quant_linear.h"
#include "backends/ref/ref_ops.h"
#include "qforge/dtype.h"

namespace qforge::cuda {
namespace {

bool have_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

struct Case {
  QuantFormat f;
  QuantParams p;
  std::string name;
  std::vector<int64_t> cols;  // shapes the format accepts (incl. non-multiples where allowed)
};

std::vector<Case> cases() {
  auto P = [](int bs, bool dq, bool pc, bool sym) {
    QuantParams p;
    p.blocksize = bs;
    p.double_quant = dq;
    p.per_channel = pc;
    p.symmetric = sym;
    return p;
  };
  return {
      {QuantFormat::NF4, P(64, false, false, false), "nf4", {40, 96, 300, 1000, 33, 48, 64, 4160}},
      {QuantFormat::NF4, P(64, true, false, false), "nf4_dq", {96, 300, 1000, 35, 320}},
      {QuantFormat::NF4, P(32, false, false, false), "nf4_b32", {36, 1000, 160}},
      {QuantFormat::FP4, P(64, false, false, false), "fp4", {40, 1000, 37, 128}},
      {QuantFormat::FP4, P(128, true, false, false), "fp4_dq", {100, 1000, 384}},
      {QuantFormat::INT8, P(0, false, false, false), "int8", {40, 333, 1000}},
      {QuantFormat::FP8_E4M3, P(0, false, false, false), "fp8_e4m3", {40, 333, 1000}},
      {QuantFormat::FP8_E4M3, P(0, false, true, false), "fp8_e4m3_pc", {40, 1000}},
      {QuantFormat::FP8_E5M2, P(0, false, false, false), "fp8_e5m2", {40, 333, 1000}},
      {QuantFormat::FP8_E5M2, P(0, false, true, false), "fp8_e5m2_pc", {1000}},
      {QuantFormat::NVFP4, P(0, false, false, false), "nvfp4", {40, 100, 1000}},
      {QuantFormat::MXFP4, P(0, false, false, false), "mxfp4", {40, 100, 1000}},
      {QuantFormat::INT4, P(32, false, false, true), "int4_sym_g32", {72, 300, 1000}},
      {QuantFormat::INT4, P(128, false, false, false), "int4_asym_g128", {72, 300, 1000}},
      {QuantFormat::INT4, P(64, false, false, false), "int4_asym_g64", {200}},
      {QuantFormat::Q4_0, P(0, false, false, false), "q4_0", {32, 96, 1056}},
      {QuantFormat::Q8_0, P(0, false, false, false), "q8_0", {32, 96, 1056}},
      {QuantFormat::Q4_K, P(0, false, false, false), "q4_k", {256, 512, 1280}},
      {QuantFormat::Q5_0, P(0, false, false, false), "q5_0", {32, 96, 1056}},
      {QuantFormat::Q6_K, P(0, false, false, false), "q6_k", {256, 512, 1280}},
      {QuantFormat::Q3_K, P(0, false, false, false), "q3_k", {256, 512, 1280}},
      {QuantFormat::Q4_1, P(0, false, false, false), "q4_1", {32, 96, 1056}},
      {QuantFormat::Q5_1, P(0, false, false, false), "q5_1", {32, 96, 1056}},
      {QuantFormat::Q5_K, P(0, false, false, false), "q5_k", {256, 512, 1280}},
      {QuantFormat::Q2_K, P(0, false, false, false), "q2_k", {256, 512, 1280}},
  };
}

// Formats held as one byte per weight on the GPU (q5_0 / q6_k / q3_k as int8 codes with their block scales;
// q4_1 / q5_1 / q5_k / q2_k with a (scale, minimum) pair per block).
bool eight_bit(QuantFormat f) {
  return f == QuantFormat::INT8 || f == QuantFormat::FP8_E4M3 || f == QuantFormat::FP8_E5M2 || f == QuantFormat::Q8_0 ||
         f == QuantFormat::Q5_0 || f == QuantFormat::Q6_K || f == QuantFormat::Q3_K || f == QuantFormat::Q4_1 ||
         f == QuantFormat::Q5_1 || f == QuantFormat::Q5_K || f == QuantFormat::Q2_K;
}
bool super_block(QuantFormat f) {
  return f == QuantFormat::Q6_K || f == QuantFormat::Q3_K || f == QuantFormat::Q5_K || f == QuantFormat::Q2_K ||
         f == QuantFormat::Q4_K;
}

Tensor random_weight(int64_t rows, int64_t cols, uint32_t seed) {
  Tensor t = Tensor::empty(DType::F32, {rows, cols});
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0.f, 0.05f);
  float* d = t.data<float>();
  for (int64_t i = 0; i < rows * cols; ++i) d[i] = nd(g);
  if (rows * cols > 5) d[3] = 0.4f;  // an outlier
  return t;
}

std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(g);
  return v;
}

struct Dev {
  void* p = nullptr;
  explicit Dev(size_t bytes) { QF_CUDA(cudaMalloc(&p, bytes)); }
  ~Dev() { cudaFree(p); }
  template <class T> T* as() { return static_cast<T*>(p); }
};

template <class T> void h2d(void* d, const std::vector<T>& h) {
  QF_CUDA(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
}
template <class T> std::vector<T> d2h(const void* d, size_t n) {
  std::vector<T> h(n);
  QF_CUDA(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

// sum_k |w[r,k] x[t,k]| for the tolerance (reference dequantized weight).
std::vector<double> abs_dot(const QuantWeight& q, const std::vector<float>& x, int64_t n) {
  std::vector<float> w(size_t(q.rows * q.cols));
  dequantize_rows(q, 0, q.rows, w.data());
  std::vector<double> s(size_t(n * q.rows), 0.0);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < q.rows; ++r) {
      double a = 0;
      for (int64_t k = 0; k < q.cols; ++k) a += std::fabs(double(w[size_t(r * q.cols + k)]) * x[size_t(t * q.cols + k)]);
      s[size_t(t * q.rows + r)] = a;
    }
  return s;
}

// The decode GEMV over input forms, token counts and accumulate, for a group of weights sharing cols.
void check_gemv(const std::vector<QuantWeight>& qs, const std::string& what, double rel_tol) {
  const int64_t K = qs[0].cols;
  std::vector<std::shared_ptr<CudaQuantWeight>> dws;
  for (const auto& q : qs) dws.push_back(upload_quant_weight(q, nullptr));
  std::vector<const CudaQuantWeight*> wp;
  for (auto& d : dws) wp.push_back(d.get());
  for (int ntok : {1, 3, 8}) {
    const auto x = random_vec(size_t(ntok * K), 11u + ntok, -2.f, 2.f);
    const auto up = random_vec(size_t(ntok * K), 23u + ntok);
    const auto rmsw = random_vec(size_t(K), 31u, 0.5f, 1.5f);
    Tensor rms_t = Tensor::empty(DType::F32, {K});
    std::copy(rmsw.begin(), rmsw.end(), rms_t.data<float>());
    Dev dx(x.size() * 4), dup(up.size() * 4), drms(rmsw.size() * 4);
    h2d(dx.p, x);
    h2d(dup.p, up);
    h2d(drms.p, rmsw);
    for (int mode = 0; mode < 3; ++mode) {
      LinearInput hin;
      hin.x = x.data();
      LinearInputDev din;
      din.x = dx.as<float>();
      if (mode == 1) {
        hin.rms_weight = &rms_t;
        hin.eps = 1e-5f;
        din.rms_w = drms.as<float>();
        din.eps = 1e-5f;
      } else if (mode == 2) {
        hin.up = up.data();
        din.up = dup.as<float>();
      }
      const auto xin = ref::form_linear_input(hin, ntok, K);
      for (bool acc : {false, true}) {
        std::vector<std::unique_ptr<Dev>> ys;
        std::vector<float*> yp;
        std::vector<std::vector<float>> base;
        for (const auto& q : qs) {
          const size_t n = size_t(ntok * q.rows);
          ys.push_back(std::make_unique<Dev>(n * 4));
          base.push_back(acc ? random_vec(n, 77u) : std::vector<float>(n, NAN));  // poison
          h2d(ys.back()->p, base.back());
          yp.push_back(ys.back()->as<float>());
        }
        quant_gemv(wp, din, ntok, yp, acc, nullptr);
        QF_CUDA(cudaDeviceSynchronize());
        for (size_t i = 0; i < qs.size(); ++i) {
          const auto& q = qs[i];
          std::vector<float> ref(size_t(ntok * q.rows));
          quant_linear_ref(q, xin.data(), ntok, ref.data());
          const auto sabs = abs_dot(q, xin, ntok);
          const auto got = d2h<float>(yp[i], ref.size());
          int bad = 0;
          for (size_t j = 0; j < ref.size() && bad < 3; ++j) {
            const double want = double(ref[j]) + (acc ? base[i][j] : 0.0);
            const double tol = rel_tol * sabs[j] + (acc ? 2e-7 * std::fabs(base[i][j]) : 0.0) + 1e-30;
            if (!(std::fabs(double(got[j]) - want) <= tol)) {
              ++bad;
              ADD_FAILURE() << what << " w" << i << " [" << q.rows << "x" << q.cols << "] ntok " << ntok << " mode "
                            << mode << " acc " << acc << " elem " << j << ": got " << got[j] << " want " << want
                            << " tol " << tol;
            }
          }
        }
      }
    }
  }
}

class QuantGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  }
};

// f32 accumulation in another order than the double reference: |err| <= ~K eps sum|wx| in the worst
// case, typically sqrt(K) eps; the staged rmsnorm (f32, rsqrtf) and silu (__expf) add ~1e-6 relative.
constexpr double kGemvTol = 1e-5;
// The 4-bit GEMV decodes codes through an f16 copy of the format's table: exact for e2m1, int4, q4_0 and
// q4_k, within 2^-12 relative for the nf4 / fp4 tables (bitsandbytes computes in bf16, 2^-9).
double gemv_tol(QuantFormat f) {
  return f == QuantFormat::NF4 || f == QuantFormat::FP4 ? 2.5e-4 + kGemvTol : kGemvTol;
}

TEST_F(QuantGpu, GemvEveryFormat) {
  uint32_t seed = 1;
  for (const auto& c : cases())
    for (int64_t K : c.cols)
      for (int64_t rows : {1, 7, 66, 257}) {
        const QuantWeight q = quantize_weight(random_weight(rows, K, seed++), c.f, c.p);
        check_gemv({q}, c.name, gemv_tol(c.f));
      }
}

TEST_F(QuantGpu, GemvSeveralWeightsOneLaunch) {
  for (const auto& c : cases()) {
    const int64_t K = c.cols.front();
    std::vector<QuantWeight> qs;
    uint32_t seed = 100;
    for (int64_t rows : {64, 9, 9}) qs.push_back(quantize_weight(random_weight(rows, K, seed++), c.f, c.p));
    check_gemv(qs, c.name + "_qkv", gemv_tol(c.f));
  }
}

// One token of an 8-bit format takes the streaming GEMV (units of one row x 2048 codes): rows of one full
// unit and a partial one, of two, and of three with a short last unit (q8_0 needs K % 32 == 0), one
// weight and three sharing a launch (rows counted across weights).
TEST_F(QuantGpu, GemvEightBitLongRows) {
  uint32_t seed = 900;
  for (const auto& c : cases()) {
    if (!eight_bit(c.f)) continue;
    for (int64_t K : {int64_t(2176), int64_t(4096), int64_t(4160), int64_t(6176), int64_t(6400)}) {
      if (super_block(c.f) && K % 256 != 0) continue;  // whole super-blocks: 4096, 6400
      check_gemv({quantize_weight(random_weight(130, K, seed++), c.f, c.p)}, c.name + "_long", kGemvTol);
      std::vector<QuantWeight> qs;
      for (int64_t rows : {3, 64, 17}) qs.push_back(quantize_weight(random_weight(rows, K, seed++), c.f, c.p));
      check_gemv(qs, c.name + "_long_group", kGemvTol);
    }
  }
}

// llama.cpp's Q4_K_M mixes formats among the weights that share an input (attn_v in Q6_K beside Q4_K q / k;
// Q5_0 / Q8_0 fallbacks): one call, a launch per format, every output right.
TEST_F(QuantGpu, GemvMixedFormatsOneCall) {
  const std::pair<QuantFormat, int64_t> parts[] = {{QuantFormat::Q4_K, 64}, {QuantFormat::Q6_K, 9}, {QuantFormat::Q4_K, 9},
                                                   {QuantFormat::Q5_0, 5}, {QuantFormat::Q8_0, 7}, {QuantFormat::NF4, 3},
                                                   {QuantFormat::Q5_K, 6}, {QuantFormat::Q5_1, 4}};
  std::vector<QuantWeight> qs;
  uint32_t seed = 1200;
  for (auto [f, rows] : parts) qs.push_back(quantize_weight(random_weight(rows, 512, seed++), f, QuantParams{}));
  check_gemv(qs, "mixed", gemv_tol(QuantFormat::NF4));
}

TEST_F(QuantGpu, GemvLargeInputStagedInGlobalMemory) {
  // 8 tokens x 4096 cols = 128 KB of input: staged once per launch in global memory.
  for (QuantFormat f : {QuantFormat::NF4, QuantFormat::INT8, QuantFormat::Q4_K, QuantFormat::NVFP4, QuantFormat::Q6_K,
                        QuantFormat::Q5_K, QuantFormat::Q2_K}) {
    const QuantWeight q = quantize_weight(random_weight(37, 4096, 5), f, QuantParams{});
    check_gemv({q}, std::string(quant_traits(f).name) + "_global", gemv_tol(f));
  }
}

// One token takes the 4-bit GEMV's one-mma form (x's hi and lo halves in B columns 0 and 1); two tokens
// the two-mma form. Token 0 of a launch whose two tokens are the same input must match the one-token
// launch to the bit (q4_k's minimum term adds its block sums in another order: f32 rounding), also with
// the input staged in global memory (K = 28,672).
TEST_F(QuantGpu, GemvOneTokenEqualsTwoTokenForm) {
  uint32_t seed = 700;
  for (const auto& c : cases()) {
    const QuantFormat f = c.f;
    if (eight_bit(f)) continue;
    for (int64_t K : {int64_t(512), int64_t(4096), int64_t(28672)}) {
      const int64_t rows = 75;
      const QuantWeight q = quantize_weight(random_weight(rows, K, seed++), f, c.p);
      const auto dw = upload_quant_weight(q, nullptr);
      const CudaQuantWeight* wp[] = {dw.get()};
      auto x = random_vec(size_t(K), seed++, -2.f, 2.f);
      auto x2 = x;
      x2.insert(x2.end(), x.begin(), x.end());
      Dev dx(x2.size() * 4), y1(size_t(rows) * 4), y2(size_t(2 * rows) * 4);
      h2d(dx.p, x2);
      LinearInputDev din;
      din.x = dx.as<float>();
      float* o1[] = {y1.as<float>()};
      float* o2[] = {y2.as<float>()};
      quant_gemv(wp, din, 1, o1, false, nullptr);
      quant_gemv(wp, din, 2, o2, false, nullptr);
      QF_CUDA(cudaDeviceSynchronize());
      const auto one = d2h<float>(o1[0], size_t(rows)), two = d2h<float>(o2[0], size_t(2 * rows));
      const std::string what = c.name + " K=" + std::to_string(K);
      for (int64_t r = 0; r < rows; ++r) {
        EXPECT_EQ(two[size_t(r)], two[size_t(rows + r)]) << what << " row " << r << ": the two tokens differ";
        if (f == QuantFormat::Q4_K)
          EXPECT_NEAR(one[size_t(r)], two[size_t(r)], 1e-5 * (1.0 + std::fabs(two[size_t(r)]))) << what << " row " << r;
        else
          EXPECT_EQ(one[size_t(r)], two[size_t(r)]) << what << " row " << r;
      }
    }
  }
}

// 8-bit rows of a multiple of 16 columns take the 16-codes-a-thread kernel, other widths the per-quad one.
TEST_F(QuantGpu, DequantBf16IsBitExact) {
  uint32_t seed = 500;
  for (const auto& c : cases()) {
    std::vector<int64_t> ks = c.cols;
    if (eight_bit(c.f)) ks.push_back(1024);
    for (int64_t K : ks) {
      const QuantWeight q = quantize_weight(random_weight(33, K, seed++), c.f, c.p);
      auto w = upload_quant_weight(q, nullptr);
      Dev out(size_t(q.rows * K) * 2);
      dequantize_to_bf16(*w, out.as<__nv_bfloat16>(), nullptr);
      const auto got = d2h<uint16_t>(out.p, size_t(q.rows * K));
      std::vector<float> ref(size_t(q.rows * K));
      dequantize_rows(q, 0, q.rows, ref.data());
      int bad = 0;
      for (size_t i = 0; i < ref.size() && bad < 3; ++i)
        if (got[i] != f32_to_bf16(ref[i])) {
          ++bad;
          ADD_FAILURE() << c.name << " K " << K << " elem " << i << ": got " << bf16_to_f32(got[i]) << " want "
                        << ref[i];
        }
    }
  }
}

TEST_F(QuantGpu, GemmEveryFormat) {
  cublasHandle_t h;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  uint32_t seed = 900;
  for (const auto& c : cases()) {
    const int64_t K = c.cols.back() >= 256 ? c.cols.back() : c.cols.front();
    const int64_t rows = 129;
    const QuantWeight q = quantize_weight(random_weight(rows, K, seed++), c.f, c.p);
    auto w = upload_quant_weight(q, nullptr);
    for (int64_t n : {9, 64, 300}) {
      const auto x = random_vec(size_t(n * K), seed++, -2.f, 2.f);
      Dev dx(x.size() * 4), dy(size_t(n * rows) * 4), dq(size_t(rows * K) * 2), da(x.size() * 2);
      h2d(dx.p, x);
      for (bool acc : {false, true}) {
        const auto base = acc ? random_vec(size_t(n * rows), 3u) : std::vector<float>(size_t(n * rows), NAN);
        h2d(dy.p, base);
        CudaGemmContext ctx;
        ctx.blas = h;
        ctx.dequant_scratch = dq.as<__nv_bfloat16>();
        ctx.act_bf16_scratch = da.as<__nv_bfloat16>();
        quant_gemm(*w, dx.as<float>(), n, dy.as<float>(), acc, ctx, nullptr);
        QF_CUDA(cudaDeviceSynchronize());
        std::vector<float> ref(size_t(n * rows));
        quant_linear_ref(q, x.data(), n, ref.data());
        const auto sabs = abs_dot(q, x, n);
        const auto got = d2h<float>(dy.p, ref.size());
        int bad = 0;
        for (size_t j = 0; j < ref.size() && bad < 3; ++j) {
          // bf16 weight (2^-9 relative, exact for most formats) and bf16 activations (2^-9): 1e-2 sum|wx|.
          const double want = double(ref[j]) + (acc ? base[j] : 0.0);
          const double tol = 1e-2 * sabs[j] + (acc ? 1e-6 * std::fabs(base[j]) : 0.0) + 1e-30;
          if (!(std::fabs(got[j] - want) <= tol)) {
            ++bad;
            ADD_FAILURE() << c.name << " gemm n " << n << " acc " << acc << " elem " << j << ": got " << got[j]
                          << " want " << want;
          }
        }
      }
    }
  }
  cublasDestroy(h);
}

// The backend's out-of-memory check predicts the upload's device bytes before uploading.
TEST_F(QuantGpu, UploadBytesPredictsDeviceBytes) {
  uint32_t seed = 1500;
  for (const auto& c : cases())
    for (int64_t K : c.cols)
      for (int64_t rows : {1, 17}) {
        const QuantWeight q = quantize_weight(random_weight(rows, K, seed++), c.f, c.p);
        auto w = upload_quant_weight(q, nullptr);
        EXPECT_EQ(upload_bytes(q), device_bytes(*w)) << c.name << " [" << rows << "x" << K << "]";
      }
}

TEST_F(QuantGpu, UploadAccountsDeviceBytes) {
  const auto before = MemoryAccounting::get(MemDevice::Cuda0, MemCategory::Weights).current;
  {
    const QuantWeight q = quantize_weight(random_weight(64, 256, 3), QuantFormat::NF4, QuantParams{});
    auto w = upload_quant_weight(q, nullptr);
    EXPECT_EQ(MemoryAccounting::get(MemDevice::Cuda0, MemCategory::Weights).current - before,
              int64_t(device_bytes(*w)));
    EXPECT_GE(device_bytes(*w), q.storage_bytes());
  }
  EXPECT_EQ(MemoryAccounting::get(MemDevice::Cuda0, MemCategory::Weights).current, before);
}

}  // namespace
}  // namespace qforge::cuda
