#!/usr/bin/env bash
# Packs the CUDA op tests for the GPU machine of the device tool (issue 14): builds
# cuda_op_tests here, then writes .gpu_carry/bundle.tar.xz (the folder is git-ignored; name it
# in the tool's `carry`) holding the binary and every shared library it loads except the C
# and C++ runtimes and CUDA's own (cudart, cuBLAS, NCCL), which the GPU image has in a newer or
# equal version. xz because the tool carries at most 64 MiB, and oneDNN + OpenBLAS are 73 MiB.
#   bash launch/gpu/pack.sh            # uses build/ (launch/build.sh's)
#   BUILD=build-cuda bash launch/gpu/pack.sh
# Then, with the device tool: run(command="bash launch/gpu/device_check.sh", carry=[".gpu_carry"]).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BUILD:-$repo/build}
case $build in /*) ;; *) build=$repo/$build ;; esac
cmake --build "$build" --target cuda_op_tests -j"$(nproc)"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib"
cp "$build/tests/cuda_op_tests" "$stage/"
ldd "$build/tests/cuda_op_tests" | awk '/=> \//{print $3}' |
  grep -v -E '/(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s)\.so|/ld-linux|cuda|cublas|nccl' |
  while read -r lib; do cp -L "$lib" "$stage/lib/"; done
mkdir -p "$repo/.gpu_carry"
tar -C "$stage" -cJf "$repo/.gpu_carry/bundle.tar.xz" .
echo "packed: $(ls "$stage/lib" | wc -l) libraries + cuda_op_tests -> .gpu_carry/bundle.tar.xz ($(du -h "$repo/.gpu_carry/bundle.tar.xz" | cut -f1))"
