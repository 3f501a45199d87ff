#!/usr/bin/env bash
# Runs every test: builds, then ctest (unit, golden, e2e suites; GPU tests skip without a GPU),
# then a short libFuzzer smoke run of the parsers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
(cd build && ctest --output-on-failure -j"$(nproc)" --timeout 900)
if [ -x scripts/fuzz-smoke.sh ] || [ -f scripts/fuzz-smoke.sh ]; then bash scripts/fuzz-smoke.sh; fi
