#!/usr/bin/env python3
"""Checks `lora_dist bench --data SHARD --json OUT` against the shard itself (tests/cli.cmake):
the scored share bench reports is the shard's loss-mask share counted here with numpy, the model
FLOPs per token leave out the LM head on the unscored positions (4 V d each under LoRA), and the
time bench says was inside GEMM calls is positive and no more than the step.
    check_bench_data.py BENCH_JSON SHARD"""
import json
import sys

import numpy as np


def shard_mask_share(path):
    raw = open(path, "rb").read()
    assert raw[:8] == b"LDTOKENS", path
    token_bytes, vocab, flags = np.frombuffer(raw[12:24], "<u4")
    n = int(np.frombuffer(raw[24:32], "<u8")[0])
    assert flags & 1, f"{path}: no loss mask"
    mask = np.frombuffer(raw, np.uint8, count=n, offset=64 + n * int(token_bytes))
    return float((mask != 0).sum()) / n


def main():
    rec = [json.loads(line) for line in open(sys.argv[1]) if line.strip()][-1]
    share = shard_mask_share(sys.argv[2])
    assert 0 < share < 1, share
    assert abs(rec["scored_share"] - share) < 1e-12, (rec["scored_share"], share)
    assert rec["data"] == sys.argv[2], rec["data"]
    # The anchors' count (trainer/bench/bench.h), with the head's 4 V d only where scored.
    L, d, V, T = rec["n_layer"], rec["d_model"], rec["vocab_size"], rec["seq_len"]
    r, in_out = 4, [(d, d), (d, d), (4 * d, d)]  # tests/cli/bench_tiny.yaml: LoRA r 4 on q, v, fc2
    n_mm = 12 * L * d * d + V * d
    n_lora = L * sum(r * (i + o) for i, o in in_out)
    expected = 4 * n_mm + 6 * n_lora + 12 * L * T * d - (1 - share) * 4 * V * d
    assert abs(rec["model_flop_per_token"] - expected) <= 1e-9 * expected, (rec["model_flop_per_token"], expected)
    assert 0 < rec["gemm_ms"] <= rec["step_ms_mean"] * 1.001, (rec["gemm_ms"], rec["step_ms_mean"])
    assert 0 < rec["lm_head_ms"] < rec["step_ms_mean"], rec
    print(f"bench --data: scored share {share:.4f} as counted here; FLOP/token {expected:.0f}; "
          f"GEMM {rec['gemm_ms']:.2f} of {rec['step_ms_mean']:.2f} ms")


if __name__ == "__main__":
    main()
