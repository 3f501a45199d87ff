// backends/cuda/cuda_backend.cu — the "cuda" backend (and "cuda:N"): weights uploaded once and
// held as loaded (f32/f16/bf16; quantized through the glue), activations and KV cache in device
// memory, decode linears as GEMV (n <= 8), prefill linears as cuBLAS GEMMs, attention kernels of
// cuda_attention.cu (prefill) and cuda_attention_decode.cu, and decode steps recorded into a CUDA
// graph and replayed (token id and position read from device scalars; decode kernels chained by
// programmatic dependent launch). Registered at start by a static BackendRegistrar.
#include <cublasLt.h>
#include <cublas_v2.h>

#include <algorithm>
#include <array>
#include <tuple>
#include <utility>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>

#include "backends/backend.h"
#include "backends/cuda/cuda_attention_prefill.cuh"
#include "backends/cuda/cuda_kernels.cuh"
#include "backends/cuda/cuda_linear_quant_glue.cuh"
#include "backends/cuda/cuda_sampling.cuh"
#include "qforge/memory.h"

namespace qforge::cuda {
namespace {

#define QF_CUBLAS(call)                                                                                   \
  do {                                                                                                    \
    cublasStatus_t qf_s_ = (call);                                                                        \
    if (qf_s_ != CUBLAS_STATUS_SUCCESS)                                                                   \
      throw Error(std::string("cuBLAS error ") + cublasGetStatusString(qf_s_) + " in " #call " at " __FILE__); \
  } while (0)

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls are not confused
    return 0;
  }
  return n;
}

std::string mib(size_t b) { return std::to_string((b + (1 << 20) - 1) >> 20) + " MiB"; }

// cudaMalloc'd bytes, accounted on cuda:0 under `cat`, freed and un-accounted with the last owner.
std::shared_ptr<void> device_alloc(size_t bytes, MemCategory cat, int device) {
  void* p = nullptr;
  if (bytes == 0) bytes = 16;
  cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw Error("cuda:" + std::to_string(device) + ": out of GPU memory allocating " + mib(bytes) + " (" +
                std::string(mem_category_name(cat)) + "); " + mib(free_b) + " of " + mib(total_b) + " free");
  }
  MemoryAccounting::add(MemDevice::Cuda0, cat, int64_t(bytes));
  return std::shared_ptr<void>(p, [bytes, cat](void* q) {
    cudaFree(q);
    MemoryAccounting::add(MemDevice::Cuda0, cat, -int64_t(bytes));
  });
}

WType wtype_of(DType d, const std::string& what) {
  switch (d) {
    case DType::F32: return WType::F32;
    case DType::F16: return WType::F16;
    case DType::BF16: return WType::BF16;
    default: throw Error("cuda: " + what + " has dtype " + std::string(dtype_name(d)) + ", expected f32, f16 or bf16");
  }
}

struct RecordAgain {};  // thrown out of a graph recording that needs an allocation

struct DevTensor {
  std::shared_ptr<void> mem;
  WType type = WType::F32;
  size_t bytes = 0;
  const void* get() const { return mem.get(); }
};

struct TensorKey {
  const void* ptr;
  DType dtype;
  int64_t numel;
  bool as_f32;
  auto operator<=>(const TensorKey&) const = default;
};

struct DevLinear {
  TensorKey wkey{}, bkey{};   // the host buffers this copy was made from
  DevTensor w;                // float weights
  std::shared_ptr<void> qw;   // quantized weights (glue object)
  const float* bias = nullptr;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {
    if (device_ >= device_count()) throw Error("device 'cuda:" + std::to_string(device) + "' does not exist");
    QF_CUDA(cudaSetDevice(device_));
    QF_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    QF_CUBLAS(cublasCreate(&blas_));
    QF_CUBLAS(cublasSetStream(blas_, stream_));
    QF_CUBLAS(cublasLtCreate(&lt_));
    workspace_ = device_alloc(kWorkspace, MemCategory::Scratch, device_);
    QF_CUBLAS(cublasSetWorkspace(blas_, workspace_.get(), kWorkspace));
    QF_CUDA(cudaMallocHost(reinterpret_cast<void**>(&pinned_), kPinnedInts * sizeof(int32_t)));
    QF_CUDA(cudaEventCreateWithFlags(&staged_, cudaEventDisableTiming));
    pos_dev_ = device_alloc(sizeof(int32_t), MemCategory::Scratch, device_);
    {
      static std::mutex mu;
      static std::map<int, bool> inited;
      std::lock_guard lk(mu);
      if (!inited[device_]) init_kernels(device_);
      inited[device_] = true;
    }
    const char* ng = std::getenv("QFORGE_NO_CUDA_GRAPHS");
    graphs_ = !(ng && *ng && std::strcmp(ng, "0") != 0);
    name_ = device_ == 0 ? "cuda" : "cuda:" + std::to_string(device_);
  }

  ~CudaBackend() override {
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    drop_graph();
    tensors_.clear();
    linears_.clear();
    ropes_.clear();
    bufs_ = {};
    cudaEventDestroy(staged_);
    cudaFreeHost(pinned_);
    if (pinned_out_) cudaFreeHost(pinned_out_);
    cublasLtDestroy(lt_);
    cublasDestroy(blas_);
    cudaStreamDestroy(stream_);
  }

  std::string_view name() const override { return name_; }

  std::shared_ptr<float> alloc(int64_t n, MemCategory cat) override {
    begin_op();
    auto mem = device_alloc(size_t(n) * sizeof(float), cat, device_);
    QF_CUDA(cudaMemsetAsync(mem.get(), 0, size_t(n) * sizeof(float), stream_));
    QF_CUDA(cudaStreamSynchronize(stream_));
    auto* p = static_cast<float*>(mem.get());
    sizes_[p] = n;
    ++gen_;  // buffers moved: a captured graph is stale
    auto sizes = sizes_ptr_;
    return std::shared_ptr<float>(p, [mem, sizes, p](float*) mutable {
      sizes->erase(p);
      mem.reset();
    });
  }

  void to_host(const float* src, float* dst, int64_t n) override {
    begin_op();
    const size_t bytes = size_t(n) * 4;
    if (bytes <= kPinnedOutBytes) {
      // Through a pinned buffer (a pageable copy is staged by the driver; this is the per-token
      // logits copy of decode).
      if (!pinned_out_) QF_CUDA(cudaMallocHost(&pinned_out_, kPinnedOutBytes));
      QF_CUDA(cudaMemcpyAsync(pinned_out_, src, bytes, cudaMemcpyDeviceToHost, stream_));
      QF_CUDA(cudaStreamSynchronize(stream_));
      std::memcpy(dst, pinned_out_, bytes);
      return;
    }
    QF_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    QF_CUDA(cudaStreamSynchronize(stream_));
  }
  void from_host(const float* src, float* dst, int64_t n) override {
    begin_op();
    QF_CUDA(cudaMemcpyAsync(dst, src, size_t(n) * 4, cudaMemcpyHostToDevice, stream_));
    QF_CUDA(cudaStreamSynchronize(stream_));
  }

  void prepare(ModelWeights& w, const ModelConfig& c) override {
    begin_op();
    // Out-of-memory check first, with the estimate (unique host buffers: tied lm_head once).
    std::map<const void*, size_t> uniq;
    size_t max_q = 0;
    auto add_t = [&](const Tensor& t) {
      if (t) uniq[t.raw()] = t.dtype() == DType::F32 || t.dtype() == DType::F16 || t.dtype() == DType::BF16
                                 ? t.nbytes() : size_t(t.numel()) * 4;
    };
    auto add_l = [&](const Linear& l) {
      if (l.quantized()) {
        uniq[&l.qweight] = glue_quant_upload_bytes(l);  // the GPU layout (8-bit codes for GGUF types below 8 bits)
        max_q = std::max(max_q, size_t(l.out) * size_t(l.in));
      } else {
        add_t(l.weight);
      }
      add_t(l.bias);
    };
    // Only the part of the model this device runs (a split leaves the rest to other backends).
    const int64_t l0 = std::min<int64_t>(part_.layer_begin, int64_t(w.layers.size()));
    const int64_t l1 = std::min<int64_t>(part_.layer_end, int64_t(w.layers.size()));
    const std::span<LayerWeights> layers(w.layers.data() + l0, size_t(std::max<int64_t>(l1 - l0, 0)));
    if (part_.embed) add_t(w.embed);
    if (part_.head) add_t(w.final_norm), add_l(w.lm_head);
    for (auto& L : layers) {
      add_t(L.attn_norm);
      add_t(L.ffn_norm);
      for (const Linear* p : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) add_l(*p);
      // mlp() dequantizes gate and up side by side, linear() k and v.
      for (auto [a, b] : {std::pair{&L.gate, &L.up}, std::pair{&L.k, &L.v}})
        if (a->quantized() && b->quantized() && a->in == b->in && a->out == b->out)
          max_q = std::max(max_q, 2 * size_t(a->out) * size_t(a->in));
    }
    size_t need = max_q * 2;
    for (auto& [k, v] : uniq) need += v;
    size_t free_b = 0, total_b = 0;
    QF_CUDA(cudaMemGetInfo(&free_b, &total_b));
    const size_t margin = 256u << 20;  // activations, cuBLAS, KV cache of a short context
    if (need + margin > free_b) {
      cudaDeviceProp p{};
      cudaGetDeviceProperties(&p, device_);
      throw Error("cuda:" + std::to_string(device_) + ": the model needs " + mib(need) + " of GPU memory for weights (+" +
                  mib(margin) + " working space) but only " + mib(free_b) + " of " + mib(total_b) + " is free on " +
                  p.name + "; use --device cpu or a quantized format");
    }
    vocab_ = w.embed.dim(0);
    // bf16 tensor-core prefill attention unless the projections are f32 (keeps the f32 golden exact).
    prefill_tc_ = !w.layers.empty() && (w.layers[0].q.quantized() || w.layers[0].q.weight.dtype() != DType::F32);
    att_bf16_out_ = !w.layers.empty() && std::all_of(w.layers.begin(), w.layers.end(), [](const LayerWeights& L) {
      return !L.o.quantized() && L.o.weight.dtype() == DType::BF16 && !L.o.bias;
    });
    if (max_q > 0) dequant_scratch_ = device_alloc(max_q * 2, MemCategory::Scratch, device_);
    dequant_scratch_elems_ = max_q;
    // Upload everything now (nothing is uploaded lazily during a decode step).
    if (part_.embed) dev_tensor(w.embed, false);
    if (part_.head) dev_tensor(w.final_norm, true), dev_linear(w.lm_head);
    for (auto& L : layers) {
      dev_tensor(L.attn_norm, true);
      dev_tensor(L.ffn_norm, true);
      for (const Linear* p : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) dev_linear(*p);
    }
    QF_CUDA(cudaStreamSynchronize(stream_));
  }

  void run_step(std::span<const int32_t> tokens, int64_t pos0, const std::function<void()>& ops) override {
    begin_op();
    const int64_t n = int64_t(tokens.size());
    for (int32_t t : tokens)
      if (vocab_ > 0 && (t < 0 || t >= vocab_))
        throw Error("token id " + std::to_string(t) + " is outside the vocabulary (" + std::to_string(vocab_) + ")");
    stage_ids(tokens.data(), n, int32_t(pos0));
    step_tokens_ = tokens.data();
    in_step_ = true;
    struct Reset {
      CudaBackend* b;
      ~Reset() { b->in_step_ = false, b->step_tokens_ = nullptr, b->capturing_ = false; }
    } reset{this};
    if (n != 1 || !graphs_) {
      ops();
      return;
    }
    if (graph_exec_ && graph_gen_ == gen_) {
      QF_CUDA(cudaGraphLaunch(graph_exec_, stream_));
      return;
    }
    if (warm_gen_ != gen_) {  // first step with these buffers: run eagerly (lazy uploads, scratch growth)
      ops();
      warm_gen_ = gen_;
      return;
    }
    drop_graph();
    const uint64_t before = gen_;
    QF_CUDA(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    capturing_ = true;
    auto abandon = [&] {
      capturing_ = false;
      cudaGraph_t g = nullptr;
      cudaStreamEndCapture(stream_, &g);
      if (g) cudaGraphDestroy(g);
      cudaGetLastError();
    };
    try {
      ops();
    } catch (const RecordAgain&) {
      abandon();
      ops();
      warm_gen_ = gen_;
      return;
    } catch (...) {
      abandon();
      throw;
    }
    capturing_ = false;
    cudaGraph_t g = nullptr;
    QF_CUDA(cudaStreamEndCapture(stream_, &g));
    if (gen_ != before) {  // something was reallocated while recording: do the step eagerly
      cudaGraphDestroy(g);
      warm_gen_ = gen_;
      ops();
      return;
    }
    cudaError_t e = cudaGraphInstantiate(&graph_exec_, g, 0);
    cudaGraphDestroy(g);
    QF_CUDA(e);
    graph_gen_ = gen_;
    QF_CUDA(cudaGraphLaunch(graph_exec_, stream_));
  }

  void embed(const Tensor& table, const int32_t* ids, int64_t n, float* out) override {
    begin_op();
    const int64_t vocab = table.dim(0);
    for (int64_t i = 0; i < n; ++i)
      if (ids[i] < 0 || ids[i] >= vocab)
        throw Error("token id " + std::to_string(ids[i]) + " is outside the vocabulary (" + std::to_string(vocab) + ")");
    const DevTensor& t = dev_tensor(table, false);
    const int32_t* ids_dev = nullptr;
    if (in_step_ && ids == step_tokens_ && n <= ids_cap_) {
      ids_dev = static_cast<const int32_t*>(bufs_.ids.get());
    } else {
      stage_ids(ids, n, 0);
      ids_dev = static_cast<const int32_t*>(bufs_.ids.get());
    }
    cuda::embed(t.get(), t.type, table.dim(1), ids_dev, n, out, stream_);
    sync_if_debug();
  }

  void linear(std::span<const Linear* const> ls, const LinearInput& in, int64_t n, std::span<float* const> ys,
              bool accumulate) override {
    const StagedAttention att = begin_op();
    if (ls.empty() || n == 0) return;
    const int cols = int(ls[0]->in);
    for (const Linear* l : ls)
      if (l->in != cols) throw Error("cuda: linear layers of one call must share the input width (" + l->name + ")");
    const LinearInputDev din = dev_input(in);
    std::vector<const DevLinear*> dl;
    for (const Linear* l : ls) dl.push_back(&dev_linear(*l));
    if (n <= kMaxGemvTokens) {
      linear_gemv(ls, dl, din, int(n), ys, accumulate);
    } else {
      const bool pre_staged = att.src && att.src == in.x && !in.rms_weight && !in.up && att.n == n && att.cols == cols;
      linear_gemm(ls, dl, din, n, cols, ys, accumulate, pre_staged);
    }
    sync_if_debug();
  }

  // Prefill with bf16 weights, or with quantized weights dequantized to bf16 (except the FP8 tensor-core
  // path, tried first): x staged once (RMSNorm, bf16), gate and up as one GEMM with bf16 outputs into
  // gate_out's memory (2 x [n, inter] bf16 fits its [n, inter] f32), SwiGLU in place on those, and the down
  // GEMM from that bf16 product. Against linear() + linear(): no f32 gate/up round trip (3 x [n, inter] f32
  // of traffic less) and one activation conversion instead of three, at the cost of rounding gate and up to
  // bf16 before the SwiGLU (the product was rounded to bf16 for the down GEMM already). Quantized gate and
  // up dequantize into the two halves of the dequantize scratch (sized for the pair), then down into its
  // first half once the gate/up GEMM has read it (stream order). Everything else takes the default.
  void mlp(const Linear& gate, const Linear& up, const Linear& down, const LinearInput& in, int64_t n, float* gate_out,
           float* up_out, float* y, bool accumulate) override {
    begin_op();
    const bool no_bias = !gate.bias && !up.bias && !down.bias;
    const bool bf16 = !gate.quantized() && !up.quantized() && !down.quantized() &&
                      gate.weight.dtype() == DType::BF16 && up.weight.dtype() == DType::BF16 &&
                      down.weight.dtype() == DType::BF16 && no_bias;
    const bool quant = gate.quantized() && up.quantized() && down.quantized() && no_bias;
    const bool shapes = !in.up && gate.in == up.in && gate.out == up.out && down.in == gate.out;
    if (n <= kMaxGemvTokens || !shapes) return Backend::mlp(gate, up, down, in, n, gate_out, up_out, y, accumulate);
    const int cols = int(gate.in), inter = int(gate.out), rows = int(down.out);
    const LinearInputDev din = dev_input(in);
    if (quant && mlp_fp8(gate, up, down, din, n, cols, inter, gate_out, y, accumulate)) return sync_if_debug();
    const size_t w_elems = size_t(inter) * size_t(cols);
    if ((!bf16 && !quant) || (quant && 2 * w_elems > dequant_scratch_elems_))
      return Backend::mlp(gate, up, down, in, n, gate_out, up_out, y, accumulate);
    const DevLinear &dg = dev_linear(gate), &du = dev_linear(up), &dd = dev_linear(down);
    void* x16 = grow(bufs_.stage, bufs_.stage_cap, size_t(n) * cols * 2);
    stage_input(din, n, cols, x16, WType::BF16, stream_);
    const void *wg = dg.w.get(), *wu = du.w.get(), *wd = dd.w.get();
    if (quant) std::tie(wg, wu) = dequantize_side_by_side(dg, du, w_elems);
    // [2][n, inter] bf16 in gate_out's memory: the projection whose weight has the lower address first, so
    // that one strided batched GEMM covers both with a positive weight stride (cuBLAS's TMA kernels fault
    // on negative strides).
    auto* gu16 = reinterpret_cast<__nv_bfloat16*>(gate_out);
    const int64_t half = n * inter;
    const float one = 1.f, zero = 0.f, beta = accumulate ? 1.f : 0.f;
    const bool up_first = wu < wg;
    __nv_bfloat16* g16 = up_first ? gu16 + half : gu16;
    const __nv_bfloat16* u16 = up_first ? gu16 : gu16 + half;
    // bf16 weights: the byte distance is even.
    const ptrdiff_t dw = std::abs(static_cast<const char*>(wu) - static_cast<const char*>(wg)) / 2;
    QF_CUBLAS(cublasGemmStridedBatchedEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, inter, int(n), cols, &one, up_first ? wu : wg,
                                         CUDA_R_16BF, cols, dw, x16, CUDA_R_16BF, cols, 0, &zero, gu16, CUDA_R_16BF,
                                         inter, half, 2, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    swiglu_bf16_inplace(g16, u16, half, stream_);
    if (quant) {
      glue_dequantize_bf16(dd.qw.get(), dequant_scratch_.get(), stream_);
      wd = dequant_scratch_.get();
    }
    QF_CUBLAS(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, rows, int(n), inter, &one, wd, CUDA_R_16BF, inter,
                           g16, CUDA_R_16BF, inter, &beta, y, CUDA_R_32F, rows, CUBLAS_COMPUTE_32F,
                           CUBLAS_GEMM_DEFAULT));
    (void)up_out;
    sync_if_debug();
  }

  // The FP8 form of mlp() (cuda_quant_gemm.cu, quant_mlp_fp8): per-tensor e4m3/e5m2 weights on sm_89+. x is
  // staged as f32 with its amax (the activation scale), gate/up go to bf16 in gate_out's memory. False when
  // the weights do not qualify or cuBLASLt refuses (nothing the default path needs was changed).
  bool mlp_fp8(const Linear& gate, const Linear& up, const Linear& down, const LinearInputDev& din, int64_t n, int cols,
               int inter, float* gate_out, float* y, bool accumulate) {
    const DevLinear &dg = dev_linear(gate), &du = dev_linear(up), &dd = dev_linear(down);
    if (!dg.qw || !du.qw || !dd.qw) return false;  // float weights
    Fp8ActCache fp8_act;
    CudaGemmContext ctx = gemm_context(nullptr, &fp8_act);
    if (!glue_fp8_mlp_eligible(dg.qw.get(), du.qw.get(), dd.qw.get(), n, ctx)) return false;
    const float* x32 = stage_f32_with_amax(din, n, cols, fp8_act);
    ctx.act_bf16_scratch = grow<__nv_bfloat16>(bufs_.qact_bf16, bufs_.qact_cap,
                                               size_t(n) * std::max(cols, inter) * 2 + 1024);
    return glue_quant_mlp_fp8(dg.qw.get(), du.qw.get(), dd.qw.get(), x32, n, gate_out, y, accumulate, ctx, stream_);
  }

  // The cuBLAS / cuBLASLt handles, workspace and dequantize scratch of a quantized prefill GEMM, with its
  // bf16 activation scratch and FP8 activation cache.
  CudaGemmContext gemm_context(__nv_bfloat16* act_bf16, Fp8ActCache* fp8_act) {
    return CudaGemmContext{blas_, lt_, workspace_.get(), kWorkspace, static_cast<__nv_bfloat16*>(dequant_scratch_.get()),
                           nullptr, act_bf16, 0, 0, fp8_act};
  }

  // The prefill input staged as f32 [n, cols] with max |x| (float bits) in a word after it, recorded in
  // `act` for the FP8 path's activation scale.
  float* stage_f32_with_amax(const LinearInputDev& din, int64_t n, int cols, Fp8ActCache& act) {
    const size_t bytes = (size_t(n) * cols * 4 + 255) / 256 * 256;
    void* p = grow(bufs_.stage_f32, bufs_.stage_f32_cap, bytes + 256);
    auto* amax = reinterpret_cast<unsigned*>(static_cast<char*>(p) + bytes);
    QF_CUDA(cudaMemsetAsync(amax, 0, sizeof(unsigned), stream_));
    stage_input(din, n, cols, p, WType::F32, stream_, amax);
    act.amax_of = static_cast<const float*>(p);
    act.amax = amax;
    return static_cast<float*>(p);
  }

  void attention(float* q, float* k, const float* v, float* kc, float* vc, int64_t n, int64_t pos0,
                 const AttentionShape& s, const RopeTable& rope, float* out) override {
    begin_op();
    if (s.heads % s.kv_heads != 0) throw Error("cuda: attention heads must be a multiple of kv_heads");
    const int64_t kvd = s.kv_heads * s.head_dim;
    int64_t capacity = pos0 + n;
    if (auto it = sizes_.find(kc); it != sizes_.end()) capacity = it->second / kvd;
    if (pos0 + n > capacity) throw Error("cuda: attention past the KV cache capacity");
    if (pos0 + n > rope.max_pos) throw Error("cuda: position beyond the rope table");
    const auto& rt = dev_rope(rope);
    AttnArgs a;
    a.q = q, a.k = k, a.v = v, a.k_cache = kc, a.v_cache = vc, a.out = out;
    a.n = int(n), a.heads = int(s.heads), a.kv_heads = int(s.kv_heads), a.hd = int(s.head_dim);
    a.window = int(s.sliding_window);
    a.pos0 = int(pos0);
    a.pos_dev = in_step_ ? static_cast<const int*>(pos_dev_.get()) : nullptr;
    a.capacity = int(capacity);
    a.rope_cos = static_cast<const float*>(rt.cos.get());
    a.rope_sin = static_cast<const float*>(rt.sin.get());
    a.rope_max_pos = int(rope.max_pos);
    if (n == 1) {
      // One kernel: rope, KV write, split attention, combine. Its scratch starts with counters that
      // must be zero: cleared when the buffer is (re)allocated, left zero by every launch.
      const size_t need = size_t(attention_scratch_floats(a.heads, a.kv_heads, a.hd, a.capacity)) * 4;
      if (need > bufs_.attn_cap) {
        grow(bufs_.attn, bufs_.attn_cap, need);
        QF_CUDA(cudaMemsetAsync(bufs_.attn.get(), 0, bufs_.attn_cap, stream_));
      }
      attention_decode(a, static_cast<float*>(bufs_.attn.get()), stream_);
    } else if (prefill_tc_ && attention_prefill_tc_supported(a)) {
      // Rope, cache write and attention (a.k set: the fused path). Its own scratch (bf16 K/V copies):
      // the decode scratch's counters must stay zero. With bf16 o projections the kernel also writes
      // the o projection's staged input (bf16 out), which the next linear() takes instead of staging.
      if (att_bf16_out_) {
        a.out_bf16 = grow(bufs_.stage, bufs_.stage_cap, size_t(n) * s.heads * s.head_dim * 2);
        staged_att_ = {out, n, int(s.heads * s.head_dim)};
      }
      attention_prefill_tc(a, grow<char>(bufs_.attn_tc, bufs_.attn_tc_cap, size_t(attention_prefill_tc_scratch_bytes(a))),
                           stream_);
    } else {
      rope_and_cache(a, stream_);
      attention_prefill(a, stream_);
    }
    sync_if_debug();
  }

  void set_model_part(const ModelPart& part) override { part_ = part; }

  // Penalty and top-k selection on the GPU (cuda_sampling.cu): only k (value, id) pairs travel.
  void select_top_k(float* logits, int64_t n, std::span<const int32_t> penalize, float penalty, int k, float* values,
                    int32_t* ids) override {
    const int64_t m = penalty != 1.0f ? int64_t(penalize.size()) : 0;
    if (k < 1 || k > n || k > kMaxDeviceTopK || size_t(m) * 4 > kPinnedOutBytes)
      return Backend::select_top_k(logits, n, penalize, penalty, k, values, ids);
    for (int64_t i = 0; i < m; ++i)
      if (penalize[size_t(i)] < 0 || penalize[size_t(i)] >= n)
        throw Error("select_top_k: penalised id " + std::to_string(penalize[size_t(i)]) + " outside the vocabulary");
    begin_op();
    if (!pinned_out_) QF_CUDA(cudaMallocHost(&pinned_out_, kPinnedOutBytes));
    void* scratch = grow<char>(bufs_.sample, bufs_.sample_cap, top_k_scratch_bytes(n, k, m));
    select_top_k_device(logits, n, penalize.data(), m, penalty, k, scratch, pinned_out_, stream_);
    std::memcpy(values, pinned_out_, size_t(k) * 4);
    std::memcpy(ids, static_cast<char*>(pinned_out_) + size_t(k) * 4, size_t(k) * 4);
  }

 private:
  static constexpr size_t kWorkspace = 32u << 20;
  static constexpr int64_t kPinnedInts = 1 << 16;
  static constexpr size_t kPinnedOutBytes = 4u << 20;  // logits of up to 1M floats

  struct Bufs {
    std::shared_ptr<void> ids, attn, attn_tc, stage, stage_f32, gemm_out, qact_bf16, sample;
    size_t attn_cap = 0, attn_tc_cap = 0, stage_cap = 0, stage_f32_cap = 0, gemm_out_cap = 0, qact_cap = 0, sample_cap = 0;
  };
  struct DevRope {
    std::shared_ptr<void> cos, sin;
    int64_t max_pos = 0, half = 0;
  };

  void use_device() const {
    if (!capturing_) QF_CUDA(cudaSetDevice(device_));
  }
  // The prefill attention's bf16 copy of its output (the o projection's staged input): valid only for
  // the op right after attention(), since any other op may have written that buffer.
  struct StagedAttention {
    const float* src = nullptr;  // the f32 output it copies
    int64_t n = 0;
    int cols = 0;
  };
  // Every op starts here: the device, and the end of the attention output copy's validity.
  StagedAttention begin_op() {
    use_device();
    return std::exchange(staged_att_, {});
  }
  void sync_if_debug() {
    static const bool dbg = [] {
      const char* e = std::getenv("QFORGE_CUDA_SYNC");
      return e && *e && std::strcmp(e, "0") != 0;
    }();
    if (dbg && !capturing_) QF_CUDA(cudaStreamSynchronize(stream_));
  }
  void drop_graph() {
    if (graph_exec_) cudaGraphExecDestroy(graph_exec_);
    graph_exec_ = nullptr;
  }

  // A scratch buffer of at least `bytes` (grown by reallocation; graphs become stale).
  template <class T = float>
  T* grow(std::shared_ptr<void>& buf, size_t& cap, size_t bytes) {
    if (bytes > cap) {
      if (capturing_) throw RecordAgain{};  // no allocation while recording: run_step redoes the step eagerly
      QF_CUDA(cudaStreamSynchronize(stream_));
      buf.reset();
      buf = device_alloc(bytes, MemCategory::Scratch, device_);
      cap = bytes;
      ++gen_;
    }
    return static_cast<T*>(buf.get());
  }

  // Token ids (and the step position) → device through pinned memory.
  void stage_ids(const int32_t* ids, int64_t n, int32_t pos0) {
    if (n + 1 > kPinnedInts) {
      // Long prompts: plain synchronous copy (no pinned staging needed for correctness).
      grow<int32_t>(bufs_.ids, ids_cap_bytes_, size_t(n) * 4);
      ids_cap_ = int64_t(ids_cap_bytes_ / 4);
      QF_CUDA(cudaMemcpyAsync(bufs_.ids.get(), ids, size_t(n) * 4, cudaMemcpyHostToDevice, stream_));
      QF_CUDA(cudaMemcpyAsync(pos_dev_.get(), &pos0, 4, cudaMemcpyHostToDevice, stream_));
      QF_CUDA(cudaStreamSynchronize(stream_));
      return;
    }
    grow<int32_t>(bufs_.ids, ids_cap_bytes_, size_t(std::max<int64_t>(n, 1)) * 4);
    ids_cap_ = int64_t(ids_cap_bytes_ / 4);
    QF_CUDA(cudaEventSynchronize(staged_));  // the previous copy out of pinned_ is done
    std::memcpy(pinned_, ids, size_t(n) * 4);
    pinned_[n] = pos0;
    QF_CUDA(cudaMemcpyAsync(bufs_.ids.get(), pinned_, size_t(n) * 4, cudaMemcpyHostToDevice, stream_));
    QF_CUDA(cudaMemcpyAsync(pos_dev_.get(), pinned_ + n, 4, cudaMemcpyHostToDevice, stream_));
    QF_CUDA(cudaEventRecord(staged_, stream_));
  }

  // Device copy of a host tensor (as held, or as f32 when `as_f32`), uploaded on first use.
  const DevTensor& dev_tensor(const Tensor& t, bool as_f32) {
    // Keyed by the host buffer, its dtype and size: a buffer freed and another allocated at the
    // same address with another dtype or size is not confused with it.
    const TensorKey key{t.raw(), t.dtype(), t.numel(), as_f32};
    if (auto it = tensors_.find(key); it != tensors_.end()) return it->second;
    if (capturing_) throw RecordAgain{};
    DevTensor d;
    if (as_f32 && t.dtype() != DType::F32) {
      wtype_of(t.dtype(), "a norm/bias tensor");
      std::vector<float> tmp(size_t(t.numel()));
      for (int64_t i = 0; i < t.numel(); ++i)
        tmp[size_t(i)] = t.dtype() == DType::F16 ? f16_to_f32(t.data<uint16_t>()[i]) : bf16_to_f32(t.data<uint16_t>()[i]);
      d.bytes = tmp.size() * 4;
      d.mem = device_alloc(d.bytes, MemCategory::Weights, device_);
      QF_CUDA(cudaMemcpy(d.mem.get(), tmp.data(), d.bytes, cudaMemcpyHostToDevice));
      d.type = WType::F32;
    } else {
      d.type = wtype_of(t.dtype(), "a weight tensor");
      d.bytes = t.nbytes();
      d.mem = device_alloc(d.bytes, MemCategory::Weights, device_);
      QF_CUDA(cudaMemcpy(d.mem.get(), t.raw(), d.bytes, cudaMemcpyHostToDevice));
    }
    return tensors_[key] = std::move(d);
  }

  // The device form of a linear input (the RMSNorm weight uploaded on first use).
  LinearInputDev dev_input(const LinearInput& in) {
    LinearInputDev d;
    d.x = in.x;
    d.eps = in.eps;
    d.up = in.up;
    if (in.rms_weight) d.rms_w = static_cast<const float*>(dev_tensor(*in.rms_weight, true).get());
    return d;
  }

  const DevLinear& dev_linear(const Linear& l) {
    // Keyed by the Linear, checked against its buffers (a Linear may be reused with new weights). The keys
    // are host addresses: weights freed and reallocated at the same address with the same type and size
    // would hit a stale entry, so a backend must not outlive the weights it has seen (a model owns its
    // backends; tests that free weights use a fresh backend).
    const TensorKey wkey{l.quantized() ? static_cast<const void*>(&l.qweight) : l.weight.raw(), l.weight.dtype(),
                         l.quantized() ? l.in * l.out : l.weight.numel(), l.quantized()};
    const TensorKey bkey{l.bias.raw(), l.bias.dtype(), l.bias ? l.bias.numel() : 0, true};
    if (auto it = linears_.find(&l); it != linears_.end() && it->second.wkey == wkey && it->second.bkey == bkey)
      return it->second;
    if (capturing_) throw RecordAgain{};
    DevLinear d;
    d.wkey = wkey;
    d.bkey = bkey;
    if (l.quantized()) {
      d.qw = glue_upload_quant(l, stream_);
    } else {
      if (l.weight.numel() != l.in * l.out) throw Error("cuda: " + l.name + ": weight shape does not match in/out");
      d.w = dev_tensor(l.weight, false);
    }
    if (l.bias) d.bias = static_cast<const float*>(dev_tensor(l.bias, true).get());
    return linears_[&l] = std::move(d);
  }

  const DevRope& dev_rope(const RopeTable& r) {
    auto& d = ropes_[&r];
    if (d.max_pos == r.max_pos && d.half == r.half && d.cos) return d;
    if (capturing_) throw RecordAgain{};
    const size_t bytes = r.cos.size() * 4;
    d.cos = device_alloc(bytes, MemCategory::Other, device_);
    d.sin = device_alloc(bytes, MemCategory::Other, device_);
    QF_CUDA(cudaMemcpy(d.cos.get(), r.cos.data(), bytes, cudaMemcpyHostToDevice));
    QF_CUDA(cudaMemcpy(d.sin.get(), r.sin.data(), bytes, cudaMemcpyHostToDevice));
    d.max_pos = r.max_pos;
    d.half = r.half;
    return d;
  }

  void linear_gemv(std::span<const Linear* const> ls, const std::vector<const DevLinear*>& dl, const LinearInputDev& din,
                   int n, std::span<float* const> ys, bool acc) {
    // Quantized layers go to the quantized GEMV; float layers are batched by weight type.
    std::vector<const void*> qws;
    std::vector<float*> qys;
    for (size_t i = 0; i < ls.size(); ++i)
      if (dl[i]->qw) {
        qws.push_back(dl[i]->qw.get());
        qys.push_back(ys[i]);
      }
    if (!qws.empty()) {
      glue_quant_gemv(qws, din, n, qys, acc, stream_);
      for (size_t i = 0; i < ls.size(); ++i)
        if (dl[i]->qw && dl[i]->bias) add_bias(ys[i], dl[i]->bias, n, int(ls[i]->out), stream_);
    }
    for (WType t : {WType::BF16, WType::F16, WType::F32}) {
      GemvBatch b;
      b.cols = int(ls[0]->in);
      for (size_t i = 0; i < ls.size(); ++i) {
        if (dl[i]->qw || dl[i]->w.type != t) continue;
        if (b.n_layers == kMaxGemvLayers) {
          gemv(b, t, din, n, acc, stream_);
          b.n_layers = 0;
        }
        b.w[b.n_layers] = dl[i]->w.get();
        b.bias[b.n_layers] = dl[i]->bias;
        b.y[b.n_layers] = ys[i];
        b.rows[b.n_layers] = int(ls[i]->out);
        ++b.n_layers;
      }
      if (b.n_layers) gemv(b, t, din, n, acc, stream_);
    }
  }

  // pre_staged: bufs_.stage already holds the input as bf16 (the attention output's copy).
  void linear_gemm(std::span<const Linear* const> ls, const std::vector<const DevLinear*>& dl,
                   const LinearInputDev& din, int64_t n, int cols, std::span<float* const> ys, bool acc,
                   bool pre_staged = false) {
    void* staged[3] = {};
    if (pre_staged) staged[int(WType::BF16)] = bufs_.stage.get();
    Fp8ActCache fp8_act;  // these linears share one input: the FP8 path quantizes it once
    auto staged_for = [&](WType t) -> void* {
      void*& p = staged[int(t)];
      if (!p && t == WType::F32) {  // f32 input (quantized or f32 weights), with its amax for the FP8 path
        p = stage_f32_with_amax(din, n, cols, fp8_act);
      } else if (!p) {
        p = grow(bufs_.stage, bufs_.stage_cap, size_t(n) * cols * 2);
        if (staged[3 - int(t)] == p) staged[3 - int(t)] = nullptr;  // f16/bf16 share one buffer
        stage_input(din, n, cols, p, t, stream_);
      }
      return p;
    };
    for (size_t i = 0; i < ls.size(); ++i) {
      const int rows = int(ls[i]->out);
      if (i + 1 < ls.size() && gemm_pair(ls, dl, i, n, cols, ys, acc, staged_for)) {
        ++i;
        continue;
      }
      CudaGemmContext ctx = gemm_context(nullptr, &fp8_act);
      if (dl[i]->qw && glue_quant_gemm_tries_fp8(dl[i]->qw.get(), ctx)) {
        ctx.act_bf16_scratch = grow<__nv_bfloat16>(bufs_.qact_bf16, bufs_.qact_cap, size_t(n) * cols * 2);
        glue_quant_gemm(dl[i]->qw.get(), static_cast<const float*>(staged_for(WType::F32)), n, ys[i], acc, ctx, stream_);
      } else {
        // Float weights, or a quantized one dequantized to bf16 (against the input staged once as bf16, shared
        // with the other linears of the call).
        const void* w = dl[i]->w.get();
        WType t = dl[i]->w.type;
        if (dl[i]->qw) {
          glue_dequantize_bf16(dl[i]->qw.get(), dequant_scratch_.get(), stream_);
          w = dequant_scratch_.get();
          t = WType::BF16;
        }
        const void* x = staged_for(t);
        const float alpha = 1.f, beta = acc ? 1.f : 0.f;
        const cudaDataType_t dt = t == WType::F32 ? CUDA_R_32F : t == WType::F16 ? CUDA_R_16F : CUDA_R_16BF;
        const cublasComputeType_t ct = t == WType::F32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
        // Row-major y[n, rows] = x[n, cols] · W[rows, cols]ᵀ, i.e. column-major yᵀ = W · xᵀ.
        QF_CUBLAS(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, rows, int(n), cols, &alpha, w, dt, cols, x, dt, cols,
                               &beta, ys[i], CUDA_R_32F, rows, ct, CUBLAS_GEMM_DEFAULT));
      }
      if (dl[i]->bias) add_bias(ys[i], dl[i]->bias, n, rows, stream_);
    }
  }

  // Two quantized weights of `elems` elements each dequantized to bf16 side by side in the dequantize scratch (the
  // caller checked it holds 2 x elems): their addresses, a positive stride apart for a strided or batched GEMM.
  std::pair<const void*, const void*> dequantize_side_by_side(const DevLinear& a, const DevLinear& b, size_t elems) {
    auto* dq = static_cast<__nv_bfloat16*>(dequant_scratch_.get());
    glue_dequantize_bf16(a.qw.get(), dq, stream_);
    glue_dequantize_bf16(b.qw.get(), dq + elems, stream_);
    return {dq, dq + elems};
  }

  // Two linears of one call with the same shape (k/v) as one batched GEMM, so that the two small GEMMs fill
  // the GPU together: float weights of one type, or two quantized weights dequantized to bf16. The pointer
  // arrays cuBLAS reads are written once per distinct set (batch_ptrs). False when the pair does not qualify.
  template <class StagedFor>
  bool gemm_pair(std::span<const Linear* const> ls, const std::vector<const DevLinear*>& dl, size_t i, int64_t n,
                 int cols, std::span<float* const> ys, bool acc, StagedFor& staged_for) {
    const DevLinear &d0 = *dl[i], &d1 = *dl[i + 1];
    if (d0.bias || d1.bias || ls[i]->out != ls[i + 1]->out || ls[i]->in != ls[i + 1]->in) return false;
    // Outputs must not overlap (each is [n, rows]); weights are only read.
    if (std::abs(ys[i + 1] - ys[i]) < ptrdiff_t(n) * ls[i]->out) return false;
    const void *w0 = d0.w.get(), *w1 = d1.w.get();
    WType t = d0.w.type;
    if (d0.qw || d1.qw) {  // two quantized weights off the FP8 path
      const size_t elems = size_t(ls[i]->out) * size_t(cols);
      const CudaGemmContext ctx = gemm_context(nullptr, nullptr);
      if (!d0.qw || !d1.qw || 2 * elems > dequant_scratch_elems_ || glue_quant_gemm_tries_fp8(d0.qw.get(), ctx) ||
          glue_quant_gemm_tries_fp8(d1.qw.get(), ctx))
        return false;
      std::tie(w0, w1) = dequantize_side_by_side(d0, d1, elems);
      t = WType::BF16;
    } else if (d0.w.type != d1.w.type || t == WType::F32) {
      return false;  // f32 models keep the pedantic one-GEMM-per-linear path
    }
    const void* x = staged_for(t);
    const void* const* p = batch_ptrs({w0, w1, x, x, ys[i], ys[i + 1]});
    const float alpha = 1.f, beta = acc ? 1.f : 0.f;
    const int rows = int(ls[i]->out);
    const cudaDataType_t dt = t == WType::F16 ? CUDA_R_16F : CUDA_R_16BF;
    QF_CUBLAS(cublasGemmBatchedEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, rows, int(n), cols, &alpha, p, dt, cols, p + 2, dt,
                                  cols, &beta, const_cast<void* const*>(p + 4), CUDA_R_32F, rows, 2, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT));
    return true;
  }

  // A device array {A0, A1, B0, B1, C0, C1} for cublasGemmBatchedEx. One per distinct set of pointers
  // (a layer's pair with its input and outputs), written once with a stream-ordered copy and reused by
  // every later call with the same pointers; when the slab is full, the stream is drained and it starts
  // over. Prefill only (never inside a graph capture).
  using BatchPtrs = std::array<const void*, 6>;
  const void* const* batch_ptrs(const BatchPtrs& ptrs) {
    if (auto it = batch_ptrs_.find(ptrs); it != batch_ptrs_.end()) return it->second;
    constexpr int kSlots = 1024;
    if (!batch_slab_) batch_slab_ = device_alloc(kSlots * sizeof(BatchPtrs), MemCategory::Scratch, device_);
    if (batch_ptrs_.size() == kSlots) {
      QF_CUDA(cudaStreamSynchronize(stream_));
      batch_ptrs_.clear();
    }
    auto* d = reinterpret_cast<const void**>(static_cast<BatchPtrs*>(batch_slab_.get()) + batch_ptrs_.size());
    // From pageable memory: the copy is staged before this call returns, so `ptrs` may go away.
    QF_CUDA(cudaMemcpyAsync(d, ptrs.data(), sizeof(BatchPtrs), cudaMemcpyHostToDevice, stream_));
    return batch_ptrs_[ptrs] = d;
  }

  int device_;
  ModelPart part_;  // what prepare uploads (all of the model unless split)
  std::string name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  std::shared_ptr<void> workspace_, pos_dev_, dequant_scratch_, batch_slab_;
  size_t dequant_scratch_elems_ = 0;  // bf16 elements of dequant_scratch_
  std::map<BatchPtrs, const void* const*> batch_ptrs_;
  int32_t* pinned_ = nullptr;
  void* pinned_out_ = nullptr;
  cudaEvent_t staged_ = nullptr;
  Bufs bufs_;
  size_t ids_cap_bytes_ = 0;
  int64_t ids_cap_ = 0;
  int64_t vocab_ = 0;
  std::map<TensorKey, DevTensor> tensors_;
  std::unordered_map<const Linear*, DevLinear> linears_;
  std::unordered_map<const RopeTable*, DevRope> ropes_;
  std::shared_ptr<std::unordered_map<const float*, int64_t>> sizes_ptr_ =
      std::make_shared<std::unordered_map<const float*, int64_t>>();
  std::unordered_map<const float*, int64_t>& sizes_ = *sizes_ptr_;
  // Graphs.
  bool graphs_ = true, in_step_ = false, capturing_ = false, prefill_tc_ = false, att_bf16_out_ = false;
  StagedAttention staged_att_;
  const int32_t* step_tokens_ = nullptr;
  uint64_t gen_ = 1, warm_gen_ = 0, graph_gen_ = 0;
  cudaGraphExec_t graph_exec_ = nullptr;
};

bool cuda_usable() { return device_count() > 0; }

template <int N>
std::unique_ptr<Backend> make_cuda_n() {
  return std::make_unique<CudaBackend>(N);
}
template <int N>
bool usable_n() {
  return device_count() > N;
}

template <int... N>
struct RegisterIndexed {
  RegisterIndexed() {
    static const std::string names[] = {("cuda:" + std::to_string(N))...};
    int i = 0;
    ((void)BackendRegistrar(names[i++].c_str(), &make_cuda_n<N>, &usable_n<N>), ...);
  }
};

const BackendRegistrar reg_cuda("cuda", &make_cuda_n<0>, &cuda_usable);
const RegisterIndexed<0, 1, 2, 3, 4, 5, 6, 7> reg_cuda_n;

}  // namespace
}  // namespace qforge::cuda
