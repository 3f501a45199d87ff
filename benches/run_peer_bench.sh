#!/usr/bin/env bash
# benches/run_peer_bench.sh — qforge vs llama.cpp on the CPU, on the same GGUF files, in one run.
# Installs the npm package @node-llama-cpp/linux-x64 (prebuilt llama.cpp CPU libraries) into a cache
# folder, takes llama.h/ggml headers of the same llama.cpp release from the node-llama-cpp package's
# bundled git release (npm pack), compiles benches/llama_cpp/{llama,qforge}_driver.cpp and runs
# benches/llama_cpp/peer_bench.mjs, which writes docs/peer-bench.md. Nothing installed is committed.
# Usage: benches/run_peer_bench.sh [roundtrip|quality|speed|all] (default all). Env: THREADS (2),
# RUNS (3), PROMPT_LEN (128), GEN (32), MODELS (demo,tinyllama), QFORGE_BUILD (build), PEER_CACHE.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${PEER_CACHE:-$root/.cache/peer-bench}"
build="${QFORGE_BUILD:-$root/build}"
mkdir -p "$cache"
command -v npm >/dev/null || { echo "run_peer_bench: npm is not installed" >&2; exit 1; }
[ -f "$build/libqforge.a" ] || { echo "run_peer_bench: $build/libqforge.a missing (build qforge first)" >&2; exit 1; }

# 1. llama.cpp libraries (npm) and headers (the llama.cpp git bundle inside the node-llama-cpp package).
if ! cmp -s "$root/benches/llama_cpp/package.json" "$cache/package.json"; then
  cp "$root/benches/llama_cpp/package.json" "$cache/package.json"
  (cd "$cache" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
fi
bins="$cache/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"
version="$(node -p "require('$cache/node_modules/@node-llama-cpp/linux-x64/package.json').version")"
if [ ! -f "$cache/llama.cpp-$version/include/llama.h" ]; then
  rm -rf "$cache/pack" && mkdir -p "$cache/pack"
  (cd "$cache/pack" && npm pack "node-llama-cpp@$version" --loglevel=error >/dev/null && tar xzf node-llama-cpp-*.tgz package/llama/gitRelease.bundle)
  rm -rf "$cache/llama.cpp-$version"
  git clone -q "$cache/pack/package/llama/gitRelease.bundle" "$cache/llama.cpp-$version"
fi
src="$cache/llama.cpp-$version"
lib_llama="$(ls "$bins"/libllama.*so | head -1)"
lib_ggml="$(ls "$bins"/libggml.*so | head -1)"
lib_ggml_base="$(ls "$bins"/libggml-base*.so | head -1)"

# 2. Drivers.
g++ -O2 -std=c++17 -I"$src/include" -I"$src/ggml/include" "$root/benches/llama_cpp/llama_driver.cpp" \
  "$lib_llama" "$lib_ggml" "$lib_ggml_base" -Wl,-rpath,"$bins" -o "$cache/llama_driver"
g++ -O2 -std=c++20 -I"$root/include" -I"$root/src" "$root/benches/llama_cpp/qforge_driver.cpp" "$build/libqforge.a" \
  -lpcre2-8 -lutf8proc -lpthread -o "$cache/qforge_driver"

# 3. The benchmark (both engines, one process at a time).
export LLAMA_BACKEND_DIR="$bins"
exec node "$root/benches/llama_cpp/peer_bench.mjs" --root "$root" --cache "$cache" --build "$build" \
  --llama-version "$version" "${1:-all}"
