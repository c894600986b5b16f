#!/usr/bin/python3
"""RoPE as Hugging Face's Llama computes it, written here from the formulas in PyTorch (not
from lora_dist's code): inv_freq = theta^(-2j/d), Llama 3.1's "llama3" frequency scaling
(transformers' _compute_llama3_parameters), cos/sin of position x inv_freq repeated over both
halves (emb = cat(freqs, freqs)), and q * cos + rotate_half(q) * sin, rotate_half(x) =
cat(-x2, x1). In float64.

    rope_reference.py IN.json  ->  stdout: {"inv_freq": [...], "out": [...]}
IN.json: {"head_dim", "theta", "scaling": null | {"factor", "low_freq_factor",
"high_freq_factor", "original_max_position_embeddings"}, "T", "n_heads", "x": [rows*n_heads*head_dim]}
(row r at position r % T).
"""
import json
import math
import sys

import torch


def inv_freq_of(cfg):
    d, theta = cfg["head_dim"], cfg["theta"]
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    s = cfg["scaling"]
    if not s:
        return inv_freq
    factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
    old = s["original_max_position_embeddings"]
    low_freq_wavelen, high_freq_wavelen = old / low, old / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(medium, smoothed, scaled)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def main():
    cfg = json.load(open(sys.argv[1]))
    d, T, nh = cfg["head_dim"], cfg["T"], cfg["n_heads"]
    x = torch.tensor(cfg["x"], dtype=torch.float64).reshape(-1, nh, d)
    inv_freq = inv_freq_of(cfg)
    positions = torch.arange(x.shape[0], dtype=torch.float64) % T
    freqs = torch.outer(positions, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
    out = x * cos + rotate_half(x) * sin
    json.dump({"inv_freq": inv_freq.tolist(), "out": out.reshape(-1).tolist()}, sys.stdout)


if __name__ == "__main__":
    main()
