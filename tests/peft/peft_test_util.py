"""What the export tests share: the random HF GPT-2's shape, running lora_dist, and checks."""
import json
import os
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


def refused(cmd, code, *needles, line=0):
    """cmd must exit with `code` and print every needle; prints the refusal's line `line`."""
    r = run(cmd)
    out = r.stdout + r.stderr
    check(r.returncode == code and all(n in out for n in needles),
          f"{cmd}: exit {r.returncode}, expected {code} with {needles}\n{out}")
    print(f"refused (exit {code}): {out.strip().splitlines()[line]}")


def write_peft_own(folder, factors, base, r=4, alpha=8):
    """A LoRA adapter as PEFT itself saves one for GPT-2: one rank-r pair per Conv1D module
    (fan_in_fan_out), `factors` {(layer, "attn.c_attn"): (A [r, in], B [out, r]), ...} of torch
    tensors. Returns `base` (name -> tensor, Conv1D weights [in, out]) with (B A * alpha/r).T
    added to each module's weight: what PEFT's merge gives."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hf"))
    import gpt2_folder
    os.makedirs(folder, exist_ok=True)
    st, merged = {}, dict(base)
    for (l, module), (A, B) in factors.items():
        key = f"base_model.model.transformer.h.{l}.{module}"
        st[key + ".lora_A.weight"], st[key + ".lora_B.weight"] = A, B
        merged[f"h.{l}.{module}.weight"] = base[f"h.{l}.{module}.weight"] + (B @ A * (alpha / r)).T
    gpt2_folder.write_safetensors(os.path.join(folder, "adapter_model.safetensors"), st, "F32")
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha, "lora_dropout": 0.0,
                   "target_modules": sorted({m.split(".")[-1] for _, m in factors}), "fan_in_fan_out": True,
                   "bias": "none"}, f)
    return st, merged
