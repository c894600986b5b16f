"""`lora_dist export --merged DIR` (issue 12, point 5): the base with the adapter folded in,
as a Hugging Face GPT-2 folder that needs no LoRA code.

Cases, each a random 2-layer HF GPT-2 (tests/hf/gpt2_folder.py) or a seeded base trained a
few steps, then exported with --merged (and --peft in the same call):
  f32   F32 folder without the `transformer.` prefix, every target;
  bf16  BF16 folder with the prefix (as GPT2LMHeadModel saves it), q,v;
  f16   F16 folder, k,fc2;
  seed  model.init: seed (float32), o,fc1.
For each, with the safetensors file parsed here by hand:
  1. the folder holds exactly model.safetensors and config.json (no temporary folder left);
     config.json has the GPT-2 keys and the shape; the tensors are exactly GPT2LMHeadModel's
     `transformer.` names (wte, wpe, ln_*, biases, Conv1D weights, no lm_head), all in the
     base's dtype (the HF folder's; F32 for a seeded base);
  2. each Conv1D weight equals W0 + (scale * B @ A).T with A, B from adapter.h5 (q, k, v in
     c_attn's [Q | K | V] column blocks); F32: weights rel. < 1e-6 and the update rel. < 1e-5;
     BF16/F16: the float32 sum rounded to that dtype, within one step of it; untargeted
     tensors unchanged;
  3. the merged folder loaded back with model.init: hf gives the first training step the loss
     of the adapter model (the base with lora.init_from: the exported PEFT folder; rel. < 1e-5
     in F32), which is not the base's own loss;
and: a non-empty DIR is exit 2 leaving it as it was, a missing adapter exit 3 writing
nothing, an export with neither --peft nor --merged exit 2.
usage: merged_export_test.py --bin lora_dist --work DIR --data demo_train.bin
"""
import argparse
import json
import os
import shutil
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hf"))
import gpt2_folder  # noqa: E402
from peft_test_util import SHAPE, check, refused, rel, run  # noqa: E402

CONV1D = {"attn.c_attn": "qkv", "attn.c_proj": "o", "mlp.c_fc": "fc1", "mlp.c_proj": "fc2"}
CASES = {"f32": ("F32", "", ["q", "k", "v", "o", "fc1", "fc2"]), "bf16": ("BF16", "transformer.", ["q", "v"]),
         "f16": ("F16", "", ["k", "fc2"]), "seed": (None, None, ["o", "fc1"])}


def rounded(x, dtype):
    """float64 -> float32 -> BF16 or F16 (round to nearest even), as float64."""
    return torch.from_numpy(np.asarray(x, np.float32)).to(gpt2_folder.DTYPES[dtype]).to(torch.float64).numpy()


def first_loss(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return next(r["loss"] for r in map(json.loads, f) if r.get("type") == "train")


def train(a, work, name, model_line, lora_extra, targets, steps):
    yaml = os.path.join(work, f"{name}.yaml")
    with open(yaml, "w") as f:
        f.write(f"""model: {model_line}
lora: {{r: 4, alpha: 8, {lora_extra}targets: [{", ".join(targets)}]}}
optim: {{lr: 2.0e-2, warmup_steps: 0, decay: constant}}
data: {{train: {a.data}}}
train: {{steps: {steps}, batch_size: 4, micro_batch: 4, seq_len: 32, log_every: 1}}
output: {{dir: {work}/out_{name}}}
""")
    r = run([a.bin, "--yaml", yaml])
    check(r.returncode == 0, f"{name}: training failed\n{r.stdout}{r.stderr}")
    return yaml


def one_case(a, name, dtype, prefix, targets):
    work = os.path.join(a.work, name)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    cfg = gpt2_folder.config_json(**SHAPE)
    seed_shape = "n_layer: 2, n_head: 2, d_model: 32, vocab_size: 256, context: 64, ln_eps: 1.0e-5"
    if dtype:
        folder = os.path.join(work, "gpt2")
        tensors = gpt2_folder.random_gpt2(cfg, seed=11)
        gpt2_folder.write_folder(folder, cfg, tensors, dtype=dtype, prefix=prefix)
        base = {k: v.numpy().astype(np.float64) for k, v in gpt2_folder.stored(tensors, dtype).items()}
        model_line = f"{{init: hf, path: {folder}}}"
    else:
        model_line = f"{{init: seed, init_seed: 5, {seed_shape}}}"
    yaml = train(a, work, "train", model_line, "", targets, 4)
    adapter = os.path.join(work, "out_train", "adapter.h5")
    merged, peft = os.path.join(work, "merged"), os.path.join(work, "peft")
    r = run([a.bin, "export", "--yaml", yaml, "--adapter", adapter, "--peft", peft, "--merged", merged])
    check(r.returncode == 0, f"{name}: export failed\n{r.stdout}{r.stderr}")
    print(r.stdout.strip())
    want_dtype = dtype or "F32"
    check(f"stored as {want_dtype} (" in r.stdout, f"{name}: no dtype note for {want_dtype}\n{r.stdout}")

    # 1. the files
    check(sorted(os.listdir(merged)) == ["config.json", "model.safetensors"], f"{name}: {os.listdir(merged)}")
    check(not [p for p in os.listdir(work) if ".tmp" in p], f"{name}: a temporary folder was left: {os.listdir(work)}")
    with open(os.path.join(merged, "config.json")) as f:
        mc = json.load(f)
    for k, v in {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "activation_function": "gelu_new",
                 "tie_word_embeddings": True, "layer_norm_epsilon": 1e-5, **SHAPE}.items():
        check(mc.get(k) == v, f"{name}: config.json {k} = {mc.get(k)!r}, expected {v!r}")
    check(mc.get("torch_dtype") == {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[want_dtype], f"{name}: torch_dtype {mc}")
    header, st = gpt2_folder.read_safetensors(os.path.join(merged, "model.safetensors"))
    check(header.get("__metadata__") == {"format": "pt"}, f"{name}: metadata {header.get('__metadata__')}")
    names = set(gpt2_folder.random_gpt2(cfg, seed=0))
    check(set(st) == {"transformer." + k for k in names}, f"{name}: tensors {sorted(set(st) ^ {'transformer.' + k for k in names})}")
    check({d for d, _ in st.values()} == {want_dtype}, f"{name}: dtypes {sorted({d for d, _ in st.values()})}")
    got = {k[len("transformer."):]: v for k, (_, v) in st.items()}

    # 2. W0 + (s B A).T, from adapter.h5
    s = 8 / 4
    d = SHAPE["n_embd"]
    if not dtype:  # a seeded base has no folder: the untargeted tensors are W0 (seen unchanged below)
        base = dict(got)
    worst_w = worst_d = 0.0
    with h5py.File(adapter, "r") as h:
        for l in range(SHAPE["n_layer"]):
            for m, t in CONV1D.items():
                key = f"h.{l}.{m}.weight"
                if t == "qkv":
                    blocks = [(j, x) for j, x in enumerate("qkv") if x in targets]
                else:
                    blocks = [(0, t)] if t in targets else []
                if not blocks:
                    check(np.array_equal(got[key], base[key]), f"{name}: {key} changed though untargeted")
                    continue
                if not dtype:
                    continue  # no W0 to compare with outside lora_dist for a seeded base (see the loss check)
                delta = np.zeros_like(base[key])
                for j, x in blocks:
                    A = np.asarray(h[f"adapter/h.{l}.lora.{x}.A"], np.float64)  # [r, in]
                    B = np.asarray(h[f"adapter/h.{l}.lora.{x}.B"], np.float64)  # [out, r]
                    delta[:, j * d:j * d + B.shape[0]] += (s * B @ A).T  # Conv1D [in, out]
                want = base[key] + delta
                if dtype == "F32":
                    worst_w, worst_d = max(worst_w, rel(got[key], want)), max(worst_d, rel(got[key] - base[key], delta))
                else:  # rounded once from float32; allow one step where float32 sums differ at a tie
                    step = np.abs(want) * 2.0 ** -(7 if dtype == "BF16" else 10) + 1e-30
                    worst_w = max(worst_w, float(np.max(np.abs(got[key] - rounded(want, dtype)) / step)))
                    worst_d = max(worst_d, rel(got[key] - base[key], rounded(want, dtype) - base[key]))
        for k in names:
            if not any(k.endswith(f"{m}.weight") for m in CONV1D):
                check(np.array_equal(got[k], base[k]), f"{name}: {k} changed (the merge touches Conv1D weights only)")
    if dtype == "F32":
        print(f"{name}: merged Conv1D weights vs W0 + (s B A).T from adapter.h5: rel {worst_w:.2e}, update rel {worst_d:.2e}")
        check(worst_w < 1e-6 and worst_d < 1e-5, f"{name}: merged weights differ (rel {worst_w:.2e}, update {worst_d:.2e})")
    elif dtype:
        print(f"{name}: merged {dtype} weights vs {dtype}(W0 + (s B A).T): worst {worst_w:.2f} steps, update rel {worst_d:.2e}")
        check(worst_w <= 1.0 and worst_d < 2e-2, f"{name}: merged {dtype} weights differ ({worst_w} steps, update {worst_d:.2e})")

    # 3. loaded back with model.init: hf == the adapter model (the base + lora.init_from the export)
    train(a, work, "merged_back", f"{{init: hf, path: {merged}}}", "", targets, 1)
    train(a, work, "adapter", model_line, f"init_from: {peft}, ", targets, 1)
    got_l, want_l, base_l = first_loss(f"{work}/out_merged_back"), first_loss(f"{work}/out_adapter"), first_loss(f"{work}/out_train")
    tol = 1e-5 if want_dtype == "F32" else 1e-2
    print(f"{name}: first loss of the merged folder (model.init: hf) {got_l:.7f}; the adapter model {want_l:.7f}; "
          f"the base alone {base_l:.7f}")
    check(abs(got_l - want_l) <= tol * abs(want_l) and abs(base_l - want_l) > 1e-3 * abs(want_l),
          f"{name}: merged loss {got_l} vs adapter model {want_l} (base {base_l})")
    return yaml, adapter, merged, work


def bad_inputs(a, yaml, adapter, merged, work):
    exp = [a.bin, "export", "--yaml", yaml, "--adapter"]
    before = {p: os.path.getmtime(os.path.join(merged, p)) for p in os.listdir(merged)}
    refused(exp + [adapter, "--merged", merged], 2, merged, "not an empty folder")
    check({p: os.path.getmtime(os.path.join(merged, p)) for p in os.listdir(merged)} == before, "a refused export changed DIR")
    p_new = os.path.join(work, "p_new")
    refused(exp + [adapter, "--peft", p_new, "--merged", merged], 2, merged, "not an empty folder")
    check(not os.path.exists(p_new), "--peft was written though --merged was refused")
    missing = os.path.join(work, "nope.h5")
    refused(exp + [missing, "--merged", os.path.join(work, "m1")], 3, missing)
    check(not os.path.exists(os.path.join(work, "m1")), "a refused export left its folder")
    refused(exp + [adapter], 2, "--peft DIR, --merged DIR or both")
    check(not [p for p in os.listdir(work) if ".tmp" in p], f"a temporary folder was left: {os.listdir(work)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--cases", default=",".join(CASES))
    a = ap.parse_args()
    a.work, a.data = os.path.abspath(a.work), os.path.abspath(a.data)
    done = [one_case(a, name, *CASES[name]) for name in a.cases.split(",")]
    bad_inputs(a, *done[0])
    print("ok")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
