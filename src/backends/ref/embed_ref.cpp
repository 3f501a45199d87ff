// backends/ref/embed_ref.cpp — reference embedding lookup and the float element loader.
#include "backends/ref/ref_ops.h"
#include "qforge/status.h"

namespace qforge::ref {

float load_float(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::F32: return t.data<float>()[i];
    case DType::F16: return f16_to_f32(t.data<uint16_t>()[i]);
    case DType::BF16: return bf16_to_f32(t.data<uint16_t>()[i]);
    default: QF_CHECK(false, "load_float: not a float tensor");
  }
}

void embed(const Tensor& table, const int32_t* ids, int64_t n, float* out) {
  int64_t vocab = table.dim(0), d = table.dim(1);
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= vocab)
      throw Error("token id " + std::to_string(ids[i]) + " is outside the vocabulary (" + std::to_string(vocab) + ")");
    for (int64_t j = 0; j < d; ++j) out[i * d + j] = load_float(table, int64_t(ids[i]) * d + j);
  }
}

}  // namespace qforge::ref
