#!/usr/bin/env bash
# Installs the Debian packages the build needs (idempotent) and builds the
# project in Release mode into ./build.
#
#   launch/setup.sh            install what is missing, then build
#   launch/setup.sh --deps     install only
#
# LibTorch's float32 matrix products go through whatever libblas.so.3 points
# to. A fresh Debian machine points it at the reference BLAS (about 35x slower),
# so the OpenMP build of OpenBLAS is installed. The pthread build is left out on
# purpose: it ignores LibTorch's thread count and wins the alternatives priority.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
packages=(
    build-essential cmake pkg-config git ccache procps curl ca-certificates
    libtorch-dev libopenblas0-openmp
    libopenmpi-dev openmpi-bin
    libhdf5-dev libyaml-cpp-dev libfmt-dev
    libgtest-dev libgmock-dev libbenchmark-dev
    libpng-dev libjpeg-dev libpcre2-dev
    libcli11-dev nlohmann-json3-dev zlib1g-dev
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    sudo_cmd=()
    [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if dpkg-query -W -f='${Status}' libopenblas0-pthread 2>/dev/null | grep -q "install ok installed"; then
    echo "setup: warning: libopenblas0-pthread is installed; it ignores LibTorch's thread" \
         "count. Remove it for correct thread control." >&2
fi

[[ "${1:-}" == "--deps" ]] && exit 0

jobs=$(nproc)
cmake -S "$here" -B "$here/build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
cmake --build "$here/build" -j "$jobs"
