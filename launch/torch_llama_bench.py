#!/usr/bin/env python3
"""A PyTorch (CPU, fp32) LoRA training step of a Llama-shaped model, timed as the anchors'
torch_lora_bench.py times its GPT-2 step, for launch/bench_llama.sh to set beside lora_dist's.

Plain torch, no transformers: pre-RMSNorm blocks, q/k/v/o projections without bias (k and v of
n_kv_head heads, repeated for the query heads: grouped-query attention), rotate-half RoPE,
causal softmax attention (torch's scaled_dot_product_attention is not in 1.13, so explicit),
SwiGLU MLP (gate, up, down), final RMSNorm, an untied LM head, next-token cross-entropy. LoRA
on q and v (r 8, alpha 16, A kaiming-uniform, B zero), every base weight frozen,
torch.optim.AdamW on the LoRA factors. Random tokens; warm-up, then timed steps.

    /usr/bin/python3 launch/torch_llama_bench.py              # the ~125M shape bench_llama.sh uses
Prints per-step times and one line "JSON {...}" with tokens_per_s and the median ms per step.
"""
import argparse
import json
import math
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class LoraLinear(nn.Module):
    """W x (frozen, no bias) + s B A x."""

    def __init__(self, d_in, d_out, r, alpha):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in) * 0.02)
        self.r = r
        if r:
            self.lora_A = nn.Parameter(torch.empty(r, d_in))
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            self.lora_B = nn.Parameter(torch.zeros(d_out, r))
            self.scale = alpha / r

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.r:
            y = y + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scale
        return y


def rms_norm(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        d, hd = a.d, a.head_dim
        self.a = a
        self.n1, self.n2 = nn.Parameter(torch.ones(d)), nn.Parameter(torch.ones(d))
        r = a.rank
        self.q = LoraLinear(d, a.heads * hd, r, a.alpha)
        self.k = LoraLinear(d, a.kv_heads * hd, 0, 0)
        self.v = LoraLinear(d, a.kv_heads * hd, r, a.alpha)
        self.o = LoraLinear(a.heads * hd, d, 0, 0)
        self.gate, self.up = LoraLinear(d, a.ffn, 0, 0), LoraLinear(d, a.ffn, 0, 0)
        self.down = LoraLinear(a.ffn, d, 0, 0)

    def forward(self, h, cos, sin, mask):
        a = self.a
        B, T, _ = h.shape
        x = rms_norm(h, self.n1)
        q = self.q(x).view(B, T, a.heads, a.head_dim).transpose(1, 2)
        k = self.k(x).view(B, T, a.kv_heads, a.head_dim).transpose(1, 2)
        v = self.v(x).view(B, T, a.kv_heads, a.head_dim).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        g = a.heads // a.kv_heads
        k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(a.head_dim) + mask, dim=-1) @ v
        h = h + self.o(att.transpose(1, 2).reshape(B, T, a.heads * a.head_dim))
        y = rms_norm(h, self.n2)
        return h + self.down(F.silu(self.gate(y)) * self.up(y))


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a
        self.embed = nn.Parameter(torch.randn(a.vocab, a.d) * 0.02)
        self.blocks = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = nn.Parameter(torch.ones(a.d))
        self.head = nn.Parameter(torch.randn(a.vocab, a.d) * 0.02)
        inv = 1.0 / a.theta ** (torch.arange(0, a.head_dim, 2).float() / a.head_dim)
        ang = torch.arange(a.seq).float()[:, None] * inv[None, :]
        self.register_buffer("cos", torch.cat((ang.cos(), ang.cos()), -1))
        self.register_buffer("sin", torch.cat((ang.sin(), ang.sin()), -1))
        self.register_buffer("mask", torch.full((a.seq, a.seq), float("-inf")).triu(1))

    def forward(self, idx, tgt):
        h = F.embedding(idx, self.embed)
        for b in self.blocks:
            h = b(h, self.cos, self.sin, self.mask)
        logits = F.linear(rms_norm(h, self.norm), self.head)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), tgt.reshape(-1))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, v in (("layers", 12), ("heads", 12), ("kv-heads", 4), ("head-dim", 64), ("d", 768), ("ffn", 2048),
                    ("vocab", 32000), ("seq", 256), ("batch", 4), ("rank", 8), ("threads", 2), ("steps", 5),
                    ("warmup", 2), ("seed", 0)):
        p.add_argument("--" + name, type=int, default=v)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--theta", type=float, default=500000.0)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    model = Llama(a)
    for n, prm in model.named_parameters():
        prm.requires_grad_(".lora_" in n)
    trainable = [prm for prm in model.parameters() if prm.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.0)
    gen = torch.Generator().manual_seed(a.seed)
    print(f"torch_llama_bench: torch {torch.__version__}, L={a.layers} d={a.d} heads {a.heads}/{a.kv_heads} kv "
          f"hd {a.head_dim} ffn {a.ffn} V={a.vocab}, B={a.batch} T={a.seq}, threads {torch.get_num_threads()}, "
          f"{sum(x.numel() for x in model.parameters()) / 1e6:.1f}M parameters")

    def step():
        data = torch.randint(0, a.vocab, (a.batch, a.seq + 1), generator=gen)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(data[:, :-1], data[:, 1:])
        loss.backward()
        opt.step()
        return time.perf_counter() - t0, loss.item()

    for i in range(a.warmup):
        t, loss = step()
        print(f"warm-up {i}: {t * 1e3:8.1f} ms (loss {loss:.4f})")
    times = []
    for i in range(a.steps):
        t, loss = step()
        times.append(t)
        print(f"step {i}: {t * 1e3:8.1f} ms (loss {loss:.4f})")
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("JSON " + json.dumps({"ms_per_step": med * 1e3, "tokens_per_s": a.batch * a.seq / med, "peak_rss_mib": rss}))


if __name__ == "__main__":
    main()
