"""model.dtype nf4 on Hugging Face folders quantized by bitsandbytes (io/hf_bnb_weights.h).

For a random GPT-2 (Conv1D weights, transposed to [out, in] before quantizing, as transformers
does) and a random Llama (q, k, v, gate, up each quantized on its own), this writes the 16-bit
folder and its "-bnb-4bit" twin, quantized by tests/nf4/nf4_reference.py (numpy, bitsandbytes'
published algorithm) and stored under QuantState.as_dict(packed=True)'s names, then checks, at
tp 1 and 2 through tests/hf/hf_logits_driver:
  - the 4-bit folder loads into exactly the model that quantizing the 16-bit folder at load
    gives (logits bit for bit): the folder's codes, absmax codes, nested scales and offset are
    used as they are;
  - those logits equal PyTorch's forward on the numpy-dequantized weights (embeddings rounded to
    bf16, as model.dtype nf4 keeps them) to 1e-5;
and, through the real binary, that a damaged quant_state, an absmax of the wrong length, an
unknown quant_type, a folder without double quantization and a 4-bit folder under model.dtype
bf16 each exit 3 naming the tensor.

    bnb_folder_test.py --driver build/tests/hf_logits_driver --bin build/lora_dist --work DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "hf"))
sys.path.insert(0, os.path.join(HERE, "..", "llama"))
import gpt2_folder as g  # noqa: E402
import llama_folder as lf  # noqa: E402
from gpt2_logits_test import MPI, run_driver  # noqa: E402
import nf4_reference as ref  # noqa: E402

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def write_raw_safetensors(path, tensors):
    """tensors: {name: (dtype, numpy array)} with dtype F32 or U8."""
    g.write_raw_safetensors(path, {k: (d, list(a.shape), np.ascontiguousarray(a).tobytes()) for k, (d, a) in tensors.items()})


def quant_state(shape, q, quant_type="nf4", double=True):
    s = {"quant_type": quant_type, "blocksize": 64, "dtype": "float32", "shape": list(shape)}
    if double:
        s.update({"nested_blocksize": 256, "nested_offset": float(q["offset"]), "nested_dtype": "float32"})
    return np.frombuffer(json.dumps(s).encode(), dtype=np.uint8)


def bnb_tensors(name, w, damage=None):
    """The six tensors bitsandbytes saves for the [out, in] float32 matrix w."""
    w = np.ascontiguousarray(w, dtype=np.float32)
    q = ref.quantize(w)
    t = {name: ("U8", q["codes"].reshape(-1, 1)),
         name + ".absmax": ("U8", q["absmax_codes"].astype(np.uint8)),
         name + ".quant_map": ("F32", ref.NF4.astype(np.float32)),
         name + ".nested_absmax": ("F32", q["nested_scales"].astype(np.float32)),
         name + ".nested_quant_map": ("F32", ref.DYNAMIC_MAP.astype(np.float32)),
         name + ".quant_state.bitsandbytes__nf4": ("U8", quant_state(w.shape, q))}
    if damage == "quant_state":
        t[name + ".quant_state.bitsandbytes__nf4"] = ("U8", np.frombuffer(b'{"quant_type": "nf4", "blocks', dtype=np.uint8))
    elif damage == "absmax":
        t[name + ".absmax"] = ("U8", q["absmax_codes"][:-1].astype(np.uint8))
    elif damage == "fp4":
        t[name + ".quant_state.bitsandbytes__nf4"] = ("U8", quant_state(w.shape, q, quant_type="fp4"))
    elif damage == "not_nested":
        t[name + ".quant_state.bitsandbytes__nf4"] = ("U8", quant_state(w.shape, q, double=False))
    deq = ref.dequantize(q, w.size).reshape(w.shape)
    return t, deq


def bf16(t):
    return t.to(torch.bfloat16).to(torch.float64)


# --- GPT-2 ------------------------------------------------------------------------------------

VOCAB = 300  # above the demo data's 256 byte tokens, which the refusal runs train on
GPT_CFG = g.config_json(n_layer=2, n_head=4, n_embd=128, vocab_size=VOCAB, n_positions=16)
GPT_LINEAR = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


def gpt2_folders(work, damage=None):
    """(16-bit folder, 4-bit folder, the tensors PyTorch's forward of the 4-bit model takes)."""
    w = g.random_gpt2(GPT_CFG, seed=11)
    plain, quant = os.path.join(work, "gpt2_f32"), os.path.join(work, "gpt2_bnb" + (f"_{damage}" if damage else ""))
    g.write_folder(plain, GPT_CFG, w, "F32", prefix="transformer.")
    tensors, model = {}, {}
    for k, v in w.items():
        name = "transformer." + k
        layer = k.split(".weight")[0][k.index(".", 2) + 1:] if k.startswith("h.") else ""
        if k.endswith(".weight") and layer in GPT_LINEAR:
            t, deq = bnb_tensors(name, v.numpy().T, damage if k == "h.1.mlp.c_fc.weight" else None)  # Conv1D -> [out, in]
            tensors.update(t)
            model[k] = torch.from_numpy(deq.T.astype(np.float64))  # back to Conv1D's [in, out] for the forward
        else:
            tensors[name] = ("F32", v.numpy().astype(np.float32))
            model[k] = bf16(v) if k in ("wte.weight", "wpe.weight") else v.to(torch.float64)
    os.makedirs(quant, exist_ok=True)
    cfg = dict(GPT_CFG, quantization_config={"quant_method": "bitsandbytes", "load_in_4bit": True,
                                             "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True})
    with open(os.path.join(quant, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_raw_safetensors(os.path.join(quant, "model.safetensors"), tensors)
    return plain, quant, model


# --- Llama ------------------------------------------------------------------------------------

LLAMA_CFG = lf.config_json(n_layer=2, d=128, n_head=4, n_kv_head=2, head_dim=32, ffn=256, vocab=VOCAB, context=16)


def llama_folders(work):
    w = lf.random_llama(LLAMA_CFG, seed=5)
    plain, quant = os.path.join(work, "llama_f32"), os.path.join(work, "llama_bnb")
    lf.write_folder(plain, LLAMA_CFG, w, "F32")
    tensors, model = {}, {}
    for k, v in w.items():
        if k.endswith("_proj.weight"):
            t, deq = bnb_tensors(k, v.numpy())
            tensors.update(t)
            model[k] = torch.from_numpy(deq.astype(np.float64))
        else:
            tensors[k] = ("F32", v.numpy().astype(np.float32))
            model[k] = bf16(v) if k in ("model.embed_tokens.weight", "lm_head.weight") else v
    os.makedirs(quant, exist_ok=True)
    with open(os.path.join(quant, "config.json"), "w") as f:
        json.dump(LLAMA_CFG, f, indent=2)
    write_raw_safetensors(os.path.join(quant, "model.safetensors"), tensors)
    return plain, quant, model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    tokens = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(3))

    for family, make, forward in (
            ("gpt2", lambda: gpt2_folders(a.work), lambda m: g.gpt2_logits(m, GPT_CFG, tokens)),
            ("llama", lambda: llama_folders(a.work), lambda m: lf.llama_logits(m, LLAMA_CFG, tokens))):
        plain, quant, model = make()
        want = forward(model).detach().numpy()
        for tp in (1, 2):
            at_load, _ = run_driver(a.driver, plain, tp, os.path.join(a.work, f"{family}_plain_tp{tp}"), tokens, "nf4", VOCAB)
            loaded, _ = run_driver(a.driver, quant, tp, os.path.join(a.work, f"{family}_bnb_tp{tp}"), tokens, "nf4", VOCAB)
            check(np.array_equal(at_load.view(np.uint32), loaded.view(np.uint32)),
                  f"{family} tp {tp}: the bitsandbytes folder loads into the model quantizing at load gives, bit for bit")
            err = g.rel_error(loaded, want)
            check(err < 1e-5, f"{family} tp {tp}: logits vs PyTorch on the dequantized weights, rel {err:.2e}")

    # Bad input: exit 3, the tensor named.
    data = os.path.abspath(a.data)
    for damage, want in (("quant_state", "h.1.mlp.c_fc.weight.quant_state.bitsandbytes__nf4': not a JSON quant_state"),
                         ("absmax", "h.1.mlp.c_fc.weight.absmax' has 1023 elements"),
                         ("fp4", "quant_type \"fp4\" is not supported"),
                         ("not_nested", "not double-quantized")):
        _, quant, _ = gpt2_folders(a.work, damage)
        refused_run(a.bin, data, a.work, quant, damage, want)
    _, quant, _ = gpt2_folders(a.work)
    refused_run(a.bin, data, a.work, quant, "bf16_run", "is a bitsandbytes 4-bit (NF4) weight: set model.dtype: nf4",
                dtype="bf16")
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")
    print("bnb_folder_test: all checks passed")


def refused_run(binary, data, work, folder, name, want, dtype="nf4"):
    yaml = os.path.join(work, f"refused_{name}.yaml")
    with open(yaml, "w") as f:
        f.write(f"model: {{init: hf, path: {folder}, dtype: {dtype}}}\n"
                f"data: {{train: {data}}}\n"
                f"train: {{steps: 1, seq_len: 16, batch_size: 1, micro_batch: 1}}\n"
                f"output: {{dir: {os.path.join(work, 'refused_' + name + '_out')}}}\n")
    r = subprocess.run(MPI + ["1", binary, "--yaml", yaml], capture_output=True, text=True, timeout=120)
    said = [line for line in r.stderr.splitlines() if line.startswith("lora_dist:")]
    last = said[0] if said else ""
    check(r.returncode == 3 and want in r.stderr, f"{name}: exit 3 naming the tensor (exit {r.returncode}: {last})")


if __name__ == "__main__":
    main()
