#!/usr/bin/env bash
# Packs what the GPU machine of the device tool needs to build nothing and run everything
# (issue 14): lora_dist, the CUDA backend plugin liblora_cuda.so, the GPU test binaries
# (cuda_op_tests, cuda_model_tests, nccl_tests), every shared library they load but the C/C++
# runtimes and CUDA's own (cudart, cuBLAS, NCCL: the GPU image has them, from its toolkit or
# pip wheels), and Open MPI's runtime (orted, mpirun, its components and help files, PMIx),
# which the image lacks: lora_dist is an MPI program even on one rank. Open MPI is relocated
# with OPAL_PREFIX (launch/gpu/device_check.sh), so its tree keeps Debian's layout under usr/.
# Written to .gpu_carry/bundle.tar.xz (git-ignored; name the folder in the tool's `carry`):
# xz, because the tool carries at most 64 MiB and oneDNN + OpenBLAS alone are 73 MiB.
#   bash launch/gpu/pack.sh            # configures and builds build-gpu/ (about 8 min on 2 cores)
#   BUILD=build-other bash launch/gpu/pack.sh
# The build is for any x86-64-v3 host (AVX2, FMA), not -march=native: the GPU machine's CPU is
# not this one's.
# Then: run(command="bash launch/gpu/device_check.sh", carry=[".gpu_carry"], timeout_s=540).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BUILD:-$repo/build-gpu}
case $build in /*) ;; *) build=$repo/$build ;; esac
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLORA_WITH_CUDA=ON -DLORA_NATIVE=OFF \
  -DCMAKE_CXX_FLAGS=-march=x86-64-v3 > /dev/null
cmake --build "$build" --target lora_dist lora_cuda cuda_op_tests cuda_model_tests nccl_tests -j"$(nproc)"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"
cp "$build/lora_dist" "$build/liblora_cuda.so" "$stage/bin/"
cp "$build/tests/cuda_op_tests" "$build/tests/cuda_model_tests" "$build/tests/nccl_tests" "$stage/bin/"

# Open MPI 4.1 and PMIx as Debian installs them, under usr/ (OPAL_PREFIX=<bundle>/usr).
multiarch=lib/x86_64-linux-gnu
mkdir -p "$stage/usr/bin" "$stage/usr/$multiarch" "$stage/usr/share"
cp /usr/bin/orted /usr/bin/orterun "$stage/usr/bin/"
ln -s orterun "$stage/usr/bin/mpirun"
cp -a "/usr/$multiarch/openmpi" "/usr/$multiarch/pmix2" "$stage/usr/$multiarch/"
rm -rf "$stage/usr/$multiarch/openmpi/include"
cp -a /usr/share/openmpi "$stage/usr/share/"
[ -d /usr/share/pmix ] && cp -a /usr/share/pmix "$stage/usr/share/"

# Every library those load (components included), but the system's and CUDA's.
find "$stage" -type f \( -name '*.so*' -o -perm -u+x \) -print0 | xargs -0 ldd 2>/dev/null |
  awk '/=> \//{print $3}' | sort -u |
  grep -v -E '/(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s|libz)\.so|/ld-linux|cuda|cublas|nccl|/openmpi/|/pmix2/' |
  while read -r lib; do cp -Ln "$lib" "$stage/lib/" 2>/dev/null || true; done
mkdir -p "$repo/.gpu_carry"
tar -C "$stage" -cJf "$repo/.gpu_carry/bundle.tar.xz" .
echo "packed: $(ls "$stage/lib" | wc -l) libraries, Open MPI, lora_dist, liblora_cuda.so and the GPU tests" \
     "-> .gpu_carry/bundle.tar.xz ($(du -h "$repo/.gpu_carry/bundle.tar.xz" | cut -f1))"
