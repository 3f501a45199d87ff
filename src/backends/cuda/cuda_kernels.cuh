// backends/cuda/cuda_kernels.cuh — launchers of the backend's own kernels (float weights): the
// decode GEMV over a list of layers, input staging for the prefill GEMM, embedding lookup, bias
// add, and the attention family (rope + KV write, flash-decoding, tiled prefill attention).
// Every launcher checks the launch (QF_CUDA(cudaGetLastError())).
#pragma once
#include <nv/target>

#include <cstdint>
#include <utility>

#include "backends/cuda/cuda_common.cuh"

namespace qforge::cuda {

// Programmatic dependent launch (sm_90+). A decode kernel launched through launch_pdl may start
// while the previous kernel of the stream is still running: before pdl_wait() it may only read
// data no earlier kernel writes (weights, rope tables); pdl_wait() returns once the previous grid
// has completed and its writes are visible. pdl_launch_dependents() lets the next kernel start its
// own prologue. Both are no-ops below sm_90 and for a kernel launched without the attribute.
__device__ __forceinline__ void pdl_wait() {
  NV_IF_TARGET(NV_PROVIDES_SM_90, (asm volatile("griddepcontrol.wait;" ::: "memory");))
}
__device__ __forceinline__ void pdl_launch_dependents() {
  NV_IF_TARGET(NV_PROVIDES_SM_90, (asm volatile("griddepcontrol.launch_dependents;" ::: "memory");))
}
// Whether decode kernels are launched with the attribute: on sm_90+ unless QFORGE_CUDA_PDL=0.
// Set by init_kernels (off until then).
bool pdl_enabled();

template <class... KArgs, class... Args>
void launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl_enabled() ? 1 : 0;
  QF_CUDA(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

// Resident blocks per SM of `kernel` at `threads` threads and `smem` dynamic shared-memory bytes
// (opting the kernel in to more than 48 KB first); cached, so off the decode path after first use.
int resident_blocks(const void* kernel, int threads, size_t smem);
// SMs of the current device (queried once).
int device_sm_count();
// Dynamic shared memory a block of the current device may opt in to (227 KB on H100, 99 KB on sm_89 / sm_120).
int device_smem_optin();

// Settings of the one-token streaming GEMV (cuda_gemv_stream.cuh), read from the environment by
// init_kernels: QFORGE_CUDA_GEMV1=0 turns it off (general kernels for one token too; A/B runs),
// QFORGE_CUDA_GEMV1_THREADS=1024 / QFORGE_CUDA_GEMV1_PER_SM=N set the block shape and blocks per SM.
struct StreamGemvConfig {
  bool on = true;
  int threads = 512;
  int per_sm = 2;
};
const StreamGemvConfig& stream_gemv_config();

enum class WType : int { F32 = 0, F16 = 1, BF16 = 2 };
inline size_t wtype_size(WType t) { return t == WType::F32 ? 4 : 2; }

constexpr int kMaxGemvLayers = 4;
constexpr int kMaxGemvTokens = 8;
struct GemvBatch {
  const void* w[kMaxGemvLayers] = {};    // [rows_i, cols] in one WType
  const float* bias[kMaxGemvLayers] = {};
  float* y[kMaxGemvLayers] = {};         // [n, rows_i]
  int rows[kMaxGemvLayers] = {};
  int n_layers = 0;
  int cols = 0;
};

// ys[i][t, r] (+)= input[t]·W_i[r] (+ b_i[r]) for t < n (n <= 8); input staged per block in shared
// memory through stage_linear_input. Tokens beyond what shared memory holds run in several launches.
void gemv(const GemvBatch& b, WType wt, const LinearInputDev& in, int n, bool accumulate, cudaStream_t s);
// out[n, cols] = the staged input (rmsnorm / swiglu / copy), as f32, f16 or bf16; with `amax` (a device
// word zeroed before) also max |out| as float bits.
void stage_input(const LinearInputDev& in, int64_t n, int cols, void* out, WType out_type, cudaStream_t s,
                 unsigned* amax = nullptr);
// gate[i] = silu(gate[i]) * up[i] for i < count, in place, on bf16 values (f32 math, one rounding):
// the fused MLP's SwiGLU between its bf16-output gate/up GEMM and the down GEMM. With `amax` (a device
// word zeroed before) also max |result| as float bits, for the FP8 MLP's activation scale.
void swiglu_bf16_inplace(void* gate, const void* up, int64_t count, cudaStream_t s, unsigned* amax = nullptr);
// y[t, r] += bias[r]
void add_bias(float* y, const float* bias, int64_t n, int rows, cudaStream_t s);
// out[i, :] = table[ids[i], :] as f32.
void embed(const void* table, WType t, int64_t cols, const int32_t* ids_dev, int64_t n, float* out, cudaStream_t s);

// Positions: pos0 is taken from *pos_dev when it is non-null (graph replay), else from pos0.
struct AttnArgs {
  float* q = nullptr;  // [n, heads*hd]
  float* k = nullptr;  // [n, kv_heads*hd]
  const float* v = nullptr;
  float* k_cache = nullptr;  // [capacity, kv_heads*hd]
  float* v_cache = nullptr;
  float* out = nullptr;  // [n, heads*hd]
  void* out_bf16 = nullptr;  // optional [n, heads*hd] bf16 copy of out (tensor-core prefill only)
  int n = 0, heads = 0, kv_heads = 0, hd = 0, window = 0;
  int pos0 = 0;
  const int* pos_dev = nullptr;
  int capacity = 0;  // cache rows; decode grids are sized for it (graph-safe)
  const float* rope_cos = nullptr;  // [max_pos, hd/2]
  const float* rope_sin = nullptr;
  int rope_max_pos = 0;
};
// Scratch the decode attention needs, in floats, for a given shape and KV capacity; the last
// kv_heads words are counters that must be zero before the first call (the kernel leaves them zero).
int64_t attention_scratch_floats(int heads, int kv_heads, int hd, int capacity);
void rope_and_cache(const AttnArgs& a, cudaStream_t s);
// n = 1: rope, KV-cache write, split attention and combine in one kernel (cuda_attention_decode.cu).
void attention_decode(const AttnArgs& a, float* scratch, cudaStream_t s);
void attention_prefill(const AttnArgs& a, cudaStream_t s);

// One-time per-device setup (shared-memory limits); call once per backend.
void init_kernels(int device);
void init_attention_decode(int device);

}  // namespace qforge::cuda
