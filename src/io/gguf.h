// io/gguf.h — the GGUF v2/v3 container: a fully validated, memory-mapped reader (typed metadata,
// tensor infos in ggml dimension order, alignment) and a streaming atomic writer (v3). Knows the
// ggml tensor types' block sizes so that every tensor's byte size is checked against the file.
// Errors are one line "<file>: <problem>" (qforge::Error); nothing here trusts the input.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qforge::io {

enum class GgufType : uint32_t { U8 = 0, I8, U16, I16, U32, I32, F32, Bool, String, Array, U64, I64, F64 };
std::string_view gguf_type_name(GgufType t);

// ggml tensor types (the ids GGUF stores).
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9, Q2_K = 10, Q3_K = 11,
  Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19,
  IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28,
  IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39
};
struct GgmlTypeInfo {
  std::string_view name;
  int64_t block;  // elements per block
  int64_t bytes;  // bytes per block
};
// nullopt for ids this build does not know.
std::optional<GgmlTypeInfo> ggml_type_info(uint32_t id);
std::string ggml_type_name(uint32_t id);  // "Q4_0", or "type 77" when unknown

// One metadata value. Scalars: integers in `i` (u64 above INT64_MAX is refused), floats in `f`,
// bools in `b`, strings in `s`. Arrays: `array_type` plus `strs` (strings) or `nums` (numbers, bools
// as 0/1). Arrays of arrays are refused (llama.cpp does not read them either).
struct GgufValue {
  GgufType type = GgufType::U8;
  GgufType array_type = GgufType::U8;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;
  std::vector<std::string> strs;
  std::vector<double> nums;

  static GgufValue u32(uint32_t v);
  static GgufValue i32(int32_t v);
  static GgufValue u64(uint64_t v);
  static GgufValue f32(float v);
  static GgufValue boolean(bool v);
  static GgufValue str(std::string v);
  static GgufValue str_array(std::vector<std::string> v);
  static GgufValue num_array(GgufType elem, std::vector<double> v);  // elem: a numeric type or Bool
  bool is_integer() const;
  bool is_float() const { return type == GgufType::F32 || type == GgufType::F64; }
};

struct GgufTensorInfo {
  std::string name;
  uint32_t type = 0;              // GgmlType id
  std::vector<int64_t> ne;        // ggml order: ne[0] is the innermost (contiguous) dimension
  uint64_t offset = 0;            // relative to the data section
  const uint8_t* data = nullptr;  // into the mapping
  size_t nbytes = 0;
  // Row-major shape as safetensors/PyTorch writes it (ne reversed).
  std::vector<int64_t> shape() const { return {ne.rbegin(), ne.rend()}; }
};

// Limits (each far above any real file; they keep hostile headers from allocating without bound).
inline constexpr uint64_t kGgufMaxTensors = 1u << 20;
inline constexpr uint64_t kGgufMaxKv = 1u << 20;
inline constexpr uint64_t kGgufMaxArray = 1u << 28;

class GgufFile {
 public:
  static GgufFile open(const std::filesystem::path& path);
  // Parse and validate an in-memory image (fuzzing, tests); `keep` keeps `data` alive.
  static GgufFile from_bytes(std::shared_ptr<const void> keep, const uint8_t* data, size_t size,
                             const std::string& name);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::string& name() const { return name_; }  // file path, for messages
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufValue* find(std::string_view key) const;
  const GgufTensorInfo* find_tensor(std::string_view name) const;

  // Typed getters: throw "<file>: metadata 'key' ..." when missing (require_*) or of the wrong type.
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;  // integers accepted too
  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;
  int64_t require_int(std::string_view key) const;
  std::string require_string(std::string_view key) const;
  [[noreturn]] void fail(const std::string& problem) const;

 private:
  std::string name_;
  std::shared_ptr<const void> keep_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Streaming GGUF v3 writer: metadata and tensor infos first (byte sizes known up front), then each
// tensor's bytes produced on demand by its callback, one at a time, so a model never has to be
// held twice. Written to "<path>.tmp-<pid>", fsync'd and renamed: a failure leaves no file.
class GgufWriter {
 public:
  explicit GgufWriter(uint64_t alignment = 32) : alignment_(alignment) {}
  void set(std::string key, GgufValue v);
  // `ne` in ggml order. `fill` must write exactly the tensor's byte size into the buffer it gets.
  void add_tensor(std::string name, GgmlType type, std::vector<int64_t> ne,
                  std::function<void(uint8_t* out, size_t nbytes)> fill);
  void write(const std::filesystem::path& path) const;
  size_t tensor_bytes() const;

 private:
  struct Pending {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;
    size_t nbytes;
    std::function<void(uint8_t*, size_t)> fill;
  };
  uint64_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Pending> tensors_;
};

}  // namespace qforge::io
