"""What the export tests share: the random HF GPT-2's shape, running lora_dist, and checks."""
import subprocess
import sys

import numpy as np

# A random 2-layer HF GPT-2 (tests/hf/gpt2_folder.py), small enough to train in seconds.
SHAPE = {"n_layer": 2, "n_head": 2, "n_embd": 32, "vocab_size": 256, "n_positions": 64}


def run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)


def rel(got, want):
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def check(cond, msg):
    if not cond:
        print("FAIL:", msg)
        sys.exit(1)
