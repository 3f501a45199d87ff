// tests/unit/safetensors_test.cpp — the safetensors reader against the bundled demo shards, the
// writer by round trip, and every kind of corrupt header: each must throw qforge::Error whose one
// line names the file (and the tensor where there is one), never crash.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "io/safetensors.h"
#include "qforge/status.h"
#include "test_support.h"

namespace qforge::io {
namespace {

namespace fs = std::filesystem;

// A safetensors image: 8-byte LE length, the header text as given, then `data_bytes` bytes.
std::string make_image(const std::string& header, size_t data_bytes, uint64_t claimed_len = UINT64_MAX) {
  uint64_t n = claimed_len == UINT64_MAX ? header.size() : claimed_len;
  std::string img(8, '\0');
  for (int i = 0; i < 8; ++i) img[i] = char(uint8_t(n >> (8 * i)));
  img += header;
  for (size_t i = 0; i < data_bytes; ++i) img += char(i * 7 + 1);
  return img;
}

SafetensorsFile parse(const std::string& img, const std::string& name = "bad.safetensors") {
  return SafetensorsFile::from_bytes(nullptr, reinterpret_cast<const uint8_t*>(img.data()), img.size(), name);
}

// Expects parse(img) to throw an Error mentioning the file name and `needle`.
void expect_error(const std::string& img, const std::string& needle) {
  try {
    parse(img, "bad.safetensors");
    ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind("bad.safetensors: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "message: " << msg << "\nexpected: " << needle;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

TEST(Safetensors, OpensDemoShards) {
  auto dir = test::demo_model_dir();
  auto a = SafetensorsFile::open(dir / "model-00001-of-00002.safetensors");
  auto b = SafetensorsFile::open(dir / "model-00002-of-00002.safetensors");
  EXPECT_EQ(a.tensors().size() + b.tensors().size(), 56u);  // 6 layers x 9 + embed_tokens + norm
  const TensorInfo* emb = a.find("model.embed_tokens.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->dtype, DType::BF16);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{32000, 288}));
  EXPECT_EQ(emb->nbytes, 32000u * 288 * 2);
  EXPECT_EQ(a.find("lm_head.weight"), nullptr);
  const TensorInfo* norm = b.find("model.norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->shape, (std::vector<int64_t>{288}));
  // The view reads the mapped bytes, at the recorded file offset.
  Tensor t = b.tensor(*norm);
  EXPECT_EQ(t.raw(), static_cast<const void*>(norm->data));
  std::string raw = test::read_file(dir / "model-00002-of-00002.safetensors");
  EXPECT_EQ(std::memcmp(raw.data() + norm->file_offset, norm->data, norm->nbytes), 0);
  // RMSNorm weights of a trained model: finite, not all zero.
  bool nonzero = false;
  for (int i = 0; i < 288; ++i) {
    float v = bf16_to_f32(t.data<uint16_t>()[i]);
    EXPECT_TRUE(std::isfinite(v));
    nonzero |= v != 0.0f;
  }
  EXPECT_TRUE(nonzero);
}

TEST(Safetensors, ViewOutlivesFile) {
  Tensor t;
  {
    auto f = SafetensorsFile::open(test::demo_model_dir() / "model-00002-of-00002.safetensors");
    t = f.tensor(*f.find("model.norm.weight"));
  }
  // The mapping is kept alive by the view; reading must still work (ASan would flag otherwise).
  float sum = 0;
  for (int i = 0; i < 288; ++i) sum += bf16_to_f32(t.data<uint16_t>()[i]);
  EXPECT_TRUE(std::isfinite(sum));
}

TEST(Safetensors, WriteReadRoundTrip) {
  auto dir = test::temp_dir("st-rt");
  std::vector<float> f32 = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, 7.0f};
  std::vector<uint16_t> bf16 = {0x3f80, 0xc000, 0x7fc0};
  std::vector<int8_t> i8 = {-128, 0, 127, 5, 6};
  std::vector<int64_t> i64 = {INT64_MIN, -1, INT64_MAX};
  std::vector<uint8_t> boolean = {1, 0, 1};
  double scalar = 3.14159;
  std::vector<TensorToWrite> ts = {
      {"a.f32", DType::F32, {2, 3}, f32.data(), f32.size() * 4},
      {"b.bf16", DType::BF16, {3}, bf16.data(), bf16.size() * 2},
      {"c.i8", DType::I8, {5}, i8.data(), i8.size()},
      {"d.i64", DType::I64, {3, 1}, i64.data(), i64.size() * 8},
      {"e.bool", DType::Bool, {3}, boolean.data(), 3},
      {"f.empty", DType::F16, {0, 4}, nullptr, 0},
      {"g.scalar", DType::F64, {}, &scalar, 8},
  };
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "round \"trip\"\n"}};
  auto path = dir / "rt.safetensors";
  write_safetensors(path, ts, meta);

  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata(), meta);
  ASSERT_EQ(f.tensors().size(), ts.size());
  for (const auto& w : ts) {
    const TensorInfo* info = f.find(w.name);
    ASSERT_NE(info, nullptr) << w.name;
    EXPECT_EQ(info->dtype, w.dtype) << w.name;
    EXPECT_EQ(info->shape, w.shape) << w.name;
    ASSERT_EQ(info->nbytes, w.nbytes) << w.name;
    if (w.nbytes) EXPECT_EQ(std::memcmp(info->data, w.data, w.nbytes), 0) << w.name;
    EXPECT_EQ(info->file_offset % dtype_size(w.dtype), 0u) << w.name << " is misaligned";
  }
  std::string raw = test::read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(raw[i]);
  EXPECT_EQ(n % 8, 0u);
  // Data are packed without gaps: the file is exactly header + sum of tensor bytes.
  size_t total = 0;
  for (const auto& w : ts) total += w.nbytes;
  EXPECT_EQ(raw.size(), 8 + n + total);
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();

  // Overwriting an existing file replaces it atomically.
  write_safetensors(path, {ts[0]});
  EXPECT_EQ(SafetensorsFile::open(path).tensors().size(), 1u);
}

TEST(Safetensors, WriterErrorsNameThePathAndLeaveNoTempFile) {
  auto dir = test::temp_dir("st-werr");
  float x[2] = {1, 2};
  auto expect_write_error = [&](const fs::path& p, const std::vector<TensorToWrite>& ts, const std::string& needle) {
    try {
      write_safetensors(p, ts);
      ADD_FAILURE() << "no error for " << p;
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
  };
  expect_write_error(dir / "no-such-dir" / "x.safetensors", {{"x", DType::F32, {2}, x, 8}}, "cannot create");
  expect_write_error(dir / "x.safetensors", {{"x", DType::F32, {3}, x, 8}}, "'x'");
  expect_write_error(dir / "x.safetensors", {{"x", DType::F32, {2}, x, 8}, {"x", DType::F32, {2}, x, 8}}, "twice");
  expect_write_error(dir / "x.safetensors", {{"x", DType::F32, {-2}, x, 8}}, "negative");
  expect_write_error(dir / "x.safetensors", {{"__metadata__", DType::F32, {2}, x, 8}}, "__metadata__");
  // The rename fails when the target is a non-empty directory: the temp file must be gone.
  fs::create_directories(dir / "occupied.safetensors" / "child");
  expect_write_error(dir / "occupied.safetensors", {{"x", DType::F32, {2}, x, 8}}, "rename");
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  EXPECT_FALSE(fs::exists(dir / "x.safetensors"));
}

TEST(Safetensors, AcceptsMinimalImages) {
  EXPECT_EQ(parse(make_image("{}", 0)).tensors().size(), 0u);
  EXPECT_EQ(parse(make_image("{}      ", 0)).tensors().size(), 0u);  // space padding
  auto f = parse(make_image(R"({"__metadata__":{"k":"v"},"t":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", 2));
  EXPECT_EQ(f.metadata().at("k"), "v");
  EXPECT_EQ(f.find("t")->nbytes, 2u);
  // Zero-sized tensors may sit anywhere, even inside another tensor's bytes.
  auto z = parse(make_image(
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})", 8));
  EXPECT_EQ(z.tensors().size(), 2u);
  // Every dtype name of the format is known.
  for (const char* dt : {"F32", "F16", "BF16", "F64", "I8", "U8", "I16", "I32", "I64", "U32", "F8_E4M3", "F8_E5M2", "BOOL"})
    EXPECT_NO_THROW(parse(make_image(std::string(R"({"t":{"dtype":")") + dt + R"(","shape":[1,0],"data_offsets":[0,0]}})", 0)))
        << dt;
}

TEST(Safetensors, CorruptHeadersAreRejected) {
  const std::string ok_t = R"("t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})";
  expect_error(std::string(5, '\0'), "truncated");
  expect_error(make_image("{}", 0, 2000), "truncated: header says 2000 bytes");
  expect_error(make_image("{}", 0, 200'000'000), "exceeds the limit");
  expect_error(make_image("{\"t\": [1,", 0), "not valid JSON");
  expect_error(make_image("[1,2,3]", 0), "header does not start with '{'");
  expect_error(make_image("{\"t\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}\x80", 4), "not valid JSON");
  expect_error(make_image(R"({"t":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8), "tensor 't': unknown dtype 'F33'");
  expect_error(make_image(R"({"t":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", 8), "tensor 't': dtype is a JSON number");
  expect_error(make_image(R"({"t":{"shape":[2],"data_offsets":[0,8]}})", 8), "tensor 't': missing \"dtype\"");
  expect_error(make_image(R"({"t":{"dtype":"F32","data_offsets":[0,8]}})", 8), "missing \"shape\"");
  expect_error(make_image(R"({"t":{"dtype":"F32","shape":[2]}})", 8), "missing \"data_offsets\"");
  expect_error(make_image(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8), "tensor 't': negative shape");
  expect_error(make_image(R"({"t":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8), "not an integer");
  expect_error(make_image(R"({"t":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", 8), "expected an array");
  expect_error(make_image(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8),
               "overflows");
  expect_error(make_image(R"({"t":{"dtype":"F64","shape":[18446744073709551615],"data_offsets":[0,8]}})", 8),
               "too large");
  expect_error(make_image(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})", 12),
               "tensor 't': data_offsets [0,16] run past the end of the data (12 bytes");
  expect_error(make_image(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[16,0]}})", 16), "begin > end");
  expect_error(make_image(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", 16),
               "tensor 't': data_offsets [0,12] hold 12 bytes but F32 shape [2,2] needs 16");
  expect_error(make_image(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0]}})", 16), "[begin, end]");
  expect_error(make_image(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[-4,12]}})", 16), "non-negative");
  expect_error(make_image("{" + ok_t + R"(,"u":{"dtype":"U8","shape":[8],"data_offsets":[12,20]}})", 20),
               "tensors 't' [0,16] and 'u' [12,20] overlap");
  expect_error(make_image("{" + ok_t + R"(,"u":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})", 16), "overlap");
  // A tensor nested wholly inside a larger one, found after an unrelated one in between.
  expect_error(make_image(R"({"a":{"dtype":"U8","shape":[32],"data_offsets":[0,32]},)"
                          R"("b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})", 32),
               "tensors 'a' [0,32] and 'b' [4,8] overlap");
  expect_error(make_image(R"({"t":[1,2]})", 0), "tensor 't': entry is a JSON array");
  expect_error(make_image(R"({"__metadata__":{"k":1}})", 0), "__metadata__ entry 'k'");
  expect_error(make_image(R"({"__metadata__":[]})", 0), "__metadata__ is a JSON array");
  expect_error(make_image(R"({"t":{"dtype":"F32","shape":[[[[[1]]]]],"data_offsets":[0,4]}})", 4), "nested deeper");
  expect_error(make_image(std::string(R"({"t":)") + std::string(100000, '[') + std::string(100000, ']') + "}", 0),
               "nested deeper");
  // Tensor names with control characters stay on one line.
  expect_error(make_image(R"({"bad\nname":{"dtype":"X","shape":[],"data_offsets":[0,0]}})", 0), "bad\\x0aname");
}

TEST(Safetensors, TruncatedDemoShardNamesTheFile) {
  auto dir = test::temp_dir("st-trunc");
  std::string raw = test::read_file(test::demo_model_dir() / "model-00002-of-00002.safetensors");
  auto p = dir / "model-00002-of-00002.safetensors";
  for (size_t keep : {size_t(0), size_t(7), size_t(100), raw.size() / 2, raw.size() - 1}) {
    write_bytes(p, raw.substr(0, keep));
    try {
      SafetensorsFile::open(p);
      ADD_FAILURE() << "truncated to " << keep << " bytes was accepted";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find("model-00002-of-00002.safetensors: "), std::string::npos) << msg;
      EXPECT_TRUE(msg.find("truncated") != std::string::npos || msg.find("past the end") != std::string::npos) << msg;
    }
  }
}

TEST(Safetensors, MissingFileNamesIt) {
  try {
    SafetensorsFile::open("/nonexistent/dir/model.safetensors");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/model.safetensors: cannot open"), std::string::npos);
  }
}

// Random byte flips and truncations of a valid image: every outcome is a parse or an Error.
TEST(Safetensors, MutatedImagesNeverCrash) {
  const std::string base = make_image(
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
      R"("b":{"dtype":"BF16","shape":[4],"data_offsets":[16,24]}})",
      24);
  std::mt19937 rng(1234);
  int accepted = 0, rejected = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string img = base;
    int flips = 1 + int(rng() % 4);
    for (int k = 0; k < flips; ++k) img[rng() % img.size()] = char(rng() % 256);
    if (rng() % 4 == 0) img.resize(rng() % img.size());
    try {
      auto f = parse(img);
      for (const auto& [name, info] : f.tensors()) {
        ASSERT_GE(info.data, reinterpret_cast<const uint8_t*>(img.data()));
        ASSERT_LE(info.data + info.nbytes, reinterpret_cast<const uint8_t*>(img.data()) + img.size());
      }
      ++accepted;
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(accepted, 0);  // data-section flips leave the header valid
}

}  // namespace
}  // namespace qforge::io
