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


SHAPES = {  # a few MB of weights besides the embedding and head, which the vocabulary sets
    "small": dict(n_layer=2, d=64, n_head=4, n_kv_head=2, head_dim=16, ffn=160, context=256),
}


def vocab_size_of(tokenizer_json):
    """Every id the tokenizer can produce, its model's and its added tokens', plus one."""
    with open(tokenizer_json) as f:
        t = json.load(f)
    ids = list(t["model"]["vocab"].values()) + [a["id"] for a in t.get("added_tokens", [])]
    return max(ids) + 1


def main():
    import argparse
    import shutil
    ap = argparse.ArgumentParser(description="Writes a random-weight Llama-3-shaped folder (GQA, untied head, llama3 "
                                             "RoPE scaling) with a real tokenizer's files, for the walk-through.")
    ap.add_argument("folder")
    ap.add_argument("--tokenizer", required=True, help="folder with tokenizer.json (and tokenizer_config.json)")
    ap.add_argument("--shape", default="small", choices=sorted(SHAPES))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    s = SHAPES[a.shape]
    cfg = config_json("llama", n_layer=s["n_layer"], d=s["d"], n_head=s["n_head"], n_kv_head=s["n_kv_head"],
                      head_dim=s["head_dim"], ffn=s["ffn"], context=s["context"], theta=500000.0, tied=False,
                      vocab=vocab_size_of(os.path.join(a.tokenizer, "tokenizer.json")),
                      rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                    "original_max_position_embeddings": 64})
    weights = random_llama(cfg, a.seed, std=0.02)
    for k in weights:  # norms at 1, as a trained model's are near it
        if k.endswith("norm.weight"):
            weights[k] = torch.ones_like(weights[k])
    write_folder(a.folder, cfg, weights)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if os.path.exists(os.path.join(a.tokenizer, name)):
            shutil.copy(os.path.join(a.tokenizer, name), a.folder)
    # As Llama 3 Instruct's generation_config.json: a turn ends at <|eot_id|> as well as <|end_of_text|>.
    with open(os.path.join(a.tokenizer, "tokenizer.json")) as f:
        added = {t["content"]: t["id"] for t in json.load(f).get("added_tokens", [])}
    eos = [added[t] for t in ("<|end_of_text|>", "<|eot_id|>", "<|im_end|>", "<|endoftext|>") if t in added]
    with open(os.path.join(a.folder, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": eos}, f)
    n = sum(v.numel() for v in weights.values())
    print(f"{a.folder}: Llama ({cfg['num_hidden_layers']} layers, d {cfg['hidden_size']}, {cfg['num_attention_heads']} "
          f"query heads on {cfg['num_key_value_heads']} KV heads, vocabulary {cfg['vocab_size']}), {n / 1e6:.1f} M weights")


if __name__ == "__main__":
    main()
