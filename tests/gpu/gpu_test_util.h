// tests/gpu/gpu_test_util.h — helpers of the GPU suite: skip without a GPU, random data, host ↔
// backend buffers, and the relative error measure shared with the CPU backend tests.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "backends/backend.h"
#include "test_support.h"

namespace qforge::gputest {

inline bool gpu_usable() {
  auto av = available_backends();
  return std::find(av.begin(), av.end(), "cuda") != av.end();
}

#define QF_REQUIRE_GPU() \
  if (!::qforge::gputest::gpu_usable()) GTEST_SKIP() << "no usable CUDA GPU"

inline std::vector<float> randv(size_t n, uint32_t seed, float scale = 1.0f) { return test::randn(int64_t(n), seed, scale); }

inline Tensor tensor_from(const std::vector<float>& v, std::vector<int64_t> shape, DType dt) {
  return Tensor::view(DType::F32, std::move(shape), v.data(), nullptr).to(dt);
}

// A backend buffer holding `v`.
inline std::shared_ptr<float> upload(Backend& be, const std::vector<float>& v, MemCategory c = MemCategory::Scratch) {
  auto p = be.alloc(int64_t(v.size()), c);
  be.from_host(v.data(), p.get(), int64_t(v.size()));
  return p;
}
inline std::vector<float> download(Backend& be, const float* p, size_t n) {
  std::vector<float> v(n);
  be.to_host(p, v.data(), int64_t(n));
  return v;
}

// Max |a-b| relative to the largest |reference| value.
inline double rel_max_err(const std::vector<float>& got, const std::vector<float>& want) {
  double m = 0, s = 1e-30;
  for (size_t i = 0; i < got.size(); ++i) {
    m = std::max(m, double(std::fabs(got[i] - want[i])));
    if (std::isnan(got[i])) m = INFINITY;
    s = std::max(s, double(std::fabs(want[i])));
  }
  return m / s;
}

}  // namespace qforge::gputest
