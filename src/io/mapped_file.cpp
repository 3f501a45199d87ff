// io/mapped_file.cpp — POSIX mmap of a whole file (PROT_READ, MAP_SHARED); the descriptor is
// closed right after mapping, the mapping lives until the last shared_ptr owner goes.
#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "qforge/status.h"

namespace qforge::io {

std::shared_ptr<const MappedFile> MappedFile::open(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path.string() + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw Error(path.string() + ": cannot stat: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path.string() + ": not a regular file");
  }
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->size_ = size_t(st.st_size);
  if (m->size_ > 0) {
    void* p = ::mmap(nullptr, m->size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      throw Error(path.string() + ": cannot mmap " + std::to_string(m->size_) + " bytes: " + std::strerror(e));
    }
    m->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return m;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

void release_mapped_pages(const void* data, size_t n) {
  if (!data || n == 0) return;
  const uintptr_t page = 4096;
  uintptr_t a = reinterpret_cast<uintptr_t>(data) & ~(page - 1);
  uintptr_t e = reinterpret_cast<uintptr_t>(data) + n;
  madvise(reinterpret_cast<void*>(a), e - a, MADV_DONTNEED);
}

}  // namespace qforge::io
