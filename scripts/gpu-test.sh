#!/usr/bin/env bash
# scripts/gpu-test.sh — the GPU check on a machine with an NVIDIA GPU. Builds nothing: given a
# directory holding the `qforge` and `qforge_gpu_tests` binaries (built elsewhere with
# -DQFORGE_CUDA=ON), runs the GPU test suite, compute-sanitizer (memcheck) on a short subset, and
# the benchmarks (TinyLlama-1.1B and Llama-3-8B shapes, random bf16 weights, prompt 512 + 128
# decode steps; prefill of 2,048), printing a compact table with % of the measured roofline.
#
# usage: scripts/gpu-test.sh BIN_DIR [SOURCE_DIR] [LOG_DIR]
#   SOURCE_DIR  repository root holding models/ and benches/ (default: this script's repo)
#   LOG_DIR     where logs go (default: ./gpu-test-logs)
#   env SKIP_SANITIZER=1, SKIP_BENCH=1, SKIP_8B=1 to leave parts out; STEP_TIMEOUT (s, default 600)
#   bounds each step.
set -u
BIN=${1:?usage: gpu-test.sh BIN_DIR [SOURCE_DIR] [LOG_DIR]}
SRC=${2:-$(cd "$(dirname "$0")/.." && pwd)}
LOG=${3:-./gpu-test-logs}
mkdir -p "$LOG"
export QFORGE_SOURCE_DIR=$SRC QFORGE_BINARY=$(cd "$BIN" && pwd)/qforge
status=0

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$LOG/gpu.txt"

echo "== GPU tests"
timeout "${STEP_TIMEOUT:-600}" "$BIN/qforge_gpu_tests" --gtest_brief=1 >"$LOG/gpu_tests.log" 2>&1 || status=1
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED|tests? ran|gpu |_gb_s=|tflops|GPU free" "$LOG/gpu_tests.log" | head -40
BW=$(sed -n 's/^gpu_copy_bandwidth_gb_s=//p' "$LOG/gpu_tests.log" | head -1)
TF_TINY=$(sed -n 's/^cublas_bf16_tflops_tinyllama=//p' "$LOG/gpu_tests.log" | head -1)
TF_8B=$(sed -n 's/^cublas_bf16_tflops_llama3_8b=//p' "$LOG/gpu_tests.log" | head -1)

SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [ -z "${SKIP_SANITIZER:-}" ] && [ -x "$SAN" ]; then
  echo "== compute-sanitizer (memcheck) on a subset"
  timeout "${STEP_TIMEOUT:-600}" "$SAN" --tool memcheck --leak-check full --error-exitcode 9 "$BIN/qforge_gpu_tests" \
    --gtest_filter='CudaEmbed.*:CudaAttention.*:CudaLinear.MatchesRef/1:CudaLinear.MatchesRef/100:CudaGolden.Float32LogitsPrompt0Within2e3:CudaModel.BadToken*:QuantGpu.GemvSeveralWeightsOneLaunch:QuantGpu.GemvLargeInputStagedInGlobalMemory:QuantGpu.GemvEightBitLongRows' \
    >"$LOG/sanitizer.log" 2>&1
  rc=$?
  tail -3 "$LOG/sanitizer.log"
  [ $rc -eq 0 ] && echo "compute-sanitizer: clean" || { echo "compute-sanitizer: exit $rc"; status=1; }
fi

bench() {  # name config extra-args...
  local name=$1 cfg=$2; shift 2
  timeout "${STEP_TIMEOUT:-600}" "$BIN/qforge" bench --random-weights "$SRC/benches/configs/$cfg" --dtype bf16 --device cuda --no-bandwidth --json "$@" \
    >"$LOG/bench_$name.log" 2>&1 || { echo "bench $name failed: $(tail -2 "$LOG/bench_$name.log")"; status=1; return; }
  tail -1 "$LOG/bench_$name.log" >"$LOG/bench_$name.json"
}
if [ -z "${SKIP_BENCH:-}" ]; then
  echo "== benchmarks (bf16, random weights)"
  bench tiny_decode tinyllama-1.1b.json --prompt-len 512 --gen 128 --repeats 2
  bench tiny_prefill tinyllama-1.1b.json --prompt-len 2047 --gen 1 --repeats 3  # max_position_embeddings 2048; best of 3
  if [ -z "${SKIP_8B:-}" ]; then
    bench 8b_decode llama-3-8b.json --prompt-len 512 --gen 128 --repeats 2
    bench 8b_prefill llama-3-8b.json --prompt-len 2048 --gen 1 --repeats 3
  fi
  python3 - "$LOG" "${BW:-0}" "${TF_TINY:-0}" "${TF_8B:-0}" <<'PY'
import json, os, sys
log, bw, tf_tiny, tf_8b = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
def load(n):
    p = os.path.join(log, f"bench_{n}.json")
    try: return json.load(open(p))
    except Exception: return None
print(f"copy bandwidth {bw:.0f} GB/s; cuBLAS bf16 {tf_tiny:.0f} / {tf_8b:.0f} TFLOP/s (TinyLlama / 8B MLP shapes)")
print(f"{'model':<12}{'decode tok/s':>13}{'GB/s':>8}{'roofline':>10}{'prefill tok/s':>15}{'TFLOP/s':>9}{'of cuBLAS':>11}")
for name, tf in (("tiny", tf_tiny), ("8b", tf_8b)):
    d, p = load(name + "_decode"), load(name + "_prefill")
    if not d and not p: continue
    row = f"{name:<12}"
    if d:
        gbs = d["weight_bytes_per_token"] * d["decode_tokens_per_s"] / 1e9
        row += f"{d['decode_tokens_per_s']:>13.1f}{gbs:>8.0f}{(100*gbs/bw if bw else 0):>9.0f}%"
    else: row += " " * 31
    if p:
        params = p["weight_bytes_per_token"] / 2  # bf16
        tflops = 2 * params * p["prefill_tokens_per_s"] / 1e12
        row += f"{p['prefill_tokens_per_s']:>15.0f}{tflops:>9.0f}{(100*tflops/tf if tf else 0):>10.0f}%"
    print(row)
PY
fi
exit $status
