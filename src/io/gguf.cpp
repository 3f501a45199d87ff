// io/gguf.cpp — GGUF container reader and writer (see gguf.h). Layout: magic "GGUF", u32 version,
// u64 tensor count, u64 metadata count, metadata (string key, u32 type, value), tensor infos
// (name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset), padding to general.alignment,
// data section. Every count, length and offset is checked against the bytes that remain.
#include "io/gguf.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <limits>

#include "io/mapped_file.h"
#include "io/printable.h"
#include "qforge/status.h"

namespace qforge::io {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint32_t kMaxDims = 4;

struct TypeRow {
  uint32_t id;
  GgmlTypeInfo info;
};
constexpr std::array<TypeRow, 32> kTypes{{
    {0, {"F32", 1, 4}},        {1, {"F16", 1, 2}},         {2, {"Q4_0", 32, 18}},     {3, {"Q4_1", 32, 20}},
    {6, {"Q5_0", 32, 22}},     {7, {"Q5_1", 32, 24}},      {8, {"Q8_0", 32, 34}},     {9, {"Q8_1", 32, 36}},
    {10, {"Q2_K", 256, 84}},   {11, {"Q3_K", 256, 110}},   {12, {"Q4_K", 256, 144}},  {13, {"Q5_K", 256, 176}},
    {14, {"Q6_K", 256, 210}},  {15, {"Q8_K", 256, 292}},   {16, {"IQ2_XXS", 256, 66}}, {17, {"IQ2_XS", 256, 74}},
    {18, {"IQ3_XXS", 256, 98}}, {19, {"IQ1_S", 256, 50}},  {20, {"IQ4_NL", 32, 18}},  {21, {"IQ3_S", 256, 110}},
    {22, {"IQ2_S", 256, 82}},  {23, {"IQ4_XS", 256, 136}}, {24, {"I8", 1, 1}},        {25, {"I16", 1, 2}},
    {26, {"I32", 1, 4}},       {27, {"I64", 1, 8}},        {28, {"F64", 1, 8}},       {29, {"IQ1_M", 256, 56}},
    {30, {"BF16", 1, 2}},      {34, {"TQ1_0", 256, 54}},   {35, {"TQ2_0", 256, 66}},  {39, {"MXFP4", 32, 17}},
}};

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::Bool: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: return 0;
  }
}

std::string printable(std::string_view s, size_t max_len = 120) { return escape_for_message(s, max_len); }

// Bounds-checked little-endian cursor over the header.
class Cursor {
 public:
  Cursor(const uint8_t* p, size_t n, const GgufFile& f) : p_(p), n_(n), f_(f) {}
  size_t pos() const { return pos_; }
  size_t left() const { return n_ - pos_; }
  void need(size_t k, const char* what) const {
    if (k > left())
      f_.fail("truncated at byte " + std::to_string(pos_) + " reading " + what + " (" + std::to_string(k) +
              " bytes needed, " + std::to_string(left()) + " left)");
  }
  template <class T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str(const char* what) {
    const uint64_t len = get<uint64_t>(what);
    if (len > left())
      f_.fail(std::string(what) + " at byte " + std::to_string(pos_ - 8) + " claims " + std::to_string(len) +
              " bytes, only " + std::to_string(left()) + " left");
    std::string s(reinterpret_cast<const char*>(p_ + pos_), size_t(len));
    pos_ += size_t(len);
    return s;
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  const GgufFile& f_;
};

double read_number(Cursor& c, GgufType t, const std::string& key, const GgufFile& f) {
  switch (t) {
    case GgufType::U8: return c.get<uint8_t>("value");
    case GgufType::I8: return c.get<int8_t>("value");
    case GgufType::U16: return c.get<uint16_t>("value");
    case GgufType::I16: return c.get<int16_t>("value");
    case GgufType::U32: return c.get<uint32_t>("value");
    case GgufType::I32: return c.get<int32_t>("value");
    case GgufType::F32: return c.get<float>("value");
    case GgufType::F64: return c.get<double>("value");
    case GgufType::U64: return double(c.get<uint64_t>("value"));
    case GgufType::I64: return double(c.get<int64_t>("value"));
    case GgufType::Bool: {
      uint8_t b = c.get<uint8_t>("value");
      if (b > 1) f.fail("metadata '" + printable(key) + "': bool value " + std::to_string(b) + " is not 0 or 1");
      return b;
    }
    default: f.fail("metadata '" + printable(key) + "': not a number type");
  }
}

GgufValue read_value(Cursor& c, GgufType t, const std::string& key, const GgufFile& f) {
  GgufValue v;
  v.type = t;
  switch (t) {
    case GgufType::String: v.s = c.str("string value"); break;
    case GgufType::Array: {
      const uint32_t et = c.get<uint32_t>("array type");
      if (et > uint32_t(GgufType::F64))
        f.fail("metadata '" + printable(key) + "': unknown array element type " + std::to_string(et));
      v.array_type = GgufType(et);
      if (v.array_type == GgufType::Array) f.fail("metadata '" + printable(key) + "': arrays of arrays are not supported");
      const uint64_t n = c.get<uint64_t>("array length");
      const size_t min_elem = v.array_type == GgufType::String ? 8 : scalar_size(v.array_type);
      if (n > kGgufMaxArray || n * min_elem > c.left())
        f.fail("metadata '" + printable(key) + "': array of " + std::to_string(n) + " elements does not fit in the file");
      if (v.array_type == GgufType::String) {
        v.strs.reserve(size_t(n));
        for (uint64_t i = 0; i < n; ++i) v.strs.push_back(c.str("array string"));
      } else {
        v.nums.reserve(size_t(n));
        for (uint64_t i = 0; i < n; ++i) v.nums.push_back(read_number(c, v.array_type, key, f));
      }
      break;
    }
    case GgufType::U64: {
      const uint64_t u = c.get<uint64_t>("value");
      if (u > uint64_t(std::numeric_limits<int64_t>::max()))
        f.fail("metadata '" + printable(key) + "': u64 value " + std::to_string(u) + " is too large");
      v.i = int64_t(u);
      break;
    }
    case GgufType::I64: v.i = c.get<int64_t>("value"); break;
    case GgufType::F32: case GgufType::F64: v.f = read_number(c, t, key, f); break;
    case GgufType::Bool: v.b = read_number(c, t, key, f) != 0; v.i = v.b; break;
    default: v.i = int64_t(read_number(c, t, key, f)); break;
  }
  return v;
}

}  // namespace

std::string_view gguf_type_name(GgufType t) {
  static constexpr std::string_view names[] = {"u8",  "i8",   "u16",    "i16",   "u32", "i32", "f32",
                                               "bool", "string", "array", "u64", "i64", "f64"};
  return uint32_t(t) <= uint32_t(GgufType::F64) ? names[uint32_t(t)] : "?";
}

std::optional<GgmlTypeInfo> ggml_type_info(uint32_t id) {
  for (const auto& r : kTypes)
    if (r.id == id) return r.info;
  return std::nullopt;
}

std::string ggml_type_name(uint32_t id) {
  auto t = ggml_type_info(id);
  return t ? std::string(t->name) : "type " + std::to_string(id);
}

GgufValue GgufValue::u32(uint32_t v) { GgufValue r; r.type = GgufType::U32; r.i = v; return r; }
GgufValue GgufValue::i32(int32_t v) { GgufValue r; r.type = GgufType::I32; r.i = v; return r; }
GgufValue GgufValue::u64(uint64_t v) { GgufValue r; r.type = GgufType::U64; r.i = int64_t(v); return r; }
GgufValue GgufValue::f32(float v) { GgufValue r; r.type = GgufType::F32; r.f = v; return r; }
GgufValue GgufValue::boolean(bool v) { GgufValue r; r.type = GgufType::Bool; r.b = v; r.i = v; return r; }
GgufValue GgufValue::str(std::string v) { GgufValue r; r.type = GgufType::String; r.s = std::move(v); return r; }
GgufValue GgufValue::str_array(std::vector<std::string> v) {
  GgufValue r;
  r.type = GgufType::Array;
  r.array_type = GgufType::String;
  r.strs = std::move(v);
  return r;
}
GgufValue GgufValue::num_array(GgufType elem, std::vector<double> v) {
  GgufValue r;
  r.type = GgufType::Array;
  r.array_type = elem;
  r.nums = std::move(v);
  return r;
}
bool GgufValue::is_integer() const {
  return type != GgufType::F32 && type != GgufType::F64 && type != GgufType::String && type != GgufType::Array &&
         type != GgufType::Bool;
}

void GgufFile::fail(const std::string& problem) const { throw Error(name_ + ": " + problem); }

GgufFile GgufFile::open(const std::filesystem::path& path) {
  auto m = MappedFile::open(path);
  const uint8_t* d = m->data();
  size_t n = m->size();
  return from_bytes(std::shared_ptr<const void>(m, m.get()), d, n, path.string());
}

GgufFile GgufFile::from_bytes(std::shared_ptr<const void> keep, const uint8_t* data, size_t size,
                              const std::string& name) {
  GgufFile f;
  f.name_ = name;
  f.keep_ = std::move(keep);
  Cursor c(data, size, f);
  if (size < 4) f.fail("not a GGUF file (" + std::to_string(size) + " bytes)");
  if (c.get<uint32_t>("magic") != kMagic) f.fail("not a GGUF file (bad magic)");
  f.version_ = c.get<uint32_t>("version");
  if (f.version_ != 2 && f.version_ != 3)
    f.fail("unsupported GGUF version " + std::to_string(f.version_) + " (2 and 3 are supported)");
  const uint64_t n_tensors = c.get<uint64_t>("tensor count");
  const uint64_t n_kv = c.get<uint64_t>("metadata count");
  if (n_tensors > kGgufMaxTensors || n_tensors * 24 > c.left())
    f.fail("tensor count " + std::to_string(n_tensors) + " does not fit in the file");
  if (n_kv > kGgufMaxKv || n_kv * 12 > c.left())
    f.fail("metadata count " + std::to_string(n_kv) + " does not fit in the file");
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.str("metadata key");
    if (key.empty()) f.fail("metadata entry " + std::to_string(k) + " has an empty key");
    const uint32_t t = c.get<uint32_t>("metadata type");
    if (t > uint32_t(GgufType::F64))
      f.fail("metadata '" + printable(key) + "': unknown value type " + std::to_string(t));
    GgufValue v = read_value(c, GgufType(t), key, f);
    if (f.kv_index_.count(key)) f.fail("metadata key '" + printable(key) + "' appears twice");
    f.kv_index_[key] = f.kv_.size();
    f.kv_.emplace_back(std::move(key), std::move(v));
  }
  if (const GgufValue* a = f.find("general.alignment")) {
    if (!a->is_integer() || a->i <= 0 || a->i > (1 << 24) || (a->i & (a->i - 1)) != 0)
      f.fail("general.alignment must be a power of two (got " +
             (a->is_integer() ? std::to_string(a->i) : std::string(gguf_type_name(a->type))) + ")");
    f.alignment_ = uint64_t(a->i);
  }
  f.tensors_.reserve(size_t(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    t.name = c.str("tensor name");
    if (t.name.empty()) f.fail("tensor " + std::to_string(k) + " has an empty name");
    const std::string tn = "tensor '" + printable(t.name) + "'";
    const uint32_t nd = c.get<uint32_t>("tensor n_dims");
    if (nd == 0 || nd > kMaxDims) f.fail(tn + ": " + std::to_string(nd) + " dimensions (1..4 supported)");
    uint64_t numel = 1;
    for (uint32_t i = 0; i < nd; ++i) {
      const uint64_t ne = c.get<uint64_t>("tensor dimension");
      if (ne == 0 || ne > (uint64_t(1) << 40)) f.fail(tn + ": dimension " + std::to_string(i) + " is " + std::to_string(ne));
      if (numel > (uint64_t(1) << 50) / ne) f.fail(tn + ": too many elements");
      numel *= ne;
      t.ne.push_back(int64_t(ne));
    }
    t.type = c.get<uint32_t>("tensor type");
    auto ti = ggml_type_info(t.type);
    if (!ti) f.fail(tn + ": unknown ggml type " + std::to_string(t.type));
    if (t.ne[0] % ti->block != 0)
      f.fail(tn + ": row length " + std::to_string(t.ne[0]) + " is not a multiple of the " + std::string(ti->name) +
             " block (" + std::to_string(ti->block) + ")");
    t.nbytes = size_t(numel / uint64_t(ti->block) * uint64_t(ti->bytes));
    t.offset = c.get<uint64_t>("tensor offset");
    if (t.offset % f.alignment_ != 0)
      f.fail(tn + ": offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
             std::to_string(f.alignment_));
    if (f.tensor_index_.count(t.name)) f.fail(tn + " appears twice");
    f.tensor_index_[t.name] = f.tensors_.size();
    f.tensors_.push_back(std::move(t));
  }
  // The data section starts at the next multiple of the alignment.
  const uint64_t data_start = (uint64_t(c.pos()) + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  if (n_tensors > 0 && data_start > size) f.fail("data section starts past the end of the file");
  const uint64_t data_size = n_tensors > 0 ? size - data_start : 0;
  std::vector<std::pair<uint64_t, size_t>> spans;
  for (auto& t : f.tensors_) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      f.fail("tensor '" + printable(t.name) + "': data [" + std::to_string(t.offset) + ", +" + std::to_string(t.nbytes) +
             ") extends past the end of the file (data section " + std::to_string(data_size) + " bytes)");
    t.data = data + data_start + t.offset;
    spans.emplace_back(t.offset, &t - f.tensors_.data());
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    const auto& prev = f.tensors_[spans[i - 1].second];
    if (spans[i - 1].first + prev.nbytes > spans[i].first)
      f.fail("tensor '" + printable(prev.name) + "' overlaps tensor '" + printable(f.tensors_[spans[i].second].name) + "'");
  }
  return f;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_integer())
    fail("metadata '" + std::string(key) + "' is " + std::string(gguf_type_name(v->type)) + ", expected an integer");
  return v->i;
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->is_float()) return v->f;
  if (v->is_integer()) return double(v->i);
  fail("metadata '" + std::string(key) + "' is " + std::string(gguf_type_name(v->type)) + ", expected a number");
}

std::optional<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::String)
    fail("metadata '" + std::string(key) + "' is " + std::string(gguf_type_name(v->type)) + ", expected a string");
  return v->s;
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::Bool)
    fail("metadata '" + std::string(key) + "' is " + std::string(gguf_type_name(v->type)) + ", expected a bool");
  return v->b;
}

int64_t GgufFile::require_int(std::string_view key) const {
  auto v = get_int(key);
  if (!v) fail("missing metadata '" + std::string(key) + "'");
  return *v;
}

std::string GgufFile::require_string(std::string_view key) const {
  auto v = get_string(key);
  if (!v) fail("missing metadata '" + std::string(key) + "'");
  return *v;
}

// ---------------------------------------------------------------------------------------------- writer

void GgufWriter::set(std::string key, GgufValue v) {
  for (auto& [k, old] : kv_)
    if (k == key) {
      old = std::move(v);
      return;
    }
  kv_.emplace_back(std::move(key), std::move(v));
}

void GgufWriter::add_tensor(std::string name, GgmlType type, std::vector<int64_t> ne,
                            std::function<void(uint8_t*, size_t)> fill) {
  auto ti = ggml_type_info(uint32_t(type));
  if (!ti) throw Error("gguf writer: tensor '" + name + "': unknown ggml type");
  if (ne.empty() || ne.size() > kMaxDims) throw Error("gguf writer: tensor '" + name + "': 1..4 dimensions expected");
  int64_t numel = 1;
  for (auto d : ne) numel *= d;
  if (ne[0] % ti->block != 0)
    throw Error("gguf writer: tensor '" + name + "': row length " + std::to_string(ne[0]) + " is not a multiple of the " +
                std::string(ti->name) + " block");
  const size_t nbytes = size_t(numel / ti->block * ti->bytes);
  tensors_.push_back({std::move(name), type, std::move(ne), nbytes, std::move(fill)});
}

size_t GgufWriter::tensor_bytes() const {
  size_t n = 0;
  for (const auto& t : tensors_) n += t.nbytes;
  return n;
}

namespace {

class Out {
 public:
  explicit Out(FILE* f, const std::string& path) : f_(f), path_(path) {}
  void bytes(const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n) throw Error(path_ + ": write failed: " + std::strerror(errno));
    pos_ += n;
  }
  template <class T>
  void put(T v) { bytes(&v, sizeof(T)); }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad(uint64_t align) {
    static const uint8_t zeros[64] = {};
    while (pos_ % align) bytes(zeros, std::min<size_t>(sizeof(zeros), size_t(align - pos_ % align)));
  }
  uint64_t pos() const { return pos_; }

 private:
  FILE* f_;
  std::string path_;
  uint64_t pos_ = 0;
};

void put_number(Out& o, GgufType t, double v) {
  switch (t) {
    case GgufType::U8: o.put<uint8_t>(uint8_t(v)); break;
    case GgufType::I8: o.put<int8_t>(int8_t(v)); break;
    case GgufType::U16: o.put<uint16_t>(uint16_t(v)); break;
    case GgufType::I16: o.put<int16_t>(int16_t(v)); break;
    case GgufType::U32: o.put<uint32_t>(uint32_t(v)); break;
    case GgufType::I32: o.put<int32_t>(int32_t(v)); break;
    case GgufType::F32: o.put<float>(float(v)); break;
    case GgufType::Bool: o.put<uint8_t>(v != 0); break;
    case GgufType::U64: o.put<uint64_t>(uint64_t(v)); break;
    case GgufType::I64: o.put<int64_t>(int64_t(v)); break;
    case GgufType::F64: o.put<double>(v); break;
    default: throw Error("gguf writer: bad number type");
  }
}

void put_value(Out& o, const GgufValue& v) {
  o.put<uint32_t>(uint32_t(v.type));
  switch (v.type) {
    case GgufType::String: o.str(v.s); break;
    case GgufType::Array:
      o.put<uint32_t>(uint32_t(v.array_type));
      if (v.array_type == GgufType::String) {
        o.put<uint64_t>(v.strs.size());
        for (const auto& s : v.strs) o.str(s);
      } else {
        o.put<uint64_t>(v.nums.size());
        for (double x : v.nums) put_number(o, v.array_type, x);
      }
      break;
    case GgufType::F32: case GgufType::F64: put_number(o, v.type, v.f); break;
    case GgufType::Bool: o.put<uint8_t>(v.b); break;
    case GgufType::U64: o.put<uint64_t>(uint64_t(v.i)); break;
    case GgufType::I64: o.put<int64_t>(v.i); break;
    default: put_number(o, v.type, double(v.i)); break;
  }
}

}  // namespace

void GgufWriter::write(const std::filesystem::path& path) const {
  const std::string tmp = path.string() + ".tmp-" + std::to_string(::getpid());
  FILE* fp = std::fopen(tmp.c_str(), "wb");
  if (!fp) throw Error(path.string() + ": cannot create: " + std::strerror(errno));
  try {
    Out o(fp, path.string());
    o.put<uint32_t>(kMagic);
    o.put<uint32_t>(3);
    o.put<uint64_t>(tensors_.size());
    o.put<uint64_t>(kv_.size());
    for (const auto& [k, v] : kv_) {
      o.str(k);
      put_value(o, v);
    }
    uint64_t off = 0;
    std::vector<uint64_t> offsets;
    for (const auto& t : tensors_) {
      o.str(t.name);
      o.put<uint32_t>(uint32_t(t.ne.size()));
      for (auto d : t.ne) o.put<uint64_t>(uint64_t(d));
      o.put<uint32_t>(uint32_t(t.type));
      o.put<uint64_t>(off);
      offsets.push_back(off);
      off += (t.nbytes + alignment_ - 1) / alignment_ * alignment_;
    }
    o.pad(alignment_);
    std::vector<uint8_t> buf;
    for (const auto& t : tensors_) {
      buf.assign(t.nbytes, 0);
      t.fill(buf.data(), buf.size());
      o.bytes(buf.data(), buf.size());
      o.pad(alignment_);
    }
    if (std::fflush(fp) != 0 || ::fsync(fileno(fp)) != 0) throw Error(path.string() + ": write failed: " + std::strerror(errno));
    std::fclose(fp);
    fp = nullptr;
    std::filesystem::rename(tmp, path);
  } catch (...) {
    if (fp) std::fclose(fp);
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
}

}  // namespace qforge::io
