#!/usr/bin/python3
"""lora_dist against a plain PyTorch implementation of the same GPT-2 + LoRA step.

Makes random base weights (biases and LayerNorm parameters included), a masked token
shard and a run.yaml; runs the C++ reference_driver for a few optimizer steps; then
recomputes every step in PyTorch (fp32) from the same weights, LoRA init and batches, and
compares: loss (rel < 1e-5), LoRA gradients (rel < 1e-4 per tensor, after clipping, and
the pre-clip norm) and the parameters after each AdamW step (rel < 1e-4 per tensor).
With --full, the run is full fine-tuning (lora.enabled: false, the paper's FT baseline) and
the same checks cover every base tensor: the tied token table (LM head and embedding),
positions, LayerNorms, every weight and bias.

    /usr/bin/python3 torch_reference.py --driver build/tests/reference_driver --workdir DIR [--full]
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

CFG = dict(n_layer=2, n_head=4, d_model=32, vocab_size=61, context=16, seq_len=16, batch=4, micro=2,
           r=4, alpha=8.0, targets=["q", "v", "o", "fc1", "fc2"], lr=1e-2, wd=0.01, warmup=1, steps=3,
           clip=0.5, seed=5)
TARGET_SHAPE = {"q": "qkv", "k": "qkv", "v": "qkv", "o": "proj", "fc1": "fc", "fc2": "mproj"}


def base_weights(rng):
    L, d, V, ctx = CFG["n_layer"], CFG["d_model"], CFG["vocab_size"], CFG["context"]
    w = {"wte": rng.normal(0, 0.3, (V, d)), "wpe": rng.normal(0, 0.1, (ctx, d))}
    for l in range(L):
        h = f"h.{l}."
        for ln in ("ln_1", "ln_2"):
            w[h + ln + ".weight"] = 1 + rng.normal(0, 0.1, (1, d))
            w[h + ln + ".bias"] = rng.normal(0, 0.1, (1, d))
        w[h + "attn.qkv.weight"] = rng.normal(0, 0.2, (3 * d, d))
        w[h + "attn.qkv.bias"] = rng.normal(0, 0.1, (3 * d, 1))
        w[h + "attn.proj.weight"] = rng.normal(0, 0.2, (d, d))
        w[h + "attn.proj.bias"] = rng.normal(0, 0.1, (1, d))
        w[h + "mlp.fc.weight"] = rng.normal(0, 0.2, (4 * d, d))
        w[h + "mlp.fc.bias"] = rng.normal(0, 0.1, (4 * d, 1))
        w[h + "mlp.proj.weight"] = rng.normal(0, 0.1, (d, 4 * d))
        w[h + "mlp.proj.bias"] = rng.normal(0, 0.1, (1, d))
    w["ln_f.weight"] = 1 + rng.normal(0, 0.1, (1, d))
    w["ln_f.bias"] = rng.normal(0, 0.1, (1, d))
    return {k: v.astype(np.float32) for k, v in w.items()}


def write_shard(path, tokens, mask, vocab):
    with open(path, "wb") as f:
        f.write(b"LDTOKENS" + struct.pack("<IIIIQ", 1, 2, vocab, 1, len(tokens)) + bytes(32))
        f.write(np.asarray(tokens, dtype="<u2").tobytes())
        f.write(np.asarray(mask, dtype=np.uint8).tobytes())


def write_yaml(path, workdir, full):
    c = CFG
    with open(path, "w") as f:
        f.write(f"""model: {{n_layer: {c['n_layer']}, n_head: {c['n_head']}, d_model: {c['d_model']},
  vocab_size: {c['vocab_size']}, context: {c['context']}, init: file, weights_file: base.h5}}
lora: {{enabled: {'false' if full else 'true'}, r: {c['r']}, alpha: {c['alpha']}, dropout: 0.0, targets: [{', '.join(c['targets'])}]}}
optim: {{lr: {c['lr']}, weight_decay: {c['wd']}, warmup_steps: {c['warmup']}, decay: cosine, grad_clip: {c['clip']}}}
data: {{train: train.bin}}
train: {{steps: {c['steps']}, batch_size: {c['batch']}, micro_batch: {c['micro']}, seq_len: {c['seq_len']},
  log_every: 1, seed: {c['seed']}}}
output: {{dir: {workdir}/out}}
""")


def learning_rate(step):  # trainer/train/lr_schedule.cpp, cosine to 0
    lr, warm, total = CFG["lr"], CFG["warmup"], CFG["steps"]
    if step < warm:
        return lr * (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total - warm - 1))
    return lr * 0.5 * (1 + math.cos(math.pi * progress))


class TorchGpt:
    def __init__(self, base, lora, full=False):
        """full: every base tensor trainable and no LoRA pair; else the LoRA pairs alone."""
        self.w = {k: torch.tensor(v, requires_grad=full) for k, v in base.items()}
        self.lora = {} if full else {k: torch.tensor(v, requires_grad=True) for k, v in lora.items()}
        self.trainable = self.w if full else self.lora
        self.s = CFG["alpha"] / CFG["r"]

    def lora_delta(self, l, t, x):
        A, B = self.lora.get(f"h.{l}.lora.{t}.A"), self.lora.get(f"h.{l}.lora.{t}.B")
        return None if A is None else self.s * (x @ A.T) @ B.T

    def linear(self, l, name, x, targets):
        w, b = self.w[f"h.{l}.{name}.weight"], self.w[f"h.{l}.{name}.bias"].reshape(-1)
        y = x @ w.T + b
        parts = []
        for t in targets:  # q, k, v are three column blocks of the fused QKV
            delta = self.lora_delta(l, t, x)
            parts.append(delta if delta is not None else torch.zeros(x.shape[0], w.shape[0] // len(targets)))
        return y + torch.cat(parts, dim=1)

    def loss(self, inputs, targets, mask):
        B, T = inputs.shape
        d, H = CFG["d_model"], CFG["n_head"]
        hd = d // H
        x = (self.w["wte"][inputs] + self.w["wpe"][:T]).reshape(B * T, d)
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
        for l in range(CFG["n_layer"]):
            h = f"h.{l}."
            ln1 = F.layer_norm(x, (d,), self.w[h + "ln_1.weight"].reshape(-1), self.w[h + "ln_1.bias"].reshape(-1), 1e-5)
            qkv = self.linear(l, "attn.qkv", ln1, ["q", "k", "v"]).reshape(B, T, 3, H, hd)
            q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
            att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            att = att.masked_fill(causal, float("-inf")).softmax(-1)
            y = (att @ v).transpose(1, 2).reshape(B * T, d)
            x = x + self.linear(l, "attn.proj", y, ["o"])
            ln2 = F.layer_norm(x, (d,), self.w[h + "ln_2.weight"].reshape(-1), self.w[h + "ln_2.bias"].reshape(-1), 1e-5)
            g = F.gelu(self.linear(l, "mlp.fc", ln2, ["fc1"]), approximate="tanh")
            x = x + self.linear(l, "mlp.proj", g, ["fc2"])
        xf = F.layer_norm(x, (d,), self.w["ln_f.weight"].reshape(-1), self.w["ln_f.bias"].reshape(-1), 1e-5)
        ce = F.cross_entropy(xf @ self.w["wte"].T, targets.reshape(-1), reduction="none")
        m = mask.reshape(-1)
        return (ce * m).sum() / m.sum()


def read_h5(path):
    with h5py.File(path, "r") as f:
        return {k: np.array(f[k]) for k in f.keys()}


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    rng = np.random.default_rng(2024)
    base = base_weights(rng)
    with h5py.File(os.path.join(args.workdir, "base.h5"), "w") as f:
        for k, v in base.items():
            f[k] = v
    n = 4000
    tokens = rng.integers(0, CFG["vocab_size"], n)
    mask = (rng.random(n) > 0.3).astype(np.uint8)  # about 30% of targets excluded from the loss
    write_shard(os.path.join(args.workdir, "train.bin"), tokens, mask, CFG["vocab_size"])
    yaml = os.path.join(args.workdir, "run.yaml")
    write_yaml(yaml, args.workdir, args.full)
    dump = os.path.join(args.workdir, "dump")
    os.makedirs(dump, exist_ok=True)
    subprocess.run([args.driver, yaml, dump], check=True)

    init = read_h5(os.path.join(dump, "init.h5"))
    model = TorchGpt(base, init, args.full)
    names = sorted(model.trainable)
    if sorted(init) != names:
        print(f"FAIL the driver's trainable tensors {sorted(init)} are not {names}")
        return 1
    opt = torch.optim.AdamW([model.trainable[k] for k in names], lr=CFG["lr"], betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=CFG["wd"])
    steps = json.load(open(os.path.join(dump, "steps.json")))
    failures = []

    def check(what, err, tol):
        status = "ok" if err < tol else "FAIL"
        print(f"{status:4} {what}: rel error {err:.2e} (tolerance {tol:.0e})")
        if err >= tol:
            failures.append(what)

    for s, st in enumerate(steps):
        shape = (CFG["batch"], CFG["seq_len"])
        inputs = torch.tensor(st["inputs"]).reshape(shape)
        targets = torch.tensor(st["targets"]).reshape(shape)
        mask = torch.tensor(st["mask"], dtype=torch.float32).reshape(shape)
        opt.zero_grad()
        loss = model.loss(inputs, targets, mask)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_([model.trainable[k] for k in names], CFG["clip"])
        for group in opt.param_groups:
            group["lr"] = learning_rate(s)
        check(f"step {s} loss ({loss.item():.6f})", rel(loss.item(), st["loss"]), 1e-5)
        check(f"step {s} lr", rel(learning_rate(s), st["lr"]), 1e-6)
        check(f"step {s} grad norm before clipping ({norm.item():.4f})", rel(norm.item(), st["grad_norm"]), 1e-4)
        grads = read_h5(os.path.join(dump, f"step{s}_grads.h5"))
        for k in names:
            check(f"step {s} grad {k}", rel(model.trainable[k].grad.numpy(), grads[k]), 1e-4)
        opt.step()
        params = read_h5(os.path.join(dump, f"step{s}_params.h5"))
        for k in names:
            got, want = model.trainable[k].detach().numpy(), params[k]
            if k.endswith("attn.qkv.bias"):
                # The key bias adds q.b_k to every score of a query row, which the softmax
                # cancels: its true gradient is 0, both sides hold round-off (~1e-9), and AdamW
                # turns any non-zero gradient into a step of about lr, of either sign. Its rows
                # are checked for that bound; the q and v rows as every other tensor.
                d = CFG["d_model"]
                k_rows = slice(d, 2 * d)
                check(f"step {s} grad {k} (key rows: zero up to round-off)",
                      float(np.abs(grads[k][k_rows]).max() + np.abs(model.trainable[k].grad.numpy()[k_rows]).max()),
                      1e-6)
                drift = float(np.abs(want[k_rows] - base[k][k_rows]).max())
                check(f"step {s} param {k} key rows within lr per step of the start", drift / (CFG["lr"] * (s + 1)), 1.01)
                got, want = np.delete(got, k_rows, axis=0), np.delete(want, k_rows, axis=0)
            check(f"step {s} param {k} after AdamW", rel(got, want), 1e-4)
    if failures:
        print(f"torch_reference: {len(failures)} checks failed")
        return 1
    print("torch_reference: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
