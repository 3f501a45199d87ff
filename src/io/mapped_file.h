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

// Drops the resident pages of [data, data+n) inside a read-only file mapping from this process
// (they are re-read from the file if touched again). Used once a tensor has been copied or
// quantized, so streaming over a checkpoint never holds more than one tensor's pages.
void release_mapped_pages(const void* data, size_t n);

}  // namespace qforge::io
