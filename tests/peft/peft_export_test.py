"""`lora_dist export --peft` checked against PEFT's documented semantics, without peft.

For each case (LoRA targets, rslora) a random 2-layer HF GPT-2 folder (tests/hf/gpt2_folder.py)
is fine-tuned for a few steps with model.init: hf, then:
  1. the adapter is exported; adapter_config.json holds only keys PEFT 0.7's LoraConfig knows,
     fan_in_fan_out true, and the safetensors file (parsed here by hand) exactly the
     base_model.model.transformer.h.N.<module>.lora_{A,B}.weight tensors;
  2. round trip: peft_roundtrip_driver reads the PEFT folder back into lora_dist's pairs and
     finds them bit-identical to adapter.h5;
  3. the PEFT files are applied as PEFT does to the base's Conv1D weights [in, out]:
     W += (B @ A * scale).T (fan_in_fan_out), scale = lora_alpha / r (use_rslora:
     lora_alpha / sqrt(r)) with r and lora_alpha looked up per module in rank_pattern /
     alpha_pattern the way PEFT's _create_and_replace does; the result must equal the weights
     `lora_dist merge` writes from adapter.h5 (rel. < 1e-5, and the update itself rel. < 1e-4);
  4. bad input: a missing or damaged adapter is exit 3 naming it; a folder that cannot be
     written or is not empty is exit 2 and leaves nothing behind; a PEFT c_attn whose B is
     not zero outside the targeted q/k/v blocks is refused by the reader (exit 3);
  5. lora.init_from: the exported folder loaded at tp 2 gives the first step the loss of the
     merged base (model.init: file) at tp 1 (rel. < 1e-5), not the base's own; a folder for
     other targets is exit 3, a path that is not a folder exit 2; PEFT's own layout (one
     rank-r A shared by q, k, v in c_attn) loads too and equals the adapter merged in Python.
usage: peft_export_test.py --bin lora_dist --driver peft_roundtrip_driver --work DIR --data demo_train.bin
"""
import argparse
import json
import math
import os
import re
import shutil
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hf"))
import gpt2_folder  # noqa: E402
from peft_test_util import SHAPE, check, refused as refused_line, rel, run, write_peft_own  # noqa: E402

# PEFT 0.7's LoraConfig and PeftConfig fields: a key outside these makes from_pretrained fail there.
PEFT07_KEYS = {"peft_type", "task_type", "base_model_name_or_path", "revision", "inference_mode", "auto_mapping",
               "r", "target_modules", "lora_alpha", "lora_dropout", "fan_in_fan_out", "bias", "use_rslora",
               "modules_to_save", "init_lora_weights", "layers_to_transform", "layers_pattern", "rank_pattern",
               "alpha_pattern", "megatron_config", "megatron_core", "loftq_config"}
MODULES = {"attn.c_attn": "attn.qkv.weight", "attn.c_proj": "attn.proj.weight", "mlp.c_fc": "mlp.fc.weight",
           "mlp.c_proj": "mlp.proj.weight"}
CASES = {"qv": (["q", "v"], False), "all_rslora": (["q", "k", "v", "o", "fc1", "fc2"], True),
         "k_fc2": (["k", "fc2"], False)}


def read_safetensors(path):
    """{name: float64 array}; export writes F32 only."""
    header, st = gpt2_folder.read_safetensors(path)
    assert {d for d, _ in st.values()} <= {"F32"}, (path, {d for d, _ in st.values()})
    return header, {k: v for k, (_, v) in st.items()}


def peft_rank_alpha(cfg, module_key):
    """PEFT's _create_and_replace: the first rank_pattern, then alpha_pattern key matching
    '.*\\.KEY$' against the module's full name picks both values."""
    keys = list(cfg.get("rank_pattern") or {}) + list(cfg.get("alpha_pattern") or {})
    key = next((k for k in keys if re.match(rf".*\.{k}$", module_key)), module_key)
    return (cfg.get("rank_pattern") or {}).get(key, cfg["r"]), (cfg.get("alpha_pattern") or {}).get(key, cfg["lora_alpha"])


def one_case(a, name, targets, rslora):
    work = os.path.join(a.work, name)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    folder = os.path.join(work, "gpt2")
    cfg = gpt2_folder.config_json(**SHAPE)
    tensors = gpt2_folder.random_gpt2(cfg, seed=7)
    gpt2_folder.write_folder(folder, cfg, tensors)
    yaml = os.path.join(work, "run.yaml")
    with open(yaml, "w") as f:
        f.write(f"""model: {{init: hf, path: {folder}}}
lora: {{r: 4, alpha: 8, rslora: {str(rslora).lower()}, targets: [{", ".join(targets)}]}}
optim: {{lr: 2.0e-2, warmup_steps: 0, decay: constant}}
data: {{train: {a.data}}}
train: {{steps: 4, batch_size: 4, micro_batch: 4, seq_len: 32, log_every: 1}}
output: {{dir: {work}/out}}
""")
    r = run([a.bin, "--yaml", yaml])
    check(r.returncode == 0, f"{name}: training failed\n{r.stdout}{r.stderr}")
    adapter = os.path.join(work, "out", "adapter.h5")
    peft = os.path.join(work, "peft")
    r = run([a.bin, "export", "--yaml", yaml, "--adapter", adapter, "--peft", peft])
    check(r.returncode == 0, f"{name}: export failed\n{r.stdout}{r.stderr}")
    print(r.stdout.strip())
    check(sorted(os.listdir(peft)) == ["adapter_config.json", "adapter_model.safetensors"], f"{name}: {os.listdir(peft)}")
    check(not [p for p in os.listdir(work) if ".tmp" in p], f"{name}: a temporary folder was left: {os.listdir(work)}")

    # 1. the files
    with open(os.path.join(peft, "adapter_config.json")) as f:
        pc = json.load(f)
    check(set(pc) <= PEFT07_KEYS, f"{name}: keys PEFT 0.7 does not know: {set(pc) - PEFT07_KEYS}")
    check(pc["peft_type"] == "LORA" and pc["fan_in_fan_out"] is True and pc["bias"] == "none"
          and pc["use_rslora"] is rslora and pc["r"] == 4, f"{name}: {pc}")
    header, st = read_safetensors(os.path.join(peft, "adapter_model.safetensors"))
    check(header["__metadata__"] == {"format": "pt"}, f"{name}: metadata {header['__metadata__']}")
    n_qkv = sum(t in targets for t in "qkv")
    mods = (["attn.c_attn"] if n_qkv else []) + [m for t, m in (("o", "attn.c_proj"), ("fc1", "mlp.c_fc"),
                                                                  ("fc2", "mlp.c_proj")) if t in targets]
    want_names = {f"base_model.model.transformer.h.{l}.{m}.lora_{f}.weight" for l in range(2) for m in mods for f in "AB"}
    check(set(st) == want_names, f"{name}: tensors {sorted(st)} != {sorted(want_names)}")
    print(f"{name}: config {json.dumps({k: pc[k] for k in ('r', 'lora_alpha', 'target_modules', 'rank_pattern', 'alpha_pattern', 'use_rslora')})}")

    # 2. round trip through lora_dist's reader
    r = run([a.driver, yaml, adapter, peft])
    check(r.returncode == 0 and r.stdout.startswith("identical"), f"{name}: round trip\n{r.stdout}{r.stderr}")
    print(f"{name}: round trip: {r.stdout.strip()}")

    # 3. PEFT's semantics on the Conv1D weights == lora_dist merge
    merged = os.path.join(work, "merged.h5")
    r = run([a.bin, "merge", "--yaml", yaml, "--adapter", adapter, "--out", merged])
    check(r.returncode == 0, f"{name}: merge failed\n{r.stdout}{r.stderr}")
    import h5py
    worst_w = worst_d = 0.0
    with h5py.File(merged, "r") as h:
        for l in range(2):
            for m, ours in MODULES.items():
                W0 = tensors[f"h.{l}.{m}.weight"].double().numpy()  # Conv1D [in, out]
                W = W0.copy()
                if m in mods:
                    rr, alpha = peft_rank_alpha(pc, f"transformer.h.{l}.{m}")
                    scale = alpha / math.sqrt(rr) if pc["use_rslora"] else alpha / rr
                    A = st[f"base_model.model.transformer.h.{l}.{m}.lora_A.weight"]
                    B = st[f"base_model.model.transformer.h.{l}.{m}.lora_B.weight"]
                    check(A.shape[0] == rr and B.shape[1] == rr, f"{name}: {m}: rank {rr} vs A {A.shape}, B {B.shape}")
                    W = W0 + (B @ A * scale).T  # fan_in_fan_out: the delta transposed onto [in, out]
                got = np.asarray(h[f"h.{l}.{ours}"], np.float64).T  # merge writes [out, in]
                worst_w = max(worst_w, rel(got, W))
                if m in mods:
                    worst_d = max(worst_d, rel(got - W0, W - W0))
                else:
                    check(np.array_equal(got, W0.astype(np.float32).astype(np.float64)), f"{name}: {m} changed")
    print(f"{name}: PEFT semantics vs lora_dist merge: weights rel {worst_w:.2e}, update rel {worst_d:.2e}")
    check(worst_w < 1e-5 and worst_d < 1e-4, f"{name}: merged weights differ (rel {worst_w:.2e}, update {worst_d:.2e})")
    return yaml, adapter, peft, work


def bad_inputs(a, yaml, adapter, peft, work):
    def refused(cmd, code, *needles):  # the message is the last line here
        refused_line(cmd, code, *needles, line=-1)

    exp = [a.bin, "export", "--yaml", yaml, "--adapter"]
    missing = os.path.join(work, "nope.h5")
    refused(exp + [missing, "--peft", os.path.join(work, "p1")], 3, missing)
    damaged = os.path.join(work, "damaged.h5")
    with open(adapter, "rb") as f:
        raw = bytearray(f.read())
    raw[len(raw) // 2] ^= 0x10
    with open(damaged, "wb") as f:
        f.write(raw)
    refused(exp + [damaged, "--peft", os.path.join(work, "p2")], 3, damaged)
    check(not os.path.exists(os.path.join(work, "p1")) and not os.path.exists(os.path.join(work, "p2")),
          "a refused export left its folder")
    blocker = os.path.join(work, "a_file")
    open(blocker, "w").close()
    refused(exp + [adapter, "--peft", os.path.join(blocker, "peft")], 2, os.path.join(blocker, "peft"), "cannot")
    refused(exp + [adapter, "--peft", peft], 2, peft, "not an empty folder")
    check(not [p for p in os.listdir(work) if ".tmp" in p], f"a temporary folder was left: {os.listdir(work)}")

    # A B with a non-zero entry in k's rows (k not targeted in the qv case) does not fit.
    bad = os.path.join(work, "peft_bad")
    shutil.copytree(peft, bad)
    path = os.path.join(bad, "adapter_model.safetensors")
    header, _ = read_safetensors(path)
    key = "base_model.model.transformer.h.1.attn.c_attn.lora_B.weight"
    with open(path, "r+b") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        rows, cols = header[key]["shape"]
        f.seek(8 + n + header[key]["data_offsets"][0] + 4 * (SHAPE["n_embd"] + 3) * cols)  # row d+3: k's block
        f.write(struct.pack("<f", 0.5))
    r = run([a.driver, yaml, adapter, bad])
    check(r.returncode == 3 and key in r.stderr and "must be 0" in r.stderr, f"off-block B accepted\n{r.stdout}{r.stderr}")
    print(f"refused (exit 3): {r.stderr.strip()}")


def first_loss(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return next(r["loss"] for r in map(json.loads, f) if r.get("type") == "train")


def init_from(a, yaml, adapter, peft, work, other_peft):
    """lora.init_from: the exported folder, loaded at tp 2, must give the first step the loss
    of the merged base (init: file, B = 0) at tp 1, which is not the base's own loss."""
    with open(yaml) as f:
        text = f.read()
    y2 = os.path.join(work, "init_from.yaml")
    with open(y2, "w") as f:
        f.write(text.replace("targets: [", f"init_from: {peft}, targets: [").replace("steps: 4", "steps: 1")
                .replace(f"{work}/out", f"{work}/out_init") + "parallel: {tp: 2}\n")
    r = run(["mpirun", "--oversubscribe", "--allow-run-as-root", "-np", "2", a.bin, "--yaml", y2])
    check(r.returncode == 0 and "initialised from the PEFT adapter" in r.stdout, f"init_from run\n{r.stdout}{r.stderr}")
    y4 = os.path.join(work, "merged_base.yaml")
    shape = "n_layer: 2, n_head: 2, d_model: 32, vocab_size: 256, context: 64, ln_eps: 1.0e-5"
    with open(y4, "w") as f:
        f.write(text.replace(f"model: {{init: hf, path: {work}/gpt2}}",
                             f"model: {{init: file, weights_file: {work}/merged.h5, {shape}}}")
                .replace("steps: 4", "steps: 1").replace(f"{work}/out", f"{work}/out_merged"))
    r = run([a.bin, "--yaml", y4])
    check(r.returncode == 0, f"merged-base run\n{r.stdout}{r.stderr}")
    got, want, base = first_loss(f"{work}/out_init"), first_loss(f"{work}/out_merged"), first_loss(f"{work}/out")
    print(f"init_from: first loss {got:.7f} at tp 2; merged base {want:.7f}; the base without the adapter {base:.7f}")
    check(abs(got - want) <= 1e-5 * abs(want) and abs(base - want) > 1e-3 * abs(want),
          f"init_from: loss {got} vs merged {want} (base {base})")
    # A folder for other targets does not fit; a path that is not a folder is a config error.
    for dst, code, needle in ((other_peft, 3, "do not fit lora.targets"), (os.path.join(work, "none"), 2, "lora.init_from")):
        with open(y2) as f:
            t2 = f.read()
        y3 = os.path.join(work, "init_bad.yaml")
        with open(y3, "w") as f:
            f.write(t2.replace(f"init_from: {peft}", f"init_from: {dst}").replace("parallel: {tp: 2}\n", ""))
        r = run([a.bin, "--yaml", y3])
        out = r.stdout + r.stderr
        check(r.returncode == code and needle in out, f"init_from {dst}: exit {r.returncode}\n{out}")
        print(f"refused (exit {code}): {out.strip().splitlines()[-1]}")


def peft_own_layout(a, yaml, work):
    """PEFT's own c_attn adapter (one rank-r A shared by q, k, v; B dense in Q's and V's rows,
    zero in K's), made here as PEFT saves it, read by lora.init_from into a q,v run: the first
    loss equals that of an HF folder whose c_attn has (B A * alpha/r).T added in Python."""
    cfg = gpt2_folder.config_json(**SHAPE)
    tensors = gpt2_folder.random_gpt2(cfg, seed=7)
    d, g = SHAPE["n_embd"], torch.Generator().manual_seed(3)
    own = os.path.join(work, "peft_own")
    factors = {}
    for l in range(SHAPE["n_layer"]):
        A, B = torch.randn(4, d, generator=g) * 0.2, torch.randn(3 * d, 4, generator=g) * 0.2
        B[d:2 * d] = 0  # k is not targeted
        factors[(l, "attn.c_attn")] = (A, B)
    _, merged = write_peft_own(own, factors, tensors)
    gpt2_folder.write_folder(os.path.join(work, "gpt2_own_merged"), cfg, merged)
    with open(yaml) as f:
        text = f.read().replace("steps: 4", "steps: 1")
    for name, t in (("own", text.replace("targets: [", f"init_from: {own}, targets: [")),
                    ("own_ref", text.replace(f"{work}/gpt2", f"{work}/gpt2_own_merged"))):
        y = os.path.join(work, f"{name}.yaml")
        with open(y, "w") as f:
            f.write(t.replace(f"{work}/out", f"{work}/out_{name}"))
        r = run([a.bin, "--yaml", y])
        check(r.returncode == 0, f"{name} run\n{r.stdout}{r.stderr}")
    got, want, base = first_loss(f"{work}/out_own"), first_loss(f"{work}/out_own_ref"), first_loss(f"{work}/out")
    print(f"PEFT's own rank-r c_attn via init_from: first loss {got:.7f}; merged in Python {want:.7f}; base {base:.7f}")
    check(abs(got - want) <= 1e-5 * abs(want) and abs(base - want) > 1e-3 * abs(want), "PEFT's own layout")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--driver", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--cases", default=",".join(CASES))
    a = ap.parse_args()
    a.work, a.data = os.path.abspath(a.work), os.path.abspath(a.data)
    done = {}
    for name in a.cases.split(","):
        done[name] = one_case(a, name, *CASES[name])
    first = next(iter(done.values()))
    bad_inputs(a, *first)
    if len(done) > 1:
        init_from(a, *first, list(done.values())[-1][2])  # k,fc2: other targets
    if "qv" in done:
        peft_own_layout(a, done["qv"][0], done["qv"][3])
    print("ok")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
