#!/usr/bin/env python3
"""Bytes each TP rank reads from a GPT-2 124M-shaped HF folder (issue 12, point 1).

    measure_read_bytes.py --driver build/tests/hf_logits_driver --work /tmp/gpt2_124m [--dtype F32]

Writes a random GPT2LMHeadModel-shaped model.safetensors (12 layers, 12 heads, d 768,
vocabulary 50257, 1024 positions; "transformer." prefix, as transformers saves it), loads it
with hf_logits_driver at tp 1, 2 and 4 and prints, per rank, the tensor bytes copied and the
distinct 4 KiB file pages they lie in (io/hf_base_weights.h), and the load's wall time.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt2_folder as g  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--dtype", default="F32", choices=["F32", "BF16", "F16"])
    a = ap.parse_args()
    cfg = g.config_json(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=1024)
    folder = os.path.join(a.work, f"gpt2_124m_{a.dtype}")
    if not os.path.exists(os.path.join(folder, "model.safetensors")):
        import torch
        weights = g.random_gpt2(cfg, seed=1, std=0.02)
        g.write_folder(folder, cfg, weights, dtype=a.dtype, prefix="transformer.")
        del weights, torch
    size = os.path.getsize(os.path.join(folder, "model.safetensors"))
    print(f"{folder}/model.safetensors: {size} bytes ({size / 2**20:.1f} MiB)")
    print("| tp | bytes read per rank | % of the file | 4 KiB pages per rank | load wall time |")
    print("|---|---|---|---|---|")
    for tp in (1, 2, 4):
        work = os.path.join(a.work, f"tp{tp}")
        os.makedirs(work, exist_ok=True)
        with open(os.path.join(work, "run.yaml"), "w") as f:
            f.write(f"model: {{init: hf, path: {folder}}}\ndata: {{train: {os.path.join(work, 'run.yaml')}}}\n"
                    f"train: {{seq_len: 8, batch_size: 1, micro_batch: 1}}\nparallel: {{tp: {tp}}}\n")
        with open(os.path.join(work, "tokens.json"), "w") as f:
            f.write("[]")
        t0 = time.time()
        subprocess.run(["mpirun", "--oversubscribe", "--allow-run-as-root", "-np", str(tp), a.driver,
                        os.path.join(work, "run.yaml"), os.path.join(work, "tokens.json"), work], check=True)
        wall = time.time() - t0
        import json
        r = json.load(open(os.path.join(work, "read.json")))["ranks"]
        b = [x["bytes_read"] for x in r]
        p = [x["pages_touched"] for x in r]
        print(f"| {tp} | {', '.join(f'{x / 2**20:.1f} MiB' for x in b)} | "
              f"{', '.join(f'{100 * x / size:.1f}' for x in b)} | {', '.join(str(x) for x in p)} | {wall:.1f} s |")


if __name__ == "__main__":
    main()
