// io/safetensors.cpp — the safetensors reader (mmap + complete header validation) and the atomic
// writer. Format: 8-byte little-endian header length N, N bytes of JSON header (an object of
// tensor entries plus an optional "__metadata__" string map), then the data section that every
// entry's data_offsets index into. Every error is one line "<file>: <problem>".
#include "io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <string_view>

#include "io/mapped_file.h"
#include "io/printable.h"
#include "qforge/status.h"

namespace qforge::io {

namespace {

using nlohmann::json;

// Deepest nesting a valid header has: root object > tensor entry > shape array.
constexpr int kMaxHeaderDepth = 3;

struct DepthExceeded {};

// A tensor name or JSON value quoted for a one-line message: control and non-ASCII bytes escaped.
std::string printable(std::string_view s, size_t max_len = 200) { return escape_for_message(s, max_len); }

std::string json_type(const json& j) { return j.type_name(); }

[[noreturn]] void fail(const std::string& file, const std::string& problem) { throw Error(file + ": " + problem); }

[[noreturn]] void fail_tensor(const std::string& file, const std::string& tensor, const std::string& problem) {
  fail(file, "tensor '" + printable(tensor) + "': " + problem);
}

// A non-negative JSON integer as uint64; nullopt-like failure reported through `ok`.
bool as_u64(const json& j, uint64_t& out) {
  if (j.is_number_unsigned()) {
    out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer()) {
    auto v = j.get<int64_t>();
    if (v < 0) return false;
    out = uint64_t(v);
    return true;
  }
  return false;
}

struct Span {
  uint64_t begin, end;
  const std::string* name;
};

// Parses and validates the header of the image [data, data+size); fills tensors and metadata.
void parse_image(const uint8_t* data, size_t size, const std::string& file, std::map<std::string, TensorInfo>& tensors,
                 std::map<std::string, std::string>& metadata) {
  if (size < 8)
    fail(file, "truncated: file has " + std::to_string(size) + " bytes, too small for the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n > kMaxSafetensorsHeaderBytes)
    fail(file, "header length " + std::to_string(n) + " exceeds the limit of " +
                   std::to_string(kMaxSafetensorsHeaderBytes) + " bytes (not a safetensors file?)");
  if (n > size - 8)
    fail(file, "truncated: header says " + std::to_string(n) + " bytes but file has " + std::to_string(size - 8) +
                   " after the 8-byte length");
  if (n < 2) fail(file, "header of " + std::to_string(n) + " bytes is too short to be a JSON object");
  const char* hb = reinterpret_cast<const char*>(data + 8);
  if (hb[0] != '{') fail(file, "header does not start with '{' (not a safetensors file?)");

  json header;
  try {
    header = json::parse(hb, hb + n, [](int depth, json::parse_event_t, json&) {
      if (depth > kMaxHeaderDepth) throw DepthExceeded{};
      return true;
    });
  } catch (const json::parse_error& e) {
    fail(file, "header is not valid JSON (parse error at byte " + std::to_string(e.byte) + " of " + std::to_string(n) +
                   ")");
  } catch (const json::exception&) {  // e.g. out_of_range: a number like 1e999
    fail(file, "header is not valid JSON (a number is out of range)");
  } catch (const DepthExceeded&) {
    fail(file, "header JSON is nested deeper than a safetensors header can be");
  }
  if (!header.is_object()) fail(file, "header is a JSON " + json_type(header) + ", expected an object");

  const uint64_t data_size = uint64_t(size) - 8 - n;
  const uint8_t* data_section = data + 8 + n;
  std::vector<Span> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(file, "__metadata__ is a JSON " + json_type(v) + ", expected an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          fail(file, "__metadata__ entry '" + printable(m.key()) + "' is a JSON " + json_type(m.value()) +
                         ", expected a string");
        metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object()) fail_tensor(file, name, "entry is a JSON " + json_type(v) + ", expected an object");
    auto dt_it = v.find("dtype");
    auto shape_it = v.find("shape");
    auto off_it = v.find("data_offsets");
    if (dt_it == v.end()) fail_tensor(file, name, "missing \"dtype\"");
    if (shape_it == v.end()) fail_tensor(file, name, "missing \"shape\"");
    if (off_it == v.end()) fail_tensor(file, name, "missing \"data_offsets\"");
    if (!dt_it->is_string()) fail_tensor(file, name, "dtype is a JSON " + json_type(*dt_it) + ", expected a string");
    const auto& dt_name = dt_it->get_ref<const std::string&>();
    auto dt = dtype_from_safetensors(dt_name);
    if (!dt) fail_tensor(file, name, "unknown dtype '" + printable(dt_name) + "'");

    TensorInfo info;
    info.name = name;
    info.dtype = *dt;
    info.file = file;
    if (!shape_it->is_array()) fail_tensor(file, name, "shape is a JSON " + json_type(*shape_it) + ", expected an array");
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : *shape_it) {
      uint64_t dim = 0;
      if (!d.is_number_integer()) fail_tensor(file, name, "shape entry " + printable(d.dump()) + " is not an integer");
      if (!as_u64(d, dim)) fail_tensor(file, name, "negative shape entry " + printable(d.dump()));
      if (dim > uint64_t(INT64_MAX)) fail_tensor(file, name, "shape entry " + std::to_string(dim) + " is too large");
      info.shape.push_back(int64_t(dim));
      if (__builtin_mul_overflow(numel, dim, &numel)) overflow = true;
    }
    uint64_t nbytes = 0;
    if (overflow || __builtin_mul_overflow(numel, uint64_t(dtype_size(*dt)), &nbytes))
      fail_tensor(file, name, "shape " + printable(shape_it->dump()) + " overflows 64-bit byte count");

    if (!off_it->is_array() || off_it->size() != 2)
      fail_tensor(file, name, "data_offsets must be an array [begin, end], got " + printable(off_it->dump(), 80));
    uint64_t begin = 0, end = 0;
    if (!as_u64((*off_it)[0], begin) || !as_u64((*off_it)[1], end))
      fail_tensor(file, name, "data_offsets " + printable(off_it->dump(), 80) + " must be non-negative integers");
    const std::string range = "[" + std::to_string(begin) + "," + std::to_string(end) + "]";
    if (begin > end) fail_tensor(file, name, "data_offsets " + range + " have begin > end");
    if (end > data_size)
      fail_tensor(file, name, "data_offsets " + range + " run past the end of the data (" + std::to_string(data_size) +
                                  " bytes)");
    if (end - begin != nbytes)
      fail_tensor(file, name, "data_offsets " + range + " hold " + std::to_string(end - begin) + " bytes but " +
                                  std::string(dtype_traits(*dt).safetensors_name) + " shape " +
                                  printable(shape_it->dump()) + " needs " + std::to_string(nbytes));
    info.data = data_section + begin;
    info.nbytes = size_t(nbytes);
    info.file_offset = 8 + n + begin;
    auto [pos, inserted] = tensors.emplace(name, std::move(info));
    if (nbytes > 0) spans.push_back({begin, end, &pos->first});
  }

  // No two non-empty tensors may share a byte (gaps are tolerated).
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : *a.name < *b.name;
  });
  const Span* reach = nullptr;  // the span reaching furthest so far
  for (const auto& s : spans) {
    if (reach && s.begin < reach->end)
      fail(file, "tensors '" + printable(*reach->name) + "' [" + std::to_string(reach->begin) + "," +
                     std::to_string(reach->end) + "] and '" + printable(*s.name) + "' [" + std::to_string(s.begin) +
                     "," + std::to_string(s.end) + "] overlap");
    if (!reach || s.end > reach->end) reach = &s;
  }
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  auto mapped = MappedFile::open(path);
  SafetensorsFile f;
  f.path_ = path;
  parse_image(mapped->data(), mapped->size(), path.string(), f.tensors_, f.metadata_);
  f.keep_ = std::move(mapped);
  return f;
}

SafetensorsFile SafetensorsFile::from_bytes(std::shared_ptr<const void> keep, const uint8_t* data, size_t size,
                                            const std::string& name) {
  SafetensorsFile f;
  f.path_ = name;
  parse_image(data, size, name, f.tensors_, f.metadata_);
  f.keep_ = std::move(keep);
  return f;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

Tensor SafetensorsFile::tensor(const TensorInfo& info) const { return Tensor::view(info.dtype, info.shape, info.data, keep_); }

// ---------------------------------------------------------------------------------------------
// Writer

namespace {

void write_all(int fd, const void* buf, size_t n, const std::string& tmp) {
  auto p = static_cast<const uint8_t*>(buf);
  while (n > 0) {
    size_t chunk = std::min<size_t>(n, size_t(1) << 30);
    ssize_t w = ::write(fd, p, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(tmp + ": write failed: " + std::strerror(errno));
    }
    p += w;
    n -= size_t(w);
  }
}

std::string random_suffix() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static const char* hex = "0123456789abcdef";
  uint64_t r = rng();
  std::string s;
  for (int i = 0; i < 12; ++i, r >>= 4) s += hex[r & 15];
  return s;
}

}  // namespace

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string file = path.string();
  // Validate the request and lay the data out: larger elements first so that each tensor stays
  // aligned to its element size with no padding between tensors.
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    size_t sa = dtype_size(tensors[a].dtype), sb = dtype_size(tensors[b].dtype);
    return sa != sb ? sa > sb : tensors[a].name < tensors[b].name;
  });
  json header = json::object();
  uint64_t offset = 0;
  for (size_t i : order) {
    const auto& t = tensors[i];
    if (t.name.empty() || t.name == "__metadata__")
      throw Error(file + ": cannot write a tensor named '" + t.name + "'");
    if (header.contains(t.name)) throw Error(file + ": tensor '" + printable(t.name) + "' given twice");
    uint64_t numel = 1;
    for (auto d : t.shape) {
      if (d < 0) throw Error(file + ": tensor '" + printable(t.name) + "': negative dimension " + std::to_string(d));
      if (__builtin_mul_overflow(numel, uint64_t(d), &numel))
        throw Error(file + ": tensor '" + printable(t.name) + "': shape overflows");
    }
    uint64_t need = 0;
    if (__builtin_mul_overflow(numel, uint64_t(dtype_size(t.dtype)), &need) || need != t.nbytes)
      throw Error(file + ": tensor '" + printable(t.name) + "': " + std::to_string(t.nbytes) +
                  " bytes given but the shape needs " + std::to_string(need));
    if (need > 0 && t.data == nullptr) throw Error(file + ": tensor '" + printable(t.name) + "': no data");
    header[t.name] = {{"dtype", std::string(dtype_traits(t.dtype).safetensors_name)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + need}}};
    offset += need;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception&) {
    throw Error(file + ": a tensor name or metadata string is not valid UTF-8");
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kMaxSafetensorsHeaderBytes)
    throw Error(file + ": header of " + std::to_string(text.size()) + " bytes exceeds the safetensors limit");
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));

  const std::string tmp = file + ".tmp-" + std::to_string(::getpid()) + "-" + random_suffix();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(file + ": cannot create " + tmp + ": " + std::strerror(errno));
  try {
    write_all(fd, len, 8, tmp);
    write_all(fd, text.data(), text.size(), tmp);
    for (size_t i : order) write_all(fd, tensors[i].data, tensors[i].nbytes, tmp);
    if (::fsync(fd) != 0) throw Error(tmp + ": fsync failed: " + std::strerror(errno));
    int rc = ::close(fd);
    fd = -1;
    if (rc != 0) throw Error(tmp + ": close failed: " + std::strerror(errno));
    if (::rename(tmp.c_str(), file.c_str()) != 0)
      throw Error(file + ": cannot rename " + tmp + " into place: " + std::strerror(errno));
  } catch (const Error& e) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    std::string msg = e.what();
    throw Error(msg.rfind(file, 0) == 0 ? msg : file + ": " + msg);
  }
  // Make the rename durable; failure here leaves a complete file, so it is not an error.
  auto dir = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace qforge::io
