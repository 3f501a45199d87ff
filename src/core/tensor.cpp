// core/tensor.cpp — Tensor construction, views and float dtype conversion.
#include "qforge/tensor.h"

#include <cstring>

#include "qforge/status.h"

namespace qforge {

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (auto d : shape_) n *= d;
  return n;
}

Tensor Tensor::empty(DType dtype, std::vector<int64_t> shape, MemCategory cat, bool zero) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  for (auto d : t.shape_) QF_CHECK(d >= 0, "negative dimension");
  auto buf = host_alloc(size_t(t.numel()) * dtype_size(dtype), cat, zero);
  t.data_ = buf.get();
  t.keep_ = std::move(buf);
  return t;
}

Tensor Tensor::view(DType dtype, std::vector<int64_t> shape, const void* data, std::shared_ptr<const void> keepalive) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = const_cast<void*>(data);
  t.keep_ = std::move(keepalive);
  return t;
}

Tensor Tensor::rows(int64_t row0, int64_t n) const {
  QF_CHECK(!shape_.empty() && row0 >= 0 && row0 + n <= shape_[0], "row range out of bounds");
  auto s = shape_;
  s[0] = n;
  int64_t row_elems = shape_[0] ? numel() / shape_[0] : 0;
  return view(dtype_, s, static_cast<const uint8_t*>(data_) + row0 * row_elems * int64_t(dtype_size(dtype_)), keep_);
}

Tensor Tensor::to(DType dt, MemCategory cat) const {
  Tensor out = empty(dt, shape_, cat);
  convert_floats(data_, dtype_, out.data_, dt, size_t(numel()));
  return out;
}

std::string Tensor::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape_.size(); ++i) s += (i ? ", " : "") + std::to_string(shape_[i]);
  return s + "]";
}

void convert_floats(const void* src, DType st, void* dst, DType dt, size_t n) {
  if (st == dt) {
    std::memcpy(dst, src, n * dtype_size(st));
    return;
  }
  auto load = [&](size_t i) -> float {
    switch (st) {
      case DType::F32: return static_cast<const float*>(src)[i];
      case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(src)[i]);
      case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
      default: QF_CHECK(false, "convert_floats: unsupported source dtype");
    }
  };
  for (size_t i = 0; i < n; ++i) {
    float v = load(i);
    switch (dt) {
      case DType::F32: static_cast<float*>(dst)[i] = v; break;
      case DType::F16: static_cast<uint16_t*>(dst)[i] = f32_to_f16(v); break;
      case DType::BF16: static_cast<uint16_t*>(dst)[i] = f32_to_bf16(v); break;
      default: QF_CHECK(false, "convert_floats: unsupported target dtype");
    }
  }
}

}  // namespace qforge
