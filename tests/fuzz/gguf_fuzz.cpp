// tests/fuzz/gguf_fuzz.cpp — libFuzzer target for the GGUF reader (io/gguf.cpp) and the tokenizer
// metadata synthesis (io/gguf_tokenizer.cpp): any input must parse or throw qforge::Error, never crash,
// and every accepted tensor must lie inside the input.
#include <cstdint>
#include <cstdlib>

#include "io/gguf.h"
#include "io/gguf_tokenizer.h"
#include "qforge/status.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = qforge::io::GgufFile::from_bytes(nullptr, data, size, "fuzz.gguf");
    for (const auto& t : f.tensors())
      if (t.data < data || t.data + t.nbytes > data + size) std::abort();
    if (f.find("tokenizer.ggml.model")) (void)qforge::io::tokenizer_from_gguf(f);
  } catch (const qforge::Error&) {
  }
  return 0;
}
