// qforge/tensor.h — a dense, row-major, contiguous tensor: dtype + shape + data pointer, with a
// shared keep-alive handle (host allocation or mmap'd file). Views share the keep-alive.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "qforge/dtype.h"
#include "qforge/memory.h"

namespace qforge {

class Tensor {
 public:
  Tensor() = default;
  // Owning, host memory, accounted under `cat`.
  static Tensor empty(DType dtype, std::vector<int64_t> shape, MemCategory cat = MemCategory::Other, bool zero = false);
  // Non-owning view over `data`; `keepalive` (may be null) keeps the storage alive.
  static Tensor view(DType dtype, std::vector<int64_t> shape, const void* data, std::shared_ptr<const void> keepalive);

  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(i < 0 ? shape_.size() + i : i); }
  int ndim() const { return int(shape_.size()); }
  int64_t numel() const;
  // Bytes of the elements; 0 for an undefined (default-constructed) tensor.
  size_t nbytes() const { return data_ ? size_t(numel()) * dtype_size(dtype_) : 0; }
  bool defined() const { return data_ != nullptr || (numel() == 0 && !shape_.empty()); }
  explicit operator bool() const { return data_ != nullptr; }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <class T> T* data() { return static_cast<T*>(data_); }
  template <class T> const T* data() const { return static_cast<const T*>(data_); }

  // Rows [row0, row0+n) of the leading dimension, as a view.
  Tensor rows(int64_t row0, int64_t n) const;
  // A copy converted to `dt` (f32/f16/bf16 supported), accounted under `cat`.
  Tensor to(DType dt, MemCategory cat = MemCategory::Other) const;
  std::string shape_str() const;

 private:
  DType dtype_ = DType::F32;
  std::vector<int64_t> shape_;
  void* data_ = nullptr;
  std::shared_ptr<const void> keep_;
};

// Convert n elements between float dtypes (f32/f16/bf16) exactly as the scalar rules above.
void convert_floats(const void* src, DType src_t, void* dst, DType dst_t, size_t n);

}  // namespace qforge
