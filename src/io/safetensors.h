// io/safetensors.h — memory-mapped safetensors files with a fully validated header, and an
// atomic writer. Validation: 8-byte header length within the file, JSON object, every tensor's
// dtype known, shape non-negative, data_offsets in range, end-begin == numel*dtype size,
// no overlaps, header length sane. Errors name the file (and tensor) and the problem.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qforge/dtype.h"
#include "qforge/tensor.h"

namespace qforge::io {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // into the mapping
  size_t nbytes = 0;
  uint64_t file_offset = 0;  // byte offset of the data within the file (8 + header + begin)
  std::string file;  // file name it came from, for error messages
};

class MappedFile;  // read-only mmap of a whole file

// Largest header accepted (same bound as the reference safetensors implementation).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

class SafetensorsFile {
 public:
  // Maps and validates. Throws qforge::Error("<path>: <problem>").
  static SafetensorsFile open(const std::filesystem::path& path);
  // Validate an in-memory image (used by the fuzz target and tests); `name` labels errors.
  // `keep` (may be null) keeps `data` alive for the tensor views.
  static SafetensorsFile from_bytes(std::shared_ptr<const void> keep, const uint8_t* data, size_t size,
                                    const std::string& name);

  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo* find(const std::string& name) const;
  // A Tensor view over the mapped bytes (keeps the mapping alive).
  Tensor tensor(const TensorInfo& info) const;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::shared_ptr<const void> keep_;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (any dtype) + string metadata as one safetensors file: written to
// "<path>.tmp-<pid>-<rand>", fsync'd and renamed into place, so a failure never leaves a partial
// file. Data are laid out by descending element size then name, without gaps, so every tensor
// is aligned to its element size. Throws qforge::Error naming the path (and tensor).
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
  size_t nbytes;
};
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace qforge::io
