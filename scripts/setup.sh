#!/usr/bin/env bash
# One command for a fresh Debian 12 machine: install what is missing, build, run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
echo "--- demo: greedy generation from the bundled kjv-llama-14m model"
./build/qforge run --model models/kjv-llama-14m --prompt "Ge1:1" --max-new-tokens 48 --greedy
