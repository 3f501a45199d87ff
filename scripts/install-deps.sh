#!/usr/bin/env bash
# Installs the Debian 12 packages qforge builds with, if any is missing (needs root or sudo).
set -euo pipefail
pkgs=(build-essential cmake ninja-build ccache pkg-config nlohmann-json3-dev libcli11-dev libfmt-dev
      libpcre2-dev libutf8proc-dev libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm (reference tokenizers for the tests): Debian's packages only when no node/npm is
# installed some other way (a node from elsewhere conflicts with Debian's npm).
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
