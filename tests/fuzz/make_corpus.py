#!/usr/bin/env python3
"""Regenerates the seed corpus of the libFuzzer targets (the output is committed):

    python3 tests/fuzz/make_corpus.py

corpus/token_shard/  small shards: valid (uint16 / uint32 tokens, with and without a loss
                     mask) and invalid (bad magic, version, token width, flags, sizes, tokens
                     out of range, mask values), so the fuzzer starts on both sides of each check.
corpus/config/       copies of launch/examples/*.yaml and tests/configs/*.yaml, plus valid
                     tiny configs naming train.bin / val.bin, the shards fuzz_config puts
                     next to the YAML it writes.
Files found by the fuzzers (crash-*, slow-unit-*, oom-*) are kept here as regression
inputs; this script never deletes anything.
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def shard(tokens, vocab, token_bytes=2, mask=None, version=1, flags=None, n_tokens=None, magic=b"LDTOKENS"):
    flags = (1 if mask is not None else 0) if flags is None else flags
    n = len(tokens) if n_tokens is None else n_tokens
    head = magic + struct.pack("<IIIIQ", version, token_bytes, vocab, flags, n)
    head += b"\0" * (64 - len(head))
    fmt = {2: "<H", 4: "<I"}.get(token_bytes, "<H")
    body = b"".join(struct.pack(fmt, t & (0xFFFF if fmt == "<H" else 0xFFFFFFFF)) for t in tokens)
    if mask is not None:
        body += bytes(mask)
    return head + body


def main():
    tok = os.path.join(HERE, "corpus", "token_shard")
    os.makedirs(tok, exist_ok=True)
    t = [(i * 37 + 11) % 100 for i in range(40)]
    m = [i % 2 for i in range(40)]
    cases = {
        "valid_u16.bin": shard(t, 100),
        "valid_u32.bin": shard(t, 100, token_bytes=4),
        "valid_u16_mask.bin": shard(t, 100, mask=m),
        "valid_u32_mask.bin": shard(t, 70000, token_bytes=4, mask=m),
        "valid_two_tokens.bin": shard([1, 2], 3),
        "bad_magic.bin": shard(t, 100, magic=b"LDTOKENZ"),
        "bad_version.bin": shard(t, 100, version=2),
        "bad_token_bytes3.bin": shard(t, 100, token_bytes=3),
        "bad_flags.bin": shard(t, 100, flags=6),
        "bad_one_token.bin": shard([1], 3),
        "bad_token_range.bin": shard(t, 50),
        "bad_mask_value.bin": shard(t, 100, mask=[2] * 40),
        "bad_truncated.bin": shard(t, 100)[:90],
        "bad_huge_n_tokens.bin": shard(t, 100, n_tokens=(1 << 62) + 1),
        "bad_header_only.bin": shard([], 100, n_tokens=0),
        "bad_short.bin": b"LDTOKENS\x01\x00",
    }
    for name, data in cases.items():
        with open(os.path.join(tok, name), "wb") as f:
            f.write(data)

    cfg = os.path.join(HERE, "corpus", "config")
    os.makedirs(cfg, exist_ok=True)
    for folder, prefix in (("launch/examples", "example_"), ("tests/configs", "")):
        src = os.path.join(ROOT, folder)
        for name in sorted(os.listdir(src)):
            if name.endswith(".yaml"):
                shutil.copyfile(os.path.join(src, name), os.path.join(cfg, prefix + name))
    with open(os.path.join(cfg, "valid_tiny.yaml"), "w") as f:
        f.write("model: {n_layer: 1, n_head: 2, d_model: 16, vocab_size: 64, context: 16}\n"
                "lora: {r: 2, alpha: 4, targets: [q, v]}\n"
                "data: {train: train.bin, val: val.bin}\n"
                "train: {steps: 2, batch_size: 2, micro_batch: 1, seq_len: 8}\n"
                "parallel: {tp: 1, dp: 2}\n")
    with open(os.path.join(cfg, "valid_every_key.yaml"), "w") as f:
        f.write("""model:
  n_layer: 2
  n_head: 4
  d_model: 32
  vocab_size: 64
  context: 32
  ln_eps: 1.0e-5
  init: seed
  init_seed: 7
  init_std: 0.02
lora:
  r: 4
  alpha: 8
  rslora: true
  dropout: 0.1
  targets: all
optim:
  lr: 3.0e-3
  weight_decay: 0.01
  beta1: 0.9
  beta2: 0.999
  eps: 1.0e-8
  grad_clip: 1.0
  warmup_steps: 2
  decay: linear
  min_lr_ratio: 0.1
data:
  train: train.bin
  val: val.bin
train:
  steps: 10
  batch_size: 8
  micro_batch: 2
  seq_len: 16
  eval_every: 5
  eval_batches: 2
  log_every: 1
  seed: 3
  threads: 1
parallel:
  tp: 2
  dp: 2
  check_every: 10
checkpoint:
  every: 5
  every_minutes: 0.5
  keep_last: 2
  resume: auto
output:
  dir: out
  metrics: metrics.jsonl
""")


if __name__ == "__main__":
    main()
