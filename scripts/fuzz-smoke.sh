#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (safetensors header, config.json, GGUF) with clang and
# ASan/UBSan into build-fuzz/, then runs each for FUZZ_SECONDS (default 20) from the seed corpus.
# Exits non-zero if a target fails to build or finds a crash (reproducer in build-fuzz/artifacts/).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=build-fuzz
seconds=${FUZZ_SECONDS:-20}

cxx=""
for c in clang++ clang++-14 clang++-15 clang++-16; do
  if command -v "$c" >/dev/null; then cxx=$c; break; fi
done
if [ -z "$cxx" ]; then
  echo "fuzz-smoke: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi

# nlohmann-json: the system include path, else wherever pkg-config/CMake config says it lives.
extra_inc=()
if ! echo '#include <nlohmann/json.hpp>' | "$cxx" -std=c++20 -x c++ -fsyntax-only - 2>/dev/null; then
  if pkg-config --exists nlohmann_json 2>/dev/null; then
    read -r -a extra_inc <<<"$(pkg-config --cflags nlohmann_json)"
  else
    echo "fuzz-smoke: nlohmann/json.hpp not found (apt-get install nlohmann-json3-dev)" >&2
    exit 1
  fi
fi

flags=(-std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
       -fno-sanitize-recover=undefined -I"$root/include" -I"$root/src" "${extra_inc[@]}")
# Library sources the targets need (compiled directly; the rest of libqforge is not pulled in).
lib_sources=(src/core/dtype.cpp src/core/tensor.cpp src/core/memory.cpp src/io/mapped_file.cpp
             src/io/safetensors.cpp src/model/config.cpp src/io/gguf.cpp src/io/gguf_tokenizer.cpp)

mkdir -p "$out/obj" "$out/artifacts"
objs=()
for s in "${lib_sources[@]}"; do
  o="$out/obj/$(echo "$s" | tr / _).o"
  # Rebuild when the source or any header under include/ or src/ is newer than the object.
  if [ ! -f "$o" ] || [ -n "$(find "$s" include src -newer "$o" \( -name '*.h' -o -name "$(basename "$s")" \) -print -quit)" ]; then
    echo "fuzz-smoke: compiling $s"
    "$cxx" "${flags[@]}" -c "$s" -o "$o"
  fi
  objs+=("$o")
done

status=0
for target in safetensors config gguf; do
  src="tests/fuzz/${target}_fuzz.cpp"
  bin="$out/${target}_fuzz"
  echo "fuzz-smoke: building $bin"
  "$cxx" "${flags[@]/fuzzer-no-link/fuzzer}" "$src" "${objs[@]}" -o "$bin"
  # New inputs go to a scratch corpus so that the checked-in seeds stay small.
  mkdir -p "$out/corpus-$target"
  echo "fuzz-smoke: running $bin for ${seconds}s"
  if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
      -dict="tests/fuzz/$target.dict" -artifact_prefix="$out/artifacts/$target-" \
      "$out/corpus-$target" "tests/fuzz/corpus/$target" >"$out/$target.log" 2>&1; then
    echo "fuzz-smoke: ${target}_fuzz FAILED; log: $out/$target.log" >&2
    tail -40 "$out/$target.log" >&2
    status=1
  else
    grep -E "^stat::number_of_executed_units|^#[0-9]+ *DONE" "$out/$target.log" | sed "s/^/fuzz-smoke: $target: /" || true
  fi
done
exit $status
