// tests/fuzz/safetensors_fuzz.cpp — libFuzzer target for the safetensors header validator
// (SafetensorsFile::from_bytes). Any input must either parse into tensors that lie wholly inside
// the image, or throw qforge::Error; anything else (crash, ASan/UBSan report) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "io/safetensors.h"
#include "qforge/status.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = qforge::io::SafetensorsFile::from_bytes(nullptr, data, size, "fuzz.safetensors");
    uint64_t sum = 0;
    for (const auto& [name, info] : f.tensors()) {
      if (info.data < data || info.data + info.nbytes > data + size || info.nbytes != size_t(f.tensor(info).nbytes()))
        std::abort();
      // Touch every byte so ASan checks the bounds for real.
      for (size_t i = 0; i < info.nbytes; ++i) sum += info.data[i];
    }
    static volatile uint64_t sink;
    sink = sum;
  } catch (const qforge::Error&) {
  }
  return 0;
}
