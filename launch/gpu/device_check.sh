#!/usr/bin/env bash
# Runs on the GPU machine (device tool), from the repository root, after launch/gpu/pack.sh:
# unpacks .gpu_carry/bundle.tar.xz, finds the image's CUDA 13 libraries (cuBLAS, cudart),
# and runs every CUDA-vs-CPU op test. Writes nvidia-smi's view, the log and gtest's XML
# to $OUT (the tool brings them back). Exit status: the tests'.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${OUT:-$repo/out/gpu_check}
mkdir -p "$out"
dir=$(mktemp -d)
tar -xJf "$repo/.gpu_carry/bundle.tar.xz" -C "$dir" || { echo "no bundle: run launch/gpu/pack.sh first"; exit 2; }
# CUDA's libraries: the toolkit's, else the pip wheels' (nvidia-cublas, nvidia-cuda-runtime).
cuda_libs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
         $(python3 -c 'import nvidia, os; p = nvidia.__path__[0]; print(" ".join(os.path.join(p, s, "lib") for s in os.listdir(p)))' 2>/dev/null); do
  [ -e "$d/libcublas.so.13" ] || [ -e "$d/libcudart.so.13" ] && cuda_libs="$cuda_libs:$d"
done
{ date -u; nvidia-smi 2>&1 || echo "nvidia-smi: not available"; } > "$out/device.txt"
echo "CUDA libraries from:${cuda_libs:- (none found)}" | tee -a "$out/device.txt"
export LD_LIBRARY_PATH="$dir/lib${cuda_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$dir/cuda_op_tests" --gtest_output="xml:$out/cuda_op_tests.xml" 2>&1 | tee "$out/cuda_op_tests.log"
exit "${PIPESTATUS[0]}"
