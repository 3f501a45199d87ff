// quant/storage_bytes.cpp — quant_storage_bytes(): the bytes a [rows=N out_features, cols=K
// in_features] weight takes in each quantized format, every buffer that is stored included.
// The memory estimator prices models with it, and QuantWeight::storage_bytes() of real quantized
// weights must equal it. Each layout below names the tensors a checkpoint of that format holds
// (specs: /work/shared/specs/bitsandbytes.md §1–§5, fp8-fp4-formats.md §1–§4, §6).
#include <string>

#include "qforge/quant.h"
#include "qforge/status.h"

namespace qforge {

namespace {

size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

size_t round_up(size_t a, size_t m) { return ceil_div(a, m) * m; }

// Blocks of `block` elements along each row (K). ggml requires K to be a multiple of the block
// (qforge's quantizer refuses other K); a ragged K is priced here as if the last block were padded.
size_t row_blocks(int64_t rows, int64_t cols, size_t block) {
  return size_t(rows) * ceil_div(size_t(cols), block);
}

}  // namespace

size_t quant_storage_bytes(QuantFormat f, const QuantParams& p, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0)
    throw Error("quant_storage_bytes: weight shape [" + std::to_string(rows) + ", " + std::to_string(cols) +
                "] must be positive");
  if (p.blocksize < 0) throw Error("quant_storage_bytes: blocksize " + std::to_string(p.blocksize) + " is negative");
  const size_t N = size_t(rows), K = size_t(cols), n = N * K;
  switch (f) {
    case QuantFormat::None:
      throw Error("quant_storage_bytes: format 'none' has no quantized layout (price it by its dtype)");

    case QuantFormat::NF4:
    case QuantFormat::FP4: {
      // bitsandbytes 4-bit (bitsandbytes.md §1.3, §3, §4). Blocks of B run over the FLATTENED weight
      // (they may straddle rows); nb = ceil(N*K / B).
      //   weight                 uint8 [(N*K+1)/2]      two codes per byte
      // plain:
      //   weight.absmax          fp32  [nb]
      // double quant (compress_statistics):
      //   weight.absmax          uint8 [nb]             8-bit codes of absmax - offset
      //   weight.nested_absmax   fp32  [ceil(nb/256)]   absmax of each 256-block of absmax
      //   offset                 fp32  (1)              mean of absmax (nested_offset in the JSON)
      // Not counted: the code tables and metadata that qforge keeps once, as constants, but an HF
      // checkpoint repeats per module: weight.quant_map fp32[16] (64 B), with double quant
      // weight.nested_quant_map fp32[256] (1024 B), and the quant_state JSON blob (~150 B).
      const size_t B = p.blocksize ? size_t(p.blocksize) : 64;
      const size_t nb = ceil_div(n, B);
      const size_t packed = (n + 1) / 2;
      if (p.double_quant) return packed + nb + 4 * ceil_div(nb, 256) + 4;
      return packed + 4 * nb;
    }

    case QuantFormat::INT8:
      // LLM.int8 (bitsandbytes.md §5): weight int8 [N, K] + SCB fp32 [N] (row absmax). The 0-dim
      // U8 `weight_format` marker (1 byte, always 0 = row) is metadata and not counted.
      return n + 4 * N;

    case QuantFormat::FP8_E4M3:
    case QuantFormat::FP8_E5M2:
      // fp8-fp4-formats.md §1.4: weight fp8 [N, K] + weight_scale fp32: one per tensor, or [N, 1]
      // per output channel. Weight-only: no input_scale (static activation scale) is stored.
      return n + 4 * (p.per_channel ? N : 1);

    case QuantFormat::NVFP4:
      // ModelOpt NVFP4 (fp8-fp4-formats.md §3.4), blocks of 16 along each row, K zero-padded to
      // Kp = 16*ceil(K/16): weight uint8 [N, Kp/2], weight_scale e4m3 [N, Kp/16], weight_scale_2 fp32.
      // Weight-only (W4A16): the fp32 input_scale of W4A4 checkpoints is not stored (+4 B if it were).
      return N * round_up(K, 16) / 2 + N * round_up(K, 16) / 16 + 4;

    case QuantFormat::MXFP4:
      // OCP MXFP4 (fp8-fp4-formats.md §4), K zero-padded to Kp = 32*ceil(K/32):
      // codes uint8 [N, Kp/2] + one E8M0 byte per 32 [N, Kp/32].
      return N * round_up(K, 32) / 2 + N * round_up(K, 32) / 32;

    case QuantFormat::INT4: {
      // GPTQ storage, group g along K (default 128):
      //   qweight int32 [ceil(K/8), N]            8 codes per int32 down K
      //   qzeros  int32 [ceil(K/g), ceil(N/8)]    stored for symmetric weights too (all 8)
      //   scales  fp16  [ceil(K/g), N]
      //   g_idx   int32 [K]                       group of each input column
      const size_t g = p.blocksize ? size_t(p.blocksize) : 128;
      const size_t groups = ceil_div(K, g);
      return 4 * ceil_div(K, 8) * N + 4 * groups * ceil_div(N, 8) + 2 * groups * N + 4 * K;
    }

    case QuantFormat::Q4_0:
      // GGUF block_q4_0 {fp16 d; u8 qs[16]} = 18 bytes per 32 weights along each row.
      return 18 * row_blocks(rows, cols, 32);
    case QuantFormat::Q8_0:
      // GGUF block_q8_0 {fp16 d; i8 qs[32]} = 34 bytes per 32 weights along each row.
      return 34 * row_blocks(rows, cols, 32);
    case QuantFormat::Q4_K:
      // GGUF block_q4_K {fp16 d, dmin; u8 scales[12]; u8 qs[128]} = 144 bytes per 256 along each row.
      return 144 * row_blocks(rows, cols, 256);
    case QuantFormat::Q5_0:
      // GGUF block_q5_0 {fp16 d; u8 qh[4]; u8 qs[16]} = 22 bytes per 32 weights along each row.
      return 22 * row_blocks(rows, cols, 32);
    case QuantFormat::Q6_K:
      // GGUF block_q6_K {u8 ql[128], qh[64]; i8 scales[16]; fp16 d} = 210 bytes per 256 along each row.
      return 210 * row_blocks(rows, cols, 256);
    case QuantFormat::Q4_1:
      // GGUF block_q4_1 {fp16 d, m; u8 qs[16]} = 20 bytes per 32 weights along each row.
      return 20 * row_blocks(rows, cols, 32);
    case QuantFormat::Q5_1:
      // GGUF block_q5_1 {fp16 d, m; u8 qh[4]; u8 qs[16]} = 24 bytes per 32 weights along each row.
      return 24 * row_blocks(rows, cols, 32);
    case QuantFormat::Q5_K:
      // GGUF block_q5_K {fp16 d, dmin; u8 scales[12], qh[32], qs[128]} = 176 bytes per 256 along each row.
      return 176 * row_blocks(rows, cols, 256);
    case QuantFormat::Q2_K:
      // GGUF block_q2_K {u8 scales[16], qs[64]; fp16 d, dmin} = 84 bytes per 256 along each row.
      return 84 * row_blocks(rows, cols, 256);
    case QuantFormat::Q3_K:
      // GGUF block_q3_K {u8 hmask[32], qs[64], scales[12]; fp16 d} = 110 bytes per 256 along each row.
      return 110 * row_blocks(rows, cols, 256);

    case QuantFormat::Count:
      break;
  }
  throw Error("quant_storage_bytes: unknown format id " + std::to_string(int(f)));
}

}  // namespace qforge
