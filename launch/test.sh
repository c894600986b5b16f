#!/usr/bin/env bash
# Installs, builds, and runs the whole test suite (unit, PyTorch reference, MPI,
# checkpoint, Slurm). CI runs exactly this (.ci/run).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/launch/build.sh"
cd "$repo/build"
ctest --output-on-failure -j2 --timeout 900
