// backends/cuda/cuda_sampling.cuh — the CUDA form of Backend::select_top_k (cuda_sampling.cu):
// the repetition penalty applied in place on the GPU, then the k best logits selected there, so
// that only k (value, id) pairs cross to the host instead of the whole vocabulary row.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace qforge::cuda {

// Largest k selected on the GPU (larger k: the backend falls back to the host selection).
constexpr int kMaxDeviceTopK = 1024;

// Bytes of device scratch select_top_k_device needs for a row of n logits, k best, m penalised ids.
size_t top_k_scratch_bytes(int64_t n, int k, int64_t m);

// Applies the penalty (when m > 0) to logits[penalize[i]] in place (s < 0 ? s * penalty :
// s / penalty, IEEE round-to-nearest like the host), then writes the k best entries (NaN first,
// larger value, +0 == -0, lower id on ties) into `pinned` (page-locked host memory of at least
// max(4 m, 8 k) bytes): k floats, then k int32 ids. The ids are staged through `pinned` too.
// Returns after the stream has synchronised. 1 <= k <= min(n, kMaxDeviceTopK).
void select_top_k_device(float* logits, int64_t n, const int32_t* penalize, int64_t m, float penalty, int k,
                         void* scratch, void* pinned, cudaStream_t stream);

}  // namespace qforge::cuda
