// io/mapped_file.h — a read-only, shared mmap of a whole file. Owners hold it through a
// shared_ptr so tensor views over the bytes keep the mapping alive after the file object is gone.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>

namespace qforge::io {

class MappedFile {
 public:
  // Maps `path` read-only. Throws qforge::Error("<path>: <problem>") if it cannot be opened or
  // mapped. An empty file maps to size() == 0 and data() == nullptr.
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path);

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace qforge::io
