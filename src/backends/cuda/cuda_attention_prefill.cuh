// backends/cuda/cuda_attention_prefill.cuh — prefill attention launchers (cuda_attention_prefill.cu):
// the exact f32 tiled kernel (attention_prefill, declared in cuda_kernels.cuh) and the tensor-core
// flash-attention kernel (bf16 Q/K/V/P, f32 accumulation and softmax) with the checks and scratch it
// needs. The f32 kernel runs after rope_and_cache; the tensor-core one does that work itself.
#pragma once
#include <cstdint>

#include "backends/cuda/cuda_kernels.cuh"

namespace qforge::cuda {

// Fewer new tokens than this stay on the f32 kernel (too little work for a 64-row query tile).
constexpr int kMinTcPrefillTokens = 16;

// True when the tensor-core kernel takes this call: n >= kMinTcPrefillTokens, head_dim a multiple of
// 16 and <= 256.
bool attention_prefill_tc_supported(const AttnArgs& a);
// Scratch bytes attention_prefill_tc needs: a bf16 shadow of the K and V cache rows [0, pos0 + n).
int64_t attention_prefill_tc_scratch_bytes(const AttnArgs& a);
// Tensor-core prefill attention; `scratch` holds attention_prefill_tc_scratch_bytes(a) bytes.
// With a.k set (the backend's path) it also does rope_and_cache's work: k rotated and k/v written to
// the caches at pos0.. (a.k, a.q left unrotated: q is rotated as the kernel loads it). With a.k null
// the caches already hold rows [0, pos0 + n) and a.q is rotated. Throws qforge::Error when
// !attention_prefill_tc_supported(a). Uses a.pos0 (prefill is never recorded into a graph).
void attention_prefill_tc(const AttnArgs& a, void* scratch, cudaStream_t s);

// One-time per-device setup of the prefill kernels (dynamic shared memory limits).
void init_prefill_kernels(int device);

}  // namespace qforge::cuda
