"""Random Llama-family Hugging Face folders, and their forward in PyTorch written from the
formulas of transformers' LlamaForCausalLM / Qwen2ForCausalLM (not from lora_dist's code).

    folder = write_folder(dir, cfg, weights)            # config.json + model.safetensors
    logits = llama_logits(weights, cfg, tokens, lora)   # [B, T, V], differentiable in lora

cfg is the config.json dict itself (model_type llama or qwen2). The forward:
  h = embed_tokens[tokens]
  per layer:  x = rmsnorm(h) * input_layernorm;  q, k, v = x Wq^T (+bq), x Wk^T (+bk), x Wv^T (+bv)
              q, k rotated (rotate-half RoPE, llama3 frequency scaling when set)
              k, v repeated n_head / n_kv_head times (repeat_kv), causal softmax(q k^T / sqrt(hd)) v
              h = h + o_proj(attn);  y = rmsnorm(h) * post_attention_layernorm
              h = h + down_proj(silu(gate_proj(y)) * up_proj(y))
  logits = (rmsnorm(h) * norm) lm_head^T  (embed_tokens when tie_word_embeddings)
Every linear layer W gets s * B A added when `lora` has a pair for it (PEFT's LoRA: W x + s B A x).
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hf"))
import gpt2_folder as g  # noqa: E402  (write_safetensors, read_safetensors, rel_error)

MODULES = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
           "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def config_json(model_type="llama", n_layer=2, d=40, n_head=4, n_kv_head=2, head_dim=12, ffn=56, vocab=101,
                context=64, theta=10000.0, rope_scaling=None, tied=False, attention_bias=False, eps=1e-5):
    c = {"model_type": model_type, "architectures": ["Qwen2ForCausalLM" if model_type == "qwen2" else "LlamaForCausalLM"],
         "hidden_size": d, "intermediate_size": ffn, "num_hidden_layers": n_layer, "num_attention_heads": n_head,
         "num_key_value_heads": n_kv_head, "head_dim": head_dim, "vocab_size": vocab, "max_position_embeddings": context,
         "rms_norm_eps": eps, "rope_theta": theta, "rope_scaling": rope_scaling, "hidden_act": "silu",
         "tie_word_embeddings": tied, "torch_dtype": "float32"}
    if model_type == "llama":
        c["attention_bias"] = attention_bias
        c["mlp_bias"] = False
    return c


def shapes(cfg):
    d, hd, f = cfg["hidden_size"], cfg["head_dim"], cfg["intermediate_size"]
    q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    return {"q_proj": (q, d), "k_proj": (kv, d), "v_proj": (kv, d), "o_proj": (d, q),
            "gate_proj": (f, d), "up_proj": (f, d), "down_proj": (d, f)}


def biases(cfg):
    """The linear layers with a bias: Qwen2's q, k, v; Llama's attention with attention_bias."""
    if cfg["model_type"] == "qwen2":
        return {"q_proj", "k_proj", "v_proj"}
    return {"q_proj", "k_proj", "v_proj", "o_proj"} if cfg.get("attention_bias") else set()


def random_llama(cfg, seed, std=0.15):
    """Weights under HF names; norm weights away from 1 and biases non-zero (no pitfall hidden)."""
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64) * std  # noqa: E731
    d, V = cfg["hidden_size"], cfg["vocab_size"]
    t = {"model.embed_tokens.weight": r(V, d) * 4, "model.norm.weight": 1 + r(d) * 2}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = 1 + r(d) * 2
        t[p + "post_attention_layernorm.weight"] = 1 + r(d) * 2
        for name, (o, i) in shapes(cfg).items():
            t[p + MODULES[name] + "." + name + ".weight"] = r(o, i) * 2
            if name in biases(cfg):
                t[p + MODULES[name] + "." + name + ".bias"] = r(o)
    if not cfg["tie_word_embeddings"]:
        t["lm_head.weight"] = r(V, d) * 4
    return t


def write_folder(folder, cfg, weights, dtype="F32"):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    g.write_safetensors(os.path.join(folder, "model.safetensors"), weights, dtype)
    return folder


def random_lora(cfg, targets, r, seed, std=0.3):
    """{(layer, module): (A [r, in], B [out, r])}, B non-zero so that every gradient is."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for l in range(cfg["num_hidden_layers"]):
        for name in targets:
            o, i = shapes(cfg)[name]
            out[(l, name)] = (torch.randn(r, i, generator=gen, dtype=torch.float64) * std,
                              torch.randn(o, r, generator=gen, dtype=torch.float64) * std)
    return out


def peft_key(layer, name, factor):
    return f"base_model.model.model.layers.{layer}.{MODULES[name]}.{name}.lora_{factor}.weight"


def write_peft(folder, lora, r, alpha, targets):
    os.makedirs(folder, exist_ok=True)
    tensors = {}
    for (l, name), (A, B) in lora.items():
        tensors[peft_key(l, name, "A")] = A
        tensors[peft_key(l, name, "B")] = B
    g.write_safetensors(os.path.join(folder, "adapter_model.safetensors"), tensors, "F32")
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha,
                   "target_modules": list(targets), "fan_in_fan_out": False, "bias": "none", "use_rslora": False}, f)


def read_peft(folder, cfg, targets):
    """{(layer, module): (A, B)} of a PEFT folder, as float64 tensors."""
    _, t = g.read_safetensors(os.path.join(folder, "adapter_model.safetensors"))
    get = lambda key: torch.from_numpy(t[key][1])  # noqa: E731
    return {(l, n): (get(peft_key(l, n, "A")), get(peft_key(l, n, "B")))
            for l in range(cfg["num_hidden_layers"]) for n in targets}


def inv_freq(cfg):
    hd, theta = cfg["head_dim"], cfg["rope_theta"]
    inv = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    rs = cfg.get("rope_scaling")
    if not rs:
        return inv
    factor, low, high, L = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv
    out = torch.where(wavelen > L / low, inv / factor, inv)
    smooth = (L / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * inv / factor + smooth * inv
    mid = (wavelen >= L / high) & (wavelen <= L / low)
    return torch.where(mid, smoothed, out)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def llama_logits(w, cfg, tokens, lora=None, scale=0.0):
    lora = lora or {}
    B, T = tokens.shape
    nh, nkv, hd, eps = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"], cfg["rms_norm_eps"]
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq(cfg)[None, :]
    cos, sin = torch.cat((ang.cos(), ang.cos()), -1), torch.cat((ang.sin(), ang.sin()), -1)
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)

    def linear(x, l, name):
        p = f"model.layers.{l}.{MODULES[name]}.{name}."
        y = x @ w[p + "weight"].T
        if p + "bias" in w:
            y = y + w[p + "bias"]
        if (l, name) in lora:
            A, Bm = lora[(l, name)]
            y = y + scale * (x @ A.T) @ Bm.T
        return y

    h = w["model.embed_tokens.weight"][tokens]
    for l in range(cfg["num_hidden_layers"]):
        x = rmsnorm(h, w[f"model.layers.{l}.input_layernorm.weight"], eps)
        q = linear(x, l, "q_proj").view(B, T, nh, hd).transpose(1, 2)
        k = linear(x, l, "k_proj").view(B, T, nkv, hd).transpose(1, 2)
        v = linear(x, l, "v_proj").view(B, T, nkv, hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = k.repeat_interleave(nh // nkv, dim=1), v.repeat_interleave(nh // nkv, dim=1)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, dim=-1) @ v
        h = h + linear(att.transpose(1, 2).reshape(B, T, nh * hd), l, "o_proj")
        y = rmsnorm(h, w[f"model.layers.{l}.post_attention_layernorm.weight"], eps)
        h = h + linear(torch.nn.functional.silu(linear(y, l, "gate_proj")) * linear(y, l, "up_proj"), l, "down_proj")
    head = w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
    return rmsnorm(h, w["model.norm.weight"], eps) @ head.T
