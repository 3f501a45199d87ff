#!/usr/bin/env bash
# benches/gpu/decode_profile.sh — per-kernel GPU time of ONE decode step (batch 1) under Nsight
# Compute: profiles a short `qforge bench` run (prompt 512, 4 decode steps), keeps the kernels of
# the last step (from the last embedding kernel on), and prints time per kernel name and the sum.
# STEP=prefill profiles the prefill of a 2,047-token prompt instead (the longest step of the run).
# ncu serialises kernels, so overlap between kernels (programmatic dependent launch) is not seen:
# the sum is the no-overlap step time; compare it with the bench's ms/token.
# usage: benches/gpu/decode_profile.sh BIN_DIR OUT_DIR CONFIG_JSON [qforge model options...]
set -u
BIN=${1:?usage: decode_profile.sh BIN_DIR OUT_DIR CONFIG_JSON [options]}
OUT=${2:?}
CFG=${3:?}
shift 3
mkdir -p "$OUT"
tag=$(basename "$CFG" .json)_$(echo "$*" | tr -c 'a-zA-Z0-9' '_')
csv="$OUT/ncu_$tag.csv"
STEP=${STEP:-decode}
if [ "$STEP" = prefill ]; then lens=(--prompt-len 2047 --gen 1); else lens=(--prompt-len 512 --gen 4); fi
ncu --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv \
  "$BIN/qforge" bench --random-weights "$CFG" --device cuda "${lens[@]}" --no-bandwidth "$@" \
  >"$csv" 2>"$OUT/ncu_$tag.err"
python3 - "$csv" "$STEP" <<'PY'
import csv, sys, collections
rows = []
with open(sys.argv[1]) as f:
    lines = [l for l in f if l.startswith('"')]
for r in csv.DictReader(lines):
    if r.get("Metric Name") != "gpu__time_duration.sum":
        continue
    unit = r.get("Metric Unit", "")
    v = float(r["Metric Value"].replace(",", ""))
    v = v / 1000.0 if unit in ("nsecond", "ns") else v * 1000.0 if unit in ("msecond", "ms") else v
    rows.append((r["Kernel Name"], v))
starts = [i for i, (n, _) in enumerate(rows) if "embed_kernel" in n]
if sys.argv[2] == "prefill":  # the step with the most GPU time
    segs = [rows[a:b] for a, b in zip(starts, starts[1:] + [len(rows)])]
    step = max(segs, key=lambda s: sum(v for _, v in s))
else:
    step = rows[starts[-1]:]
agg = collections.OrderedDict()
for n, v in step:
    k = n.split("(")[0][:70]
    c, t, mx = agg.get(k, (0, 0.0, 0.0))
    agg[k] = (c + 1, t + v, max(mx, v))
tot = sum(v for _, v in step)
print("kernels in the %s step: %d, sum %.1f us" % (sys.argv[2], len(step), tot))
print("%-70s %5s %9s %8s %8s" % ("kernel", "count", "total us", "avg us", "max us"))
for k, (c, t, mx) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
    print("%-70s %5d %9.1f %8.2f %8.2f" % (k, c, t, t / c, mx))
# First layer in order (names and times), to attribute GEMV calls to q/k/v, o, gate/up, down.
print("first 16 kernels of the step:")
for n, v in step[:16]:
    print("  %8.2f  %s" % (v, n.split("(")[0][:90]))
PY
