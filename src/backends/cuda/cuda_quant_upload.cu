// backends/cuda/cuda_quant_upload.cu — upload of a QuantWeight to the GPU: every format is repacked on
// the host into the layouts of cuda_quant_impl.cuh (8-bit: row-major codes, K padded to 128;
// 4-bit: mma tiles of 16 rows x 64 k; zero codes and zero scales in the padding) plus row-major block scales in their original
// precision; bnb double-quant absmax is pre-expanded to fp32 with the reference's exact arithmetic.
// Device bytes are accounted as Weights on cuda:0 and released by ~CudaQuantWeight.
#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "backends/cuda/cuda_quant_impl.cuh"
#include "qforge/memory.h"
#include "quant/quant_codecs.h"
#include "quant/quant_formats.h"

namespace qforge::cuda {

namespace qd = quant_detail;

CudaQuantWeight::~CudaQuantWeight() {
  for (int i = 0; i < 6; ++i)
    if (allocs[i]) {
      cudaFree(allocs[i]);  // no throw from a destructor
      MemoryAccounting::add(MemDevice::Cuda0, MemCategory::Weights, -int64_t(alloc_bytes[i]));
    }
}

size_t device_bytes(const CudaQuantWeight& w) { return w.total_bytes; }

void* DeviceScratch::get(size_t bytes) {
  if (bytes > cap) {
    if (p) {
      cudaFree(p);
      MemoryAccounting::add(MemDevice::Cuda0, MemCategory::Scratch, -int64_t(cap));
      p = nullptr;
    }
    cap = bytes;
    QF_CUDA(cudaMalloc(&p, cap));
    MemoryAccounting::add(MemDevice::Cuda0, MemCategory::Scratch, int64_t(cap));
  }
  return p;
}

DeviceScratch::~DeviceScratch() {
  if (p) cudaFree(p);  // errors ignored: the process is exiting
}

DeviceScratch& scratch_for_current_device(DeviceScratch (&per_device)[16]) {
  int dev = 0;
  QF_CUDA(cudaGetDevice(&dev));
  if (dev < 0 || dev >= 16) throw Error("cuda quant: device " + std::to_string(dev) + " beyond the 16 with staging scratch");
  return per_device[dev];
}

std::shared_ptr<CudaQuantWeight> clone_quant_weight(const CudaQuantWeight& w, cudaStream_t s) {
  auto c = std::make_shared<CudaQuantWeight>();
  c->format = w.format;
  c->params = w.params;
  c->rows = w.rows;
  c->cols = w.cols;
  c->desc = w.desc;
  c->dev = w.dev;
  c->generic = w.generic;
  c->block = w.block;
  for (int i = 0; i < 6; ++i) {
    if (!w.allocs[i]) continue;
    QF_CUDA(cudaMalloc(&c->allocs[i], w.alloc_bytes[i]));
    c->alloc_bytes[i] = w.alloc_bytes[i];
    c->total_bytes += w.alloc_bytes[i];
    MemoryAccounting::add(MemDevice::Cuda0, MemCategory::Weights, int64_t(w.alloc_bytes[i]));
    QF_CUDA(cudaMemcpyAsync(c->allocs[i], w.allocs[i], w.alloc_bytes[i], cudaMemcpyDeviceToDevice, s));
    auto remap = [&](const auto*& p) {
      using T = std::remove_cv_t<std::remove_pointer_t<std::remove_reference_t<decltype(p)>>>;
      if (static_cast<const void*>(p) == w.allocs[i]) p = static_cast<const T*>(c->allocs[i]);
    };
    remap(c->dev.codes);
    remap(c->dev.zeros);
    remap(c->dev.q4k_d);
    remap(c->dev.row_scale);
    remap(c->flat_codes);
    remap(c->flat_absmax);
    if (c->dev.sc == w.allocs[i]) c->dev.sc = c->allocs[i];
  }
  return c;
}

FormatDesc format_desc(QuantFormat f) {
  FormatDesc d;
  auto set_lut = [&](const auto& t) {
    for (int i = 0; i < 16; ++i) d.lut[i] = t[size_t(i)];
  };
  auto iota = [&](float off) {
    for (int i = 0; i < 16; ++i) d.lut[i] = float(i) + off;
  };
  switch (f) {
    case QuantFormat::NF4: set_lut(qd::kNf4Values); d.scale = ScaleKind::F32; break;
    case QuantFormat::FP4: set_lut(qd::kFp4Values); d.scale = ScaleKind::F32; break;
    case QuantFormat::NVFP4: set_lut(qd::kE2M1Values); d.scale = ScaleKind::E4M3; break;
    case QuantFormat::MXFP4: set_lut(qd::kE2M1Values); d.scale = ScaleKind::E8M0; break;
    case QuantFormat::INT4: iota(0.f); d.scale = ScaleKind::F16; d.zero = true; d.int_codes = true; break;
    case QuantFormat::Q4_0: iota(-8.f); d.scale = ScaleKind::F16; d.int_codes = true; break;
    case QuantFormat::Q4_K: iota(0.f); d.scale = ScaleKind::Q4K; d.int_codes = true; break;
    case QuantFormat::INT8: d.bits = 8; d.elem = ElemKind::Int8; break;
    case QuantFormat::Q8_0: d.bits = 8; d.elem = ElemKind::Int8; d.scale = ScaleKind::F16; break;
    case QuantFormat::Q5_0: d.bits = 8; d.elem = ElemKind::Int8; d.scale = ScaleKind::F16; break;  // code - 16
    case QuantFormat::Q6_K: d.bits = 8; d.elem = ElemKind::Int8; d.scale = ScaleKind::F32; break;  // code - 32, d * sc per 16
    case QuantFormat::Q3_K: d.bits = 8; d.elem = ElemKind::Int8; d.scale = ScaleKind::F32; break;  // code -4..3, d * (sc - 32) per 16
    // Codes 0..15 / 0..31 / 0..3 with an f32 (scale, minimum) pair per 32 (per 16 for q2_k).
    case QuantFormat::Q4_1: case QuantFormat::Q5_1: case QuantFormat::Q5_K: case QuantFormat::Q2_K:
      d.bits = 8; d.elem = ElemKind::Int8; d.scale = ScaleKind::F32Min; break;
    case QuantFormat::FP8_E4M3: d.bits = 8; d.elem = ElemKind::E4M3; break;
    case QuantFormat::FP8_E5M2: d.bits = 8; d.elem = ElemKind::E5M2; break;
    default: throw Error("cuda quant: format " + std::string(quant_traits(f).name) + " has no GPU kernel");
  }
  for (int i = 0; i < 16; ++i) {
    const __half_raw h = __half_raw(__float2half_rn(d.lut[i]));
    d.lut_lo[i / 4] |= uint32_t(h.x & 0xff) << (8 * (i % 4));
    d.lut_hi[i / 4] |= uint32_t(h.x >> 8) << (8 * (i % 4));
  }
  return d;
}

namespace {

// Columns of a row as the device holds it: whole 64-column mma tiles (4-bit) or 128-column chunks (8-bit).
int64_t padded_cols(int bits, int64_t K) { return bits == 4 ? (K + 63) / 64 * 64 : (K + 127) / 128 * 128; }
// Rows of codes: 4-bit tiles cover 16 rows.
int64_t code_rows(int bits, int64_t N) { return bits == 4 ? (N + 15) / 16 * 16 : N; }

// Elements per scale block along k on the device (kp for formats with no block scales): one table for the
// upload and for upload_bytes' prediction of it.
int64_t scale_block(const QuantWeight& q, int64_t kp) {
  const int64_t K = q.cols, B = q.params.blocksize;
  switch (q.format) {
    case QuantFormat::NF4: case QuantFormat::FP4: return std::min<int64_t>(B, K & -K);  // divides K and B
    case QuantFormat::INT4: return B;
    case QuantFormat::NVFP4: case QuantFormat::Q6_K: case QuantFormat::Q3_K: case QuantFormat::Q2_K: return 16;
    case QuantFormat::MXFP4: case QuantFormat::Q4_0: case QuantFormat::Q5_0: case QuantFormat::Q8_0:
    case QuantFormat::Q4_K: case QuantFormat::Q4_1: case QuantFormat::Q5_1: case QuantFormat::Q5_K: return 32;
    default: return kp;
  }
}

}  // namespace

size_t upload_bytes(const QuantWeight& q) {
  const int64_t N = q.rows, K = q.cols, B = q.params.blocksize;
  const bool bnb = q.format == QuantFormat::NF4 || q.format == QuantFormat::FP4;
  if (bnb && K % 16 != 0) {
    const int64_t n = N * K;
    return size_t((n + 1) / 2 + (n + B - 1) / B * 4);
  }
  const FormatDesc d = format_desc(q.format);
  const int64_t kp = padded_cols(d.bits, K);
  const int64_t block = scale_block(q, kp);
  const int64_t nbr = (kp + block - 1) / block;
  int64_t scale_bytes = 0;
  switch (d.scale) {
    case ScaleKind::None: break;
    case ScaleKind::F32: scale_bytes = 4; break;
    case ScaleKind::F16: case ScaleKind::Q4K: scale_bytes = 2; break;
    case ScaleKind::E4M3: case ScaleKind::E8M0: scale_bytes = 1; break;
    case ScaleKind::F32Min: scale_bytes = 8; break;
  }
  int64_t n = code_rows(d.bits, N) * kp * d.bits / 8 + N * nbr * scale_bytes;
  if (q.format == QuantFormat::INT4) n += N * nbr;                         // zero points
  if (q.format == QuantFormat::Q4_K) n += N * (kp / 256) * 4;              // (d, dmin) per 256
  if (q.format == QuantFormat::INT8 || ((q.format == QuantFormat::FP8_E4M3 || q.format == QuantFormat::FP8_E5M2) &&
                                        q.params.per_channel))
    n += N * 4;                                                            // per-row scales
  return size_t(n);
}

namespace {

int log2_exact(int64_t v) {
  int s = 0;
  while ((int64_t(1) << s) < v) ++s;
  return s;
}

template <class T>
void* upload(CudaQuantWeight& w, int slot, const T* src, size_t count, cudaStream_t s) {
  const size_t bytes = count * sizeof(T);
  void* p = nullptr;
  if (bytes == 0) return nullptr;
  QF_CUDA(cudaMalloc(&p, bytes));
  w.allocs[slot] = p;
  w.alloc_bytes[slot] = bytes;
  w.total_bytes += bytes;
  MemoryAccounting::add(MemDevice::Cuda0, MemCategory::Weights, int64_t(bytes));
  QF_CUDA(cudaMemcpyAsync(p, src, bytes, cudaMemcpyHostToDevice, s));
  return p;
}

// Packs 16 rows of per-element 4-bit codes (rows16[rr * kp + k], zero past the real rows) into the
// row group's kp / 64 mma tiles (layout in cuda_quant_impl.cuh).
void pack_tiles4(const uint8_t* rows16, int64_t kp, bool int_codes, uint8_t* out) {
  for (int64_t kc = 0; kc < kp / 64; ++kc)
    for (int lane = 0; lane < 32; ++lane) {
      const int g = lane >> 2, t = lane & 3;
      uint8_t* o = out + kc * 512 + lane * 16;
      for (int s = 0; s < 4; ++s)
        for (int n = 0; n < 8; n += 2) {
          auto code = [&](int nn) {
            const int i = tile4_elem(nn, int_codes);
            const int64_t r = g + 8 * ((i >> 1) & 1), k = 64 * kc + 16 * s + 2 * t + (i & 1) + 8 * (i >> 2);
            return rows16[r * kp + k];
          };
          o[s * 4 + n / 2] = uint8_t(code(n) | (code(n + 1) << 4));
        }
    }
}

const char* fmt_name(QuantFormat f) { return quant_traits(f).name.data(); }

// Row r of a GGUF weight of N-element blocks B, one byte per element: code(block, j).
template <class B, int N, class Code>
void gguf_block_codes(const uint8_t* data8, int64_t r, int64_t K, uint8_t* row, Code code) {
  for (int64_t b = 0; b < K / N; ++b) {
    B blk;
    std::memcpy(&blk, data8 + (r * (K / N) + b) * int64_t(sizeof(B)), sizeof(B));
    for (int j = 0; j < N; ++j) row[size_t(b * N + j)] = uint8_t(code(blk, j));
  }
}

// Row r of the weight as one code per element (row[k], k < K; the caller zeroes the padding).
void row_codes(const QuantWeight& q, int64_t r, uint8_t* row) {
  const int64_t N = q.rows, K = q.cols;
  const uint8_t* data8 = q.data.data<uint8_t>();
  switch (q.format) {
    case QuantFormat::NF4:
    case QuantFormat::FP4:
      for (int64_t k = 0; k < K; ++k) {
        const int64_t e = r * K + k;
        const uint8_t byte = data8[e >> 1];
        row[size_t(k)] = (e & 1) ? (byte & 15) : (byte >> 4);
      }
      break;
    case QuantFormat::INT8:
    case QuantFormat::FP8_E4M3:
    case QuantFormat::FP8_E5M2: std::memcpy(row, data8 + r * K, size_t(K)); break;
    case QuantFormat::NVFP4:
    case QuantFormat::MXFP4: {
      const int64_t bsz = q.format == QuantFormat::NVFP4 ? 16 : 32, rb = (K + bsz - 1) / bsz * bsz / 2;
      for (int64_t k = 0; k < K; ++k) {
        const uint8_t byte = data8[r * rb + k / 2];
        row[size_t(k)] = (k & 1) ? (byte >> 4) : (byte & 15);
      }
      break;
    }
    case QuantFormat::INT4: {
      const uint32_t* qw = q.data.data<uint32_t>();
      for (int64_t k = 0; k < K; ++k) row[size_t(k)] = uint8_t((qw[(k >> 3) * N + r] >> (4 * (k & 7))) & 15);
      break;
    }
    case QuantFormat::Q4_0:
      for (int64_t b = 0; b < K / 32; ++b) {
        const uint8_t* qs = data8 + (r * (K / 32) + b) * 18 + 2;
        for (int j = 0; j < 16; ++j) {
          row[size_t(b * 32 + j)] = qs[j] & 15;
          row[size_t(b * 32 + j + 16)] = qs[j] >> 4;
        }
      }
      break;
    case QuantFormat::Q8_0:
      for (int64_t b = 0; b < K / 32; ++b) std::memcpy(&row[size_t(b * 32)], data8 + (r * (K / 32) + b) * 34 + 2, 32);
      break;
    // GGUF blocks read through their struct: code(block, j) of each element, as a byte (signed codes wrap).
    case QuantFormat::Q5_0:  // code - 16 (the f16 d per 32 goes to the scales, as for q8_0)
      gguf_block_codes<qd::BlockQ5_0, 32>(data8, r, K, row, [](const auto& b, int j) { return qd::q5_0_code(b, j) - 16; });
      break;
    case QuantFormat::Q6_K:  // code - 32 (d * scales[j] per 16 goes to the f32 scales)
      gguf_block_codes<qd::BlockQ6_K, 256>(data8, r, K, row, [](const auto& b, int j) { return qd::q6_k_code(b, j) - 32; });
      break;
    case QuantFormat::Q3_K:  // value code -4..3 (d * (sc - 32) per 16 goes to the f32 scales)
      gguf_block_codes<qd::BlockQ3_K, 256>(data8, r, K, row, [](const auto& b, int j) { return qd::q3_k_value_code(b, j); });
      break;
    case QuantFormat::Q4_1:  // code 0..15 (d and m per 32 go to the (scale, minimum) pairs)
      gguf_block_codes<qd::BlockQ4_1, 32>(data8, r, K, row,
                                          [](const auto& b, int j) { return j < 16 ? b.qs[j] & 15 : b.qs[j - 16] >> 4; });
      break;
    case QuantFormat::Q5_1:  // code 0..31
      gguf_block_codes<qd::BlockQ5_1, 32>(data8, r, K, row, [](const auto& b, int j) { return qd::q5_1_code(b, j); });
      break;
    case QuantFormat::Q5_K:  // code 0..31 (d * sc and dmin * m per 32 go to the pairs)
      gguf_block_codes<qd::BlockQ5_K, 256>(data8, r, K, row, [](const auto& b, int j) { return qd::q5_k_code(b, j); });
      break;
    case QuantFormat::Q2_K:  // code 0..3 (d * sc and dmin * m per 16 go to the pairs)
      gguf_block_codes<qd::BlockQ2_K, 256>(data8, r, K, row, [](const auto& b, int j) { return qd::k_low2(b.qs, j); });
      break;
    case QuantFormat::Q4_K:
      for (int64_t b = 0; b < K / 256; ++b) {
        const uint8_t* qs = data8 + (r * (K / 256) + b) * 144 + 16;
        for (int jj = 0; jj < 4; ++jj)
          for (int l = 0; l < 32; ++l) {
            row[size_t(b * 256 + jj * 64 + l)] = qs[jj * 32 + l] & 15;
            row[size_t(b * 256 + jj * 64 + 32 + l)] = qs[jj * 32 + l] >> 4;
          }
      }
      break;
    default: throw Error(std::string("cuda quant upload: unsupported format ") + fmt_name(q.format));
  }
}

}  // namespace

std::shared_ptr<CudaQuantWeight> upload_quant_weight(const QuantWeight& q, cudaStream_t s) {
  auto w = std::make_shared<CudaQuantWeight>();
  w->format = q.format;
  w->params = q.params;
  w->rows = q.rows;
  w->cols = q.cols;
  w->desc = format_desc(q.format);
  const int64_t N = q.rows, K = q.cols;
  if (N <= 0 || K <= 0 || N > INT32_MAX || K > INT32_MAX / 2)
    throw Error("cuda quant upload: weight shape [" + std::to_string(N) + ", " + std::to_string(K) + "] unsupported");
  const bool bnb = q.format == QuantFormat::NF4 || q.format == QuantFormat::FP4;
  const int64_t B = q.params.blocksize;

  if (bnb && K % 16 != 0) {
    // Generic path: flat codes as they are, expanded absmax per flat block.
    const int64_t n = N * K, nb = (n + B - 1) / B;
    std::vector<float> am(static_cast<size_t>(nb));
    for (int64_t b = 0; b < nb; ++b) am[size_t(b)] = qd::bnb4_absmax(q, b);
    w->generic = true;
    w->block = int(B);
    w->flat_codes = static_cast<const uint8_t*>(upload(*w, 0, q.data.data<uint8_t>(), size_t((n + 1) / 2), s));
    w->flat_absmax = static_cast<const float*>(upload(*w, 1, am.data(), am.size(), s));
    QF_CUDA(cudaStreamSynchronize(s));
    return w;
  }

  const int bits = w->desc.bits;
  const int64_t kp = padded_cols(bits, K);
  const int64_t n_code_rows = code_rows(bits, N);
  DevQuant& d = w->dev;
  d.rows = int(N);
  d.cols = int(K);
  d.kp = int(kp);
  d.code_row_bytes = kp * bits / 8;
  std::vector<uint8_t> codes(static_cast<size_t>(n_code_rows * d.code_row_bytes));
  std::vector<uint8_t> rows16(bits == 4 ? static_cast<size_t>(16 * kp) : 0);

  // Scales, by format (the vectors that are used get uploaded below).
  std::vector<float> sc32;
  std::vector<float> scmin;  // F32Min: (scale, minimum) per block
  std::vector<uint16_t> sc16;  // f16 bits, or q4_k (sc | m << 8)
  std::vector<uint8_t> sc8, zeros;
  std::vector<__half2> q4kd;
  std::vector<float> row_scale;
  const int64_t block = scale_block(q, kp);  // elements per scale block along k
  const int64_t nbr = (kp + block - 1) / block;  // scale blocks per row

  const uint8_t* data8 = q.data.data<uint8_t>();
  switch (q.format) {
    case QuantFormat::NF4:
    case QuantFormat::FP4: {
      sc32.assign(size_t(N * nbr), 0.f);
      for (int64_t r = 0; r < N; ++r)
        for (int64_t j = 0; j < nbr && j * block < K; ++j) sc32[size_t(r * nbr + j)] = qd::bnb4_absmax(q, (r * K + j * block) / B);
      break;
    }
    case QuantFormat::INT8:
      row_scale.assign(q.scales.data<float>(), q.scales.data<float>() + N);
      d.gscale = 7.874015718698502e-3f;
      break;
    case QuantFormat::FP8_E4M3:
    case QuantFormat::FP8_E5M2:
      if (q.params.per_channel) row_scale.assign(q.scales.data<float>(), q.scales.data<float>() + N);
      else d.gscale = q.scales.data<float>()[0];
      break;
    case QuantFormat::NVFP4:
    case QuantFormat::MXFP4: {
      const int64_t nb0 = (K + block - 1) / block;
      sc8.assign(size_t(N * nbr), q.format == QuantFormat::NVFP4 ? 0 : 127);
      const uint8_t* src = q.scales.data<uint8_t>();
      for (int64_t r = 0; r < N; ++r) std::memcpy(&sc8[size_t(r * nbr)], src + r * nb0, size_t(nb0));
      if (q.format == QuantFormat::NVFP4) d.gscale = q.scales2.data<float>()[0];
      break;
    }
    case QuantFormat::INT4: {
      const int32_t* gi = q.g_idx.data<int32_t>();
      for (int64_t k = 0; k < K; ++k)
        if (gi[k] != k / B)
          throw Error("cuda quant upload: int4 weight with act-order g_idx (column " + std::to_string(k) +
                      " in group " + std::to_string(gi[k]) + ") is not supported on the GPU");
      const int64_t G = (K + B - 1) / B, Nw = (N + 7) / 8;
      const uint16_t* src = q.scales.data<uint16_t>();
      const uint32_t* qz = q.zeros.data<uint32_t>();
      sc16.assign(size_t(N * nbr), 0);
      zeros.assign(size_t(N * nbr), 0);
      for (int64_t r = 0; r < N; ++r)
        for (int64_t g = 0; g < G; ++g) {
          sc16[size_t(r * nbr + g)] = src[g * N + r];
          zeros[size_t(r * nbr + g)] = uint8_t((qz[g * Nw + r / 8] >> (4 * (r % 8))) & 15);
        }
      break;
    }
    case QuantFormat::Q4_0:
    case QuantFormat::Q5_0:
    case QuantFormat::Q8_0: {  // the f16 d leads each block
      const int64_t nb0 = K / 32, bb = int64_t(quant_storage_bytes(q.format, {}, 1, 32));
      sc16.assign(size_t(N * nbr), 0);
      for (int64_t r = 0; r < N; ++r)
        for (int64_t b = 0; b < nb0; ++b) std::memcpy(&sc16[size_t(r * nbr + b)], data8 + (r * nb0 + b) * bb, 2);
      break;
    }
    case QuantFormat::Q4_K: {
      const int64_t ns = K / 256;
      sc16.assign(size_t(N * nbr), 0);
      q4kd.resize(size_t(N * (kp / 256)));
      for (int64_t r = 0; r < N; ++r)
        for (int64_t b = 0; b < ns; ++b) {
          qd::BlockQ4_K blk;
          std::memcpy(&blk, data8 + (r * ns + b) * 144, 144);
          __half_raw hd, hm;
          hd.x = blk.d;
          hm.x = blk.dmin;
          q4kd[size_t(r * (kp / 256) + b)] = __halves2half2(__half(hd), __half(hm));
          for (int j = 0; j < 8; ++j) {
            uint8_t scv, mv;
            qd::q4_k_scale_min(j, blk.scales, scv, mv);
            sc16[size_t(r * nbr + b * 8 + j)] = uint16_t(scv | (mv << 8));
          }
        }
      break;
    }
    case QuantFormat::Q6_K:    // d * scales[j] in f32: exact (11-bit d times an 8-bit integer), as the reference forms it
    case QuantFormat::Q3_K: {  // d * (6-bit scale - 32): exact likewise
      const int64_t ns = K / 256;
      sc32.assign(size_t(N * nbr), 0.f);
      for (int64_t r = 0; r < N; ++r)
        for (int64_t b = 0; b < ns; ++b) {
          float* dst = &sc32[size_t(r * nbr + b * 16)];
          if (q.format == QuantFormat::Q6_K) {
            qd::BlockQ6_K blk;
            std::memcpy(&blk, data8 + (r * ns + b) * sizeof(blk), sizeof(blk));
            for (int j = 0; j < 16; ++j) dst[j] = f16_to_f32(blk.d) * float(blk.scales[j]);
          } else {
            qd::BlockQ3_K blk;
            std::memcpy(&blk, data8 + (r * ns + b) * sizeof(blk), sizeof(blk));
            for (int j = 0; j < 16; ++j) dst[j] = f16_to_f32(blk.d) * float(qd::q3_k_scale(blk.scales, j));
          }
        }
      break;
    }
    // (scale, minimum) pairs, value = scale * code - minimum, each formed as the reference's dequantizer
    // forms it (d * sc and dmin * m are exact in f32; q4_1 / q5_1's + m is - (-m)).
    case QuantFormat::Q4_1:
    case QuantFormat::Q5_1: {
      const int64_t nb0 = K / 32, bb = int64_t(quant_storage_bytes(q.format, {}, 1, 32));
      scmin.assign(size_t(2 * N * nbr), 0.f);
      for (int64_t r = 0; r < N; ++r)
        for (int64_t b = 0; b < nb0; ++b) {
          uint16_t dm[2];
          std::memcpy(dm, data8 + (r * nb0 + b) * bb, 4);  // both blocks lead with f16 d, m
          scmin[size_t(2 * (r * nbr + b))] = f16_to_f32(dm[0]);
          scmin[size_t(2 * (r * nbr + b) + 1)] = -f16_to_f32(dm[1]);
        }
      break;
    }
    case QuantFormat::Q5_K:
    case QuantFormat::Q2_K: {
      const int64_t per = 256 / block, ns = K / 256;
      scmin.assign(size_t(2 * N * nbr), 0.f);
      for (int64_t r = 0; r < N; ++r)
        for (int64_t b = 0; b < ns; ++b) {
          float* dst = &scmin[size_t(2 * (r * nbr + b * per))];
          if (q.format == QuantFormat::Q5_K) {
            qd::BlockQ5_K blk;
            std::memcpy(&blk, data8 + (r * ns + b) * sizeof(blk), sizeof(blk));
            for (int j = 0; j < 8; ++j) {
              uint8_t scv, mv;
              qd::q4_k_scale_min(j, blk.scales, scv, mv);
              dst[2 * j] = f16_to_f32(blk.d) * float(scv);
              dst[2 * j + 1] = f16_to_f32(blk.dmin) * float(mv);
            }
          } else {
            qd::BlockQ2_K blk;
            std::memcpy(&blk, data8 + (r * ns + b) * sizeof(blk), sizeof(blk));
            for (int j = 0; j < 16; ++j) {
              dst[2 * j] = f16_to_f32(blk.d) * float(blk.scales[j] & 15);
              dst[2 * j + 1] = f16_to_f32(blk.dmin) * float(blk.scales[j] >> 4);
            }
          }
        }
      break;
    }
    default: break;
  }

  // Codes: one row at a time as per-element codes, straight into place (8-bit, row-major; `codes` starts
  // zeroed, so the padding is zero) or into the group's 16-row buffer, packed into mma tiles when the
  // group is complete (4-bit; padding rows of the last group stay zero).
  for (int64_t r = 0; r < n_code_rows; ++r) {
    uint8_t* row = bits == 8 ? &codes[size_t(r * d.code_row_bytes)] : &rows16[size_t((r & 15) * kp)];
    if (bits == 4) std::fill(row, row + kp, uint8_t(0));  // the buffer holds the previous group's rows
    if (r < N) row_codes(q, r, row);
    if (bits == 4 && (r & 15) == 15)
      pack_tiles4(rows16.data(), kp, w->desc.int_codes, &codes[size_t((r >> 4) * 16 * d.code_row_bytes)]);
  }

  d.codes = static_cast<const uint8_t*>(upload(*w, 0, codes.data(), codes.size(), s));
  d.sc_shift = log2_exact(block);
  d.sc_row = int(nbr);
  if (!sc32.empty()) d.sc = upload(*w, 1, sc32.data(), sc32.size(), s);
  if (!scmin.empty()) d.sc = upload(*w, 1, scmin.data(), scmin.size(), s);
  if (!sc16.empty()) d.sc = upload(*w, 1, sc16.data(), sc16.size(), s);
  if (!sc8.empty()) d.sc = upload(*w, 1, sc8.data(), sc8.size(), s);
  if (!zeros.empty()) d.zeros = static_cast<const uint8_t*>(upload(*w, 2, zeros.data(), zeros.size(), s));
  if (!q4kd.empty()) d.q4k_d = static_cast<const __half2*>(upload(*w, 3, q4kd.data(), q4kd.size(), s));
  if (!row_scale.empty()) d.row_scale = static_cast<const float*>(upload(*w, 4, row_scale.data(), row_scale.size(), s));
  QF_CUDA(cudaStreamSynchronize(s));  // the host vectors die here
  return w;
}

}  // namespace qforge::cuda
