#!/bin/sh
# Builds (once) and runs one libFuzzer target for a bounded time; used by tests/fuzz.cmake.
#   run_fuzzer.sh build BUILD_DIR            configure + build tests/fuzz with clang-14
#   run_fuzzer.sh run BUILD_DIR TARGET SECONDS   e.g. run build/fuzz token_shard 60
# TARGET is token_shard or config: binary fuzz_TARGET, seed corpus tests/fuzz/corpus/TARGET.
# New corpus entries go to BUILD_DIR/corpus/TARGET (kept between runs), a crash, timeout
# or out-of-memory input to BUILD_DIR/artifacts/ -- the message says where, and that it
# belongs in tests/fuzz/corpus/TARGET/ once the bug is fixed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
mode=$1 dir=$2
if ! command -v clang++-14 >/dev/null 2>&1 || ! command -v clang-14 >/dev/null 2>&1; then
  echo "fuzz: clang-14 / clang++-14 not found. The fuzz targets need clang's libFuzzer: run" \
       "launch/install_deps.sh as root (Debian packages clang-14 and libclang-rt-14-dev); CI installs them." >&2
  exit 1
fi
case $mode in
  build)
    CC=clang-14 CXX=clang++-14 cmake -S "$here" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo || {
      echo "fuzz: configuring tests/fuzz failed; is libclang-rt-14-dev installed (launch/install_deps.sh)?" >&2; exit 1; }
    cmake --build "$dir" -j2
    ;;
  run)
    target=$3 seconds=$4
    bin="$dir/fuzz_$target"
    [ -x "$bin" ] || { echo "fuzz: $bin missing: run the fuzz.build test (or run_fuzzer.sh build $dir) first" >&2; exit 1; }
    mkdir -p "$dir/corpus/$target" "$dir/artifacts"
    "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="$dir/artifacts/$target-" "$dir/corpus/$target" "$here/corpus/$target"
    rc=$?
    if [ $rc -ne 0 ]; then
      echo "fuzz: $target FOUND A PROBLEM (libFuzzer exit $rc). Reproducer(s):" >&2
      ls -l "$dir/artifacts/$target-"* >&2 2>/dev/null
      echo "fuzz: replay with: $bin <file>; once fixed, copy the file into tests/fuzz/corpus/$target/" >&2
    fi
    exit $rc
    ;;
  *) echo "usage: $0 build DIR | run DIR TARGET SECONDS" >&2; exit 2 ;;
esac
