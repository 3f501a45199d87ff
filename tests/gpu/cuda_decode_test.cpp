// tests/gpu/cuda_decode_test.cpp — the decode fast paths of the CUDA backend against the ref backend:
// the one-kernel decode attention over long caches (several key tiles per split, sliding window,
// GQA groups of 1..8, head_dim 64/128/odd), a decode loop that reuses the kernel's combine counters
// across calls and shapes, and GEMV row counts large enough for 2 and 4 rows per warp.
#include <gtest/gtest.h>

#include <memory>

#include "gpu_test_util.h"

using namespace qforge;
using namespace qforge::gputest;

namespace {

struct DecodeCase {
  int64_t heads, kv_heads, hd, pos, window;
};

// One decode step at position c.pos on a cache of capacity cap; compares out, rotated q/k and caches.
// The backend keeps a device copy of each rope table keyed by its address: every case gets its own
// table that lives as long as the backend (`keep`).
void check_decode(Backend& gpu, Backend& ref, const DecodeCase& c, int64_t cap, uint32_t seed,
                  std::vector<std::unique_ptr<RopeTable>>& keep) {
  ModelConfig cfg;
  cfg.head_dim = c.hd;
  cfg.rope_theta = 10000;
  keep.push_back(std::make_unique<RopeTable>(make_rope_table(cfg, cap)));
  const RopeTable& rope = *keep.back();
  const int64_t kvd = c.kv_heads * c.hd, qd = c.heads * c.hd;
  auto cache_k = randv(size_t(cap * kvd), seed), cache_v = randv(size_t(cap * kvd), seed + 1);
  auto q = randv(size_t(qd), seed + 2), k = randv(size_t(kvd), seed + 3), v = randv(size_t(kvd), seed + 4);
  auto dq = upload(gpu, q), dk = upload(gpu, k), dv = upload(gpu, v);
  auto dkc = upload(gpu, cache_k, MemCategory::KvCache), dvc = upload(gpu, cache_v, MemCategory::KvCache);
  auto dout = gpu.alloc(qd, MemCategory::Scratch);
  std::vector<float> out(size_t(qd), NAN);
  const AttentionShape s{c.heads, c.kv_heads, c.hd, c.window};
  ref.attention(q.data(), k.data(), v.data(), cache_k.data(), cache_v.data(), 1, c.pos, s, rope, out.data());
  gpu.attention(dq.get(), dk.get(), dv.get(), dkc.get(), dvc.get(), 1, c.pos, s, rope, dout.get());
  const std::string what = "heads=" + std::to_string(c.heads) + " kv=" + std::to_string(c.kv_heads) +
                           " hd=" + std::to_string(c.hd) + " pos=" + std::to_string(c.pos) + " window=" +
                           std::to_string(c.window) + " cap=" + std::to_string(cap);
  EXPECT_LT(rel_max_err(download(gpu, dout.get(), out.size()), out), 2e-5) << what;
  EXPECT_LT(rel_max_err(download(gpu, dq.get(), q.size()), q), 1e-6) << what;
  EXPECT_LT(rel_max_err(download(gpu, dk.get(), k.size()), k), 1e-6) << what;
  EXPECT_LT(rel_max_err(download(gpu, dkc.get(), cache_k.size()), cache_k), 1e-6) << what;
  EXPECT_EQ(download(gpu, dvc.get(), cache_v.size()), cache_v) << what;
}

}  // namespace

TEST(CudaDecodeAttention, LongCachesWindowsAndGroups) {
  QF_REQUIRE_GPU();
  auto gpu = make_backend("cuda");
  auto ref = make_backend("ref");
  // Several tiles per split (pos 3000 over <= 32 splits), windows inside one split and across many,
  // the first and last positions, MHA (G = 1) and GQA up to G = 8.
  const DecodeCase cases[] = {{32, 4, 64, 3000, 0},  {32, 4, 64, 0, 0},     {32, 4, 64, 3999, 0},
                              {32, 8, 128, 2047, 0}, {32, 8, 128, 777, 100}, {8, 8, 64, 1500, 5},
                              {16, 2, 128, 2600, 2000}, {6, 3, 18, 1234, 0},  {4, 1, 64, 33, 0}};
  uint32_t seed = 10;
  std::vector<std::unique_ptr<RopeTable>> keep;
  for (const auto& c : cases) check_decode(*gpu, *ref, c, 4000, seed += 10, keep);
  // Small capacities (fewer splits than the GPU would like), same backend: the combine counters
  // must come back to zero after every call, whatever kv_heads was.
  for (const auto& c : {DecodeCase{12, 6, 32, 5, 0}, DecodeCase{12, 2, 32, 40, 0}, DecodeCase{12, 12, 32, 63, 7}})
    check_decode(*gpu, *ref, c, 64, seed += 10, keep);
}

// With full occupancy a warp takes total_rows / (resident warps) rows: enough rows give 2 and 4 rows
// per warp, with partial groups at the ends of the warps' ranges and layer boundaries inside them.
TEST(CudaDecodeGemv, ManyRowsPerWarp) {
  QF_REQUIRE_GPU();
  auto gpu = make_backend("cuda");
  auto ref = make_backend("ref");
  for (int rows : {20011, 70001})
    for (int n : {1, 3}) {
      const int in = 72;
      std::vector<Linear> ls(2);
      for (int i = 0; i < 2; ++i) {
        ls[i].name = "big" + std::to_string(i);
        ls[i].in = in;
        ls[i].out = rows / (i + 1);
        ls[i].weight = tensor_from(randv(size_t(in) * ls[i].out, rows + i), {ls[i].out, in}, DType::BF16);
      }
      ls[1].bias = tensor_from(randv(size_t(ls[1].out), 2), {ls[1].out}, DType::F32);
      Tensor rms_w = tensor_from(randv(size_t(in), 8, 0.5f), {in}, DType::F32);
      const auto x = randv(size_t(n * in), 3);
      auto dx = upload(*gpu, x);
      std::vector<std::vector<float>> want(2);
      std::vector<std::shared_ptr<float>> dy(2);
      for (int i = 0; i < 2; ++i) {
        want[i] = randv(size_t(n) * ls[i].out, 40 + i);
        dy[i] = upload(*gpu, want[i]);
      }
      const Linear* lp[] = {&ls[0], &ls[1]};
      float* yr[] = {want[0].data(), want[1].data()};
      float* yd[] = {dy[0].get(), dy[1].get()};
      ref->linear(lp, LinearInput{x.data(), &rms_w, 1e-5f}, n, yr, true);
      gpu->linear(lp, LinearInput{dx.get(), &rms_w, 1e-5f}, n, yd, true);
      for (int i = 0; i < 2; ++i)
        EXPECT_LT(rel_max_err(download(*gpu, dy[i].get(), want[i].size()), want[i]), 2e-5)
            << "rows=" << ls[i].out << " n=" << n;
    }
}
