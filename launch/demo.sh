#!/usr/bin/env bash
# Installs, builds, and fine-tunes the shipped demo model on 4 MPI ranks (tp 2 x dp 2)
# with the data in data/: the eval loss falls from about 6.0 to about 3.0 in 300 steps.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/launch/build.sh"
exec bash "$repo/launch/mpirun.sh" -n 4 "$repo/launch/examples/demo.yaml"
