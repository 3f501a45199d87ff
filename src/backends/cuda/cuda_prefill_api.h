// backends/cuda/cuda_prefill_api.h — CUDA-free entry points to the prefill kernels for the GPU tests
// and benchmarks (compiled by the host compiler): run one prefill attention kernel on already
// rotated q and filled KV caches, and count the FP8 tensor-core GEMMs the quantized prefill ran.
// Defined in cuda_attention_prefill.cu and cuda_quant_gemm.cu.
#pragma once
#include <cstdint>
#include <string>

namespace qforge::cuda {

// Device pointers (cudaMalloc'd, e.g. from the cuda backend's alloc()), layouts as Backend::attention.
// Without k: q is rotated and the caches hold rows [0, pos0+n). With k (tensor cores only, the
// backend's fused path): q and k are unrotated, k/v are the new rows, and the call rotates them with
// the rope tables and writes rows [pos0, pos0+n) of the caches.
struct PrefillAttentionProbe {
  const float* q = nullptr;  // [n, heads*head_dim]
  const float* k = nullptr;  // [n, kv_heads*head_dim] or null
  const float* v = nullptr;  // [n, kv_heads*head_dim], with k
  float* k_cache = nullptr;  // [capacity, kv_heads*head_dim]
  float* v_cache = nullptr;
  float* out = nullptr;      // [n, heads*head_dim]
  const float* rope_cos = nullptr;  // [rope_max_pos, head_dim/2], with k
  const float* rope_sin = nullptr;
  int rope_max_pos = 0;
  int n = 0, heads = 0, kv_heads = 0, head_dim = 0, window = 0, pos0 = 0, capacity = 0;
};

// Whether the tensor-core kernel takes (n, head_dim).
bool prefill_attention_tc_supported(int n, int head_dim);
// Runs the f32 kernel or the tensor-core kernel `repeats` times on the current device's default
// stream (scratch allocated here), synchronizes and returns the mean milliseconds per run.
double run_prefill_attention(const PrefillAttentionProbe& p, bool tensor_cores, int repeats);

// FP8 tensor-core GEMMs run by quant_gemm since start (the rest went through bf16 dequantization).
int64_t fp8_prefill_gemm_count();
// How many times the FP8 path quantized an input (linears sharing an input reuse one quantization).
int64_t fp8_prefill_act_quant_count();
// Why the last FP8 GEMM attempt fell back to the bf16 path ("" when none did).
std::string fp8_prefill_last_error();

}  // namespace qforge::cuda
