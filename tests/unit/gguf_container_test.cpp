// tests/unit/gguf_container_test.cpp — the GGUF container: writer -> reader round trip of every
// metadata type, tensor infos in ggml order, alignment and data; and corrupt files (every truncation,
// bad magic/version/types/offsets/duplicates) must throw a one-line qforge::Error naming the file.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "io/gguf.h"
#include "qforge/status.h"
#include "test_support.h"

namespace qforge::io {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

GgufFile parse(const std::string& img, const std::string& name = "bad.gguf") {
  return GgufFile::from_bytes(nullptr, reinterpret_cast<const uint8_t*>(img.data()), img.size(), name);
}

void expect_error(const std::string& img, const std::string& needle) {
  try {
    parse(img);
    ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("bad.gguf: "), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// A small file: all scalar types, string and numeric arrays, an F32 [3, 2] and a Q8_0 [64, 2] tensor.
std::string sample_file(const fs::path& dir) {
  GgufWriter w;
  w.set("general.architecture", GgufValue::str("llama"));
  w.set("a.u32", GgufValue::u32(4000000000u));
  w.set("a.i32", GgufValue::i32(-7));
  w.set("a.u64", GgufValue::u64(1ull << 40));
  w.set("a.f32", GgufValue::f32(0.25f));
  w.set("a.bool", GgufValue::boolean(true));
  w.set("a.strs", GgufValue::str_array({"x", "", "\xE2\x96\x81y"}));
  w.set("a.nums", GgufValue::num_array(GgufType::I32, {1, -2, 3}));
  w.add_tensor("t.f32", GgmlType::F32, {3, 2}, [](uint8_t* o, size_t n) {
    for (size_t i = 0; i < n / 4; ++i) reinterpret_cast<float*>(o)[i] = float(i) + 0.5f;
  });
  w.add_tensor("t.q8", GgmlType::Q8_0, {64, 2}, [](uint8_t* o, size_t n) {
    for (size_t i = 0; i < n; ++i) o[i] = uint8_t(i * 13);
  });
  const fs::path p = dir / "s.gguf";
  w.write(p);
  return slurp(p);
}

TEST(GgufContainer, RoundTripsMetadataAndTensors) {
  const auto dir = test::temp_dir("gguf_rt");
  const std::string img = sample_file(dir);
  const GgufFile f = GgufFile::open(dir / "s.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.require_string("general.architecture"), "llama");
  EXPECT_EQ(f.require_int("a.u32"), 4000000000ll);
  EXPECT_EQ(f.require_int("a.i32"), -7);
  EXPECT_EQ(f.require_int("a.u64"), 1ll << 40);
  EXPECT_EQ(*f.get_float("a.f32"), 0.25);
  EXPECT_TRUE(*f.get_bool("a.bool"));
  EXPECT_EQ(f.find("a.strs")->strs, (std::vector<std::string>{"x", "", "\xE2\x96\x81y"}));
  EXPECT_EQ(f.find("a.nums")->nums, (std::vector<double>{1, -2, 3}));
  EXPECT_EQ(f.find("a.nums")->array_type, GgufType::I32);
  EXPECT_FALSE(f.find("missing"));
  EXPECT_THROW(f.require_int("general.architecture"), Error);  // a string, not an integer
  ASSERT_EQ(f.tensors().size(), 2u);
  const auto* t = f.find_tensor("t.f32");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->ne, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(t->shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t->nbytes, 24u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(reinterpret_cast<const float*>(t->data)[i], float(i) + 0.5f);
  const auto* q = f.find_tensor("t.q8");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->nbytes, 2u * 2 * 34);
  EXPECT_EQ(q->offset % 32, 0u);
  EXPECT_EQ(q->offset, 32u);  // 24 bytes padded to the alignment
  for (size_t i = 0; i < q->nbytes; ++i) ASSERT_EQ(q->data[i], uint8_t(i * 13));
}

TEST(GgufContainer, EveryTruncationIsAnError) {
  const auto dir = test::temp_dir("gguf_trunc");
  const std::string img = sample_file(dir);
  const size_t data_start = img.size() - 32 - 2 * 2 * 34 - (32 - (2 * 2 * 34) % 32) % 32;
  for (size_t n = 0; n < data_start + 40; ++n) {
    try {
      parse(img.substr(0, n));
      ADD_FAILURE() << "prefix of " << n << " bytes parsed";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad.gguf: "), std::string::npos);
    }
  }
}

TEST(GgufContainer, CorruptHeadersAreClearErrors) {
  const auto dir = test::temp_dir("gguf_bad");
  const std::string img = sample_file(dir);
  auto patched = [&](size_t off, const void* v, size_t n) {
    std::string s = img;
    std::memcpy(s.data() + off, v, n);
    return s;
  };
  expect_error("GGU", "not a GGUF file");
  expect_error(patched(0, "GGUX", 4), "bad magic");
  uint32_t v9 = 9;
  expect_error(patched(4, &v9, 4), "unsupported GGUF version 9");
  uint64_t huge = 1ull << 40;
  expect_error(patched(8, &huge, 8), "tensor count");
  expect_error(patched(16, &huge, 8), "metadata count");
  // First key's length claims more bytes than the file has.
  expect_error(patched(24, &huge, 8), "claims");
  // First value type (after the 20-char key "general.architecture") set to 99.
  uint32_t bad_type = 99;
  expect_error(patched(24 + 8 + 20, &bad_type, 4), "unknown value type 99");
  // Tensor type / offset: find the tensor info of "t.q8" by its name.
  const size_t at = img.find("t.q8");
  ASSERT_NE(at, std::string::npos);
  const size_t type_off = at + 4 + 4 + 16, offset_off = type_off + 4;
  uint32_t t77 = 77;
  expect_error(patched(type_off, &t77, 4), "unknown ggml type 77");
  uint32_t q4k = 12;
  expect_error(patched(type_off, &q4k, 4), "not a multiple of the Q4_K block");
  uint64_t mis = 33;
  expect_error(patched(offset_off, &mis, 8), "not a multiple of the alignment");
  uint64_t far = 1 << 20;
  expect_error(patched(offset_off, &far, 8), "extends past the end of the file");
  uint64_t zero = 0;
  expect_error(patched(offset_off, &zero, 8), "overlaps");
  uint64_t zero_dim = 0;
  expect_error(patched(at + 4 + 4, &zero_dim, 8), "dimension 0 is 0");
  const size_t k = img.find("a.i32");
  std::string dupkey = img;
  dupkey.replace(k, 5, "a.u32");
  expect_error(dupkey, "appears twice");
}

TEST(GgufContainer, RandomCorruptionNeverCrashes) {
  const auto dir = test::temp_dir("gguf_rand");
  const std::string img = sample_file(dir);
  std::mt19937 rng(7);
  int errors = 0;
  for (int it = 0; it < 3000; ++it) {
    std::string s = img;
    const int flips = 1 + int(rng() % 4);
    for (int k = 0; k < flips; ++k) s[rng() % 300] = char(rng());
    try {
      auto f = parse(s);
      for (const auto& t : f.tensors()) ASSERT_LE(t.data + t.nbytes, reinterpret_cast<const uint8_t*>(s.data()) + s.size());
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 100);
}

TEST(GgufContainer, WriterIsAtomic) {
  const auto dir = test::temp_dir("gguf_atomic");
  GgufWriter w;
  w.add_tensor("t", GgmlType::F32, {4}, [](uint8_t*, size_t) { throw Error("source failed"); });
  EXPECT_THROW(w.write(dir / "x.gguf"), Error);
  EXPECT_TRUE(fs::is_empty(dir));
}

}  // namespace
}  // namespace qforge::io
