#!/usr/bin/env bash
# scripts/gpu-bench-quant.sh — decode/prefill benchmarks of every weight format on a GPU machine:
# random TinyLlama-1.1B and Llama-3-8B shapes, prompt 512 + 128 greedy decode steps, batch 1,
# printing tok/s, GB/s and % of the device-to-device copy bandwidth measured in the same run.
# usage: scripts/gpu-bench-quant.sh BIN_DIR [LOG_DIR] [FORMATS...]   (env SHAPES="tinyllama-1.1b llama-3-8b")
set -u
BIN=${1:?usage: gpu-bench-quant.sh BIN_DIR [LOG_DIR] [FORMATS...]}
LOG=${2:-./gpu-bench-logs}
shift 2 || shift $#
FORMATS=${*:-bf16 nf4 nf4-dq int8 fp8 nvfp4}
SRC=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$LOG"
printf "%-16s %-7s %12s %9s %9s %14s\n" shape format "decode tok/s" "GB/s" roofline "prefill tok/s"
for shape in ${SHAPES:-tinyllama-1.1b llama-3-8b}; do
  for f in $FORMATS; do
    args=(--dtype bf16)
    case $f in
      bf16) ;;
      nf4-dq) args+=(--quant nf4 --double-quant) ;;
      *) args+=(--quant "$f") ;;
    esac
    out="$LOG/bench_${shape}_$f.json"
    if timeout 300 "$BIN/qforge" bench --random-weights "$SRC/benches/configs/$shape.json" --device cuda "${args[@]}" \
        --prompt-len 512 --gen 128 --repeats 2 --json >"$LOG/bench_${shape}_$f.log" 2>&1; then
      tail -1 "$LOG/bench_${shape}_$f.log" >"$out"
      python3 -c "import json,sys; d=json.load(open('$out')); print('%-16s %-7s %12.1f %9.0f %8.0f%% %14.0f' % ('$shape','$f',d['decode_tokens_per_s'],d['achieved_gb_per_s'],100*d['roofline_fraction'],d['prefill_tokens_per_s']))"
    else
      echo "$shape $f FAILED: $(tail -2 "$LOG/bench_${shape}_$f.log")"
    fi
  done
done
