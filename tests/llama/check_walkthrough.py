#!/usr/bin/env python3
"""Checks what launch/llama_walkthrough.sh exported, by PEFT's documented semantics.

    check_walkthrough.py WORK [LORA_DIST]   # the walk-through's folder (out/hf_llama), the binary

- peft/adapter_config.json holds only keys PEFT 0.10's LoraConfig accepts, peft_type LORA,
  task_type CAUSAL_LM, base_model_name_or_path the base folder, fan_in_fan_out false, and
  target_modules the run's modules;
- every module PEFT would wrap, base_model.model.<module>.lora_A/lora_B.weight, with
  W' = W + (lora_alpha / r) B A (sqrt(r) with use_rslora), equals the tensor of the same name
  in merged/ (lora_dist export --merged) to float32 rounding; every other tensor is unchanged;
- merged/config.json is the base folder's (torch_dtype aside), so transformers and
  model.init: hf load it as the same architecture;
- with LORA_DIST, `lora_dist analyze` of the trained adapter.h5 and of its PEFT export gives,
  for every layer and target, the same amplification figures on the Llama base weights
  (q, k, v, o: the row blocks of the fused qkv tensor), and phi(A, A') = 1 on the diagonal.
"""
import json
import math
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hf"))
import gpt2_folder as g  # noqa: E402  (read_safetensors)

# LoraConfig's fields in PEFT 0.10 (peft/tuners/lora/config.py), and PeftConfig's.
PEFT_0_10_KEYS = {
    "peft_type", "task_type", "base_model_name_or_path", "revision", "inference_mode", "auto_mapping", "r",
    "target_modules", "lora_alpha", "lora_dropout", "fan_in_fan_out", "bias", "use_rslora", "modules_to_save",
    "init_lora_weights", "layers_to_transform", "layers_pattern", "rank_pattern", "alpha_pattern",
    "megatron_config", "megatron_core", "loftq_config", "use_dora", "layer_replication"}


def tensors(path):
    _, t = g.read_safetensors(path)
    return {k: v for k, (_, v) in t.items()}


def main():
    work = sys.argv[1]
    failures = []
    cfg = json.load(open(os.path.join(work, "peft", "adapter_config.json")))
    unknown = set(cfg) - PEFT_0_10_KEYS
    if unknown:
        failures.append(f"adapter_config.json: keys PEFT 0.10 rejects: {sorted(unknown)}")
    for key, want in (("peft_type", "LORA"), ("task_type", "CAUSAL_LM"), ("fan_in_fan_out", False),
                      ("base_model_name_or_path", os.path.join(work, "llama"))):
        if cfg.get(key) != want:
            failures.append(f"adapter_config.json: {key} is {cfg.get(key)!r}, expected {want!r}")
    r, alpha = cfg["r"], cfg["lora_alpha"]
    scale = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
    base = tensors(os.path.join(work, "llama", "model.safetensors"))
    merged = tensors(os.path.join(work, "merged", "model.safetensors"))
    adapter = tensors(os.path.join(work, "peft", "adapter_model.safetensors"))
    if set(base) != set(merged):
        failures.append(f"merged/ holds other tensors than the base: {sorted(set(base) ^ set(merged))[:6]}")
    wrapped = set()
    for key in adapter:
        if not key.endswith(".lora_A.weight"):
            continue
        module = key[len("base_model.model."):-len(".lora_A.weight")]
        if module.split(".")[-1] not in cfg["target_modules"]:
            failures.append(f"{key}: module not in target_modules {cfg['target_modules']}")
        A, B = adapter[key], adapter[key.replace("lora_A", "lora_B")]
        W = base[module + ".weight"]
        want = W + scale * B @ A
        err = np.abs(merged[module + ".weight"] - want).max() / np.abs(want).max()
        if not err < 1e-6:
            failures.append(f"{module}.weight: merged differs from W + s B A by {err:.2e} (relative)")
        if np.abs(B @ A).max() == 0:
            failures.append(f"{module}: B A is zero: the adapter learned nothing")
        wrapped.add(module + ".weight")
    for name in set(base) - wrapped:
        if name in merged and not np.array_equal(base[name], merged[name]):
            failures.append(f"{name}: no LoRA pair, yet merged/ changed it")
    layers = json.load(open(os.path.join(work, "llama", "config.json")))["num_hidden_layers"]
    if len(wrapped) != layers * len(cfg["target_modules"]):
        failures.append(f"{len(wrapped)} wrapped modules, expected {layers} layers x {len(cfg['target_modules'])} targets")
    src = json.load(open(os.path.join(work, "llama", "config.json")))
    out = json.load(open(os.path.join(work, "merged", "config.json")))
    src.pop("torch_dtype", None), out.pop("torch_dtype", None)
    if src != out:
        failures.append(f"merged/config.json differs from the base's: {set(src.items()) ^ set(out.items())}")
    if len(sys.argv) > 2:
        out = os.path.join(work, "analyze.json")
        cmd = [sys.argv[2], "analyze", "--yaml", os.path.join(work, "run.yaml"), "--adapter",
               os.path.join(work, "run", "adapter.h5"), "--adapter", os.path.join(work, "peft"), "--json", out]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            failures.append(f"{' '.join(cmd)}: exit {p.returncode}\n{p.stderr}")
        else:
            rep = json.load(open(out))
            amp = {}
            for row in rep["amplification"]:
                amp.setdefault((row["layer"], row["module"]), {})[row["adapter"]] = (row["w_norm"], row["delta_norm"])
            want = {(l, m) for l in range(layers) for m in ("q", "k", "v", "o")}
            if set(amp) != want:
                failures.append(f"analyze: rows for {sorted(amp)}, expected {sorted(want)}")
            for key, by in amp.items():
                if by.get(1) is None or by.get(1) != by.get(2) or not by[1][1] > 0:
                    failures.append(f"analyze {key}: adapter.h5 and its PEFT export differ or dW is zero: {by}")
            for s in rep["similarity"]:
                diag = [s["phi"][i][i] for i in range(len(s["phi"]))]
                if min(diag) < 1 - 1e-9:
                    failures.append(f"analyze phi layer {s['layer']} {s['module']}: diagonal {min(diag)} < 1")
    if failures:
        sys.exit("FAIL:\n  " + "\n  ".join(failures))
    print(f"PASS: {len(wrapped)} modules merged as PEFT's W + {scale:g} B A (r {r}, lora_alpha {alpha}); "
          f"{len(base) - len(wrapped)} other tensors unchanged; adapter_config.json keys all PEFT 0.10's"
          + ("; analyze: adapter.h5 and the PEFT export agree on every layer and target" if len(sys.argv) > 2 else ""))


if __name__ == "__main__":
    main()
