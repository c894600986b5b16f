"""`lora_dist analyze` checked number by number against numpy.

A random 2-layer HF GPT-2 folder (tests/hf/gpt2_folder.py) is fine-tuned twice on the demo
tokens: r 2 on q, v and r 4 on q, v, fc1 (another seed). The r 4 adapter is also exported as
a PEFT folder. Then:
  1. `analyze --json --plots` on [1] r2.h5, [2] r4.h5, [3] the PEFT folder (@ its YAML),
     every pair, every layer, modules q, v (the shared ones): each φ grid equals numpy's,
     φ(A1, A2, i, j) = ‖U1[:, :i]ᵀ U2[:, :j]‖²_F / min(i, j) with U from np.linalg.svd of the
     A tensors read with h5py (rel. < 1e-6), and [2] vs [3] is 1 everywhere (the same A);
  2. each amplification row equals numpy's from ΔW = scale·B·A and the base weight W read
     from the folder's safetensors (q, v: row blocks of c_attnᵀ; fc1: c_fcᵀ): ‖W‖, ‖ΔW‖,
     ΔW's singular values, ‖Uᵀ W Vᵀ‖ with ΔW's and W's top-r vectors, the factor (rel. <
     1e-6); the random projections' mean is their mean and the expectation r‖W‖/√(out·in);
     --module fc1 on [2] alone gives the fc1 row;
  3. the PNG heatmaps exist, are PNGs (signature, IHDR of a real size), one per grid;
  4. a checkpoint reads like adapter.h5 (the run's last one: φ 1 against it);
  5. bad input: a missing or damaged adapter (exit 3, named), one of another model shape (exit 3,
     the file and "model shape"), a module an adapter lacks (exit 2, file and tensor), i above
     r (exit 2), a layer out of range (exit 2), a PEFT folder read with another r (exit 3),
     a --json in a missing folder, a --pairs beyond the adapters (exit 2).
usage: analyze_test.py --bin lora_dist --work DIR --data demo_train.bin
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hf"))
import gpt2_folder  # noqa: E402

SHAPE = {"n_layer": 2, "n_head": 2, "n_embd": 32, "vocab_size": 256, "n_positions": 64}
TOL = 1e-6


def run(cmd):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300)


def check(cond, msg):
    if not cond:
        print("FAIL:", msg)
        sys.exit(1)


def rel(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300))


def write_yaml(path, folder, data, out, r, alpha, targets, seed, steps=12):
    with open(path, "w") as f:
        f.write(f"""model: {{init: hf, path: {folder}}}
lora: {{r: {r}, alpha: {alpha}, targets: [{", ".join(targets)}]}}
optim: {{lr: 3.0e-2, warmup_steps: 0, decay: constant}}
data: {{train: {data}}}
train: {{steps: {steps}, batch_size: 4, micro_batch: 4, seq_len: 32, log_every: 100, seed: {seed}}}
output: {{dir: {out}}}
""")


def train(a, yaml):
    r = run([a.bin, "--yaml", yaml])
    check(r.returncode == 0, f"training {yaml} failed\n{r.stdout}{r.stderr}")


def base_weights(tensors, d):
    """lora_dist's [out, in] base weight of each module, from the HF Conv1D [in, out] tensors."""
    W = {}
    for l in range(SHAPE["n_layer"]):
        qkv = tensors[f"h.{l}.attn.c_attn.weight"].double().numpy().T  # [3d, d], rows q; k; v
        W[(l, "q")], W[(l, "k")], W[(l, "v")] = qkv[:d], qkv[d:2 * d], qkv[2 * d:]
        W[(l, "o")] = tensors[f"h.{l}.attn.c_proj.weight"].double().numpy().T
        W[(l, "fc1")] = tensors[f"h.{l}.mlp.c_fc.weight"].double().numpy().T
        W[(l, "fc2")] = tensors[f"h.{l}.mlp.c_proj.weight"].double().numpy().T
    return W


def read_h5_adapter(path):
    with h5py.File(path, "r") as f:
        g = f["adapter"]
        return float(g.attrs["scale"]), {k: np.asarray(g[k], np.float64) for k in g}


def phi_numpy(A1, A2, max_i, max_j):
    U1 = np.linalg.svd(A1, full_matrices=False)[2].T  # [in, r]: right singular vectors, decreasing
    U2 = np.linalg.svd(A2, full_matrices=False)[2].T
    return np.array([[np.linalg.norm(U1[:, :i].T @ U2[:, :j]) ** 2 / min(i, j) for j in range(1, max_j + 1)]
                     for i in range(1, max_i + 1)])


def amplification_numpy(W, B, A, scale):
    r = A.shape[0]
    dW = scale * B @ A
    U, S, Vt = np.linalg.svd(dW)
    Uw, Sw, Vwt = np.linalg.svd(W)
    proj = np.linalg.norm(U[:, :r].T @ W @ Vt[:r].T)
    return {"w_norm": np.linalg.norm(W), "delta_norm": np.linalg.norm(dW), "delta_singular_values": S[:r],
            "w_singular_values": Sw[:r], "proj_delta": proj, "proj_w": np.linalg.norm(Uw[:, :r].T @ W @ Vwt[:r].T),
            "factor": np.linalg.norm(dW) / proj,
            "proj_random_expected": r * np.linalg.norm(W) / np.sqrt(W.shape[0] * W.shape[1])}


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    check(head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path}: not a PNG")
    return struct.unpack(">II", head[16:24])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--data", required=True)
    a = p.parse_args()
    a.work, a.data = os.path.abspath(a.work), os.path.abspath(a.data)  # the YAMLs resolve paths against their folder
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    folder = os.path.join(a.work, "gpt2")
    cfg = gpt2_folder.config_json(**SHAPE)
    tensors = gpt2_folder.random_gpt2(cfg, seed=11)
    gpt2_folder.write_folder(folder, cfg, tensors)
    d = SHAPE["n_embd"]
    W = base_weights(tensors, d)

    y2, y4 = os.path.join(a.work, "r2.yaml"), os.path.join(a.work, "r4.yaml")
    write_yaml(y2, folder, a.data, os.path.join(a.work, "out_r2"), 2, 4, ["q", "v"], seed=1)
    write_yaml(y4, folder, a.data, os.path.join(a.work, "out_r4"), 4, 8, ["q", "v", "fc1"], seed=2)
    train(a, y2)
    train(a, y4)
    h2, h4 = os.path.join(a.work, "out_r2", "adapter.h5"), os.path.join(a.work, "out_r4", "adapter.h5")
    peft = os.path.join(a.work, "peft_r4")
    r = run([a.bin, "export", "--yaml", y4, "--adapter", h4, "--peft", peft])
    check(r.returncode == 0, f"export failed\n{r.stdout}{r.stderr}")
    adapters = [read_h5_adapter(h2), read_h5_adapter(h4), read_h5_adapter(h4)]  # [3] is [2] through PEFT

    # 1. + 2. the whole analysis against numpy
    out_json, plots = os.path.join(a.work, "analysis.json"), os.path.join(a.work, "plots")
    r = run([a.bin, "analyze", "--yaml", y2, "--adapter", h2, "--adapter", h4, "--adapter", f"{peft}@{y4}",
             "--pairs", "all", "--random-draws", "5", "--json", out_json, "--plots", plots])
    check(r.returncode == 0, f"analyze failed\n{r.stdout}{r.stderr}")
    print(r.stdout)
    with open(out_json) as f:
        rep = json.load(f)
    check([x["r"] for x in rep["adapters"]] == [2, 4, 4] and [x["kind"] for x in rep["adapters"]] == ["hdf5", "hdf5", "peft"],
          f"adapters {rep['adapters']}")
    check(rep["adapters"][0]["targets"] == "q,v" and rep["adapters"][1]["targets"] == "q,v,fc1", "targets")
    want_grids = {(l, m, i, j) for l in range(2) for m in ("q", "v") for i, j in ((1, 2), (1, 3), (2, 3))}
    got_grids = {(s["layer"], s["module"], s["a"], s["b"]) for s in rep["similarity"]}
    check(got_grids == want_grids, f"grids {sorted(got_grids)} != {sorted(want_grids)}")
    worst_phi = 0.0
    for s in rep["similarity"]:
        (_, ta), (_, tb) = adapters[s["a"] - 1], adapters[s["b"] - 1]
        name = f"h.{s['layer']}.lora.{s['module']}.A"
        want = phi_numpy(ta[name], tb[name], s["max_i"], s["max_j"])
        got = np.array(s["phi"])
        check(got.shape == (ta[name].shape[0], tb[name].shape[0]), f"{name}: grid {got.shape}")
        e = rel(got, want)
        worst_phi = max(worst_phi, e)
        check(e < TOL and np.abs(got - want).max() < 1e-9, f"phi {s['a']} vs {s['b']} {name}: rel {e:.2e}\n{got}\n{want}")
        if (s["a"], s["b"]) == (2, 3):
            check(np.abs(got - 1).max() < 1e-9, f"an adapter and its own PEFT export: phi {got}")
    print(f"phi: {len(rep['similarity'])} grids equal numpy's, worst rel {worst_phi:.2e}")

    worst_amp = 0.0
    rows = {(x["adapter"], x["layer"], x["module"]) for x in rep["amplification"]}
    check(rows == {(k, l, m) for k in (1, 2, 3) for l in range(2) for m in ("q", "v")}, f"amplification rows {sorted(rows)}")
    for x in rep["amplification"]:
        scale, t = adapters[x["adapter"] - 1]
        check(abs(x["scale"] - scale) <= 1e-7 * scale, f"scale {x['scale']} vs {scale}")
        pre = f"h.{x['layer']}.lora.{x['module']}."
        want = amplification_numpy(W[(x["layer"], x["module"])], t[pre + "B"], t[pre + "A"], scale)
        for key, v in want.items():
            e = rel(x[key], v)
            worst_amp = max(worst_amp, e)
            check(e < TOL, f"amplification [{x['adapter']}] {pre} {key}: {x[key]} vs numpy {v} (rel {e:.2e})")
        check(len(x["proj_random"]) == 5 and abs(np.mean(x["proj_random"]) - x["proj_random_mean"]) < 1e-12,
              f"random draws {x['proj_random']} mean {x['proj_random_mean']}")
        # Uniform subspaces: each draw's norm is at most ‖W‖ and, for 5 draws, near the expectation.
        check(max(x["proj_random"]) < x["w_norm"] and 0.3 < x["proj_random_mean"] / x["proj_random_expected"] < 3,
              f"random projections {x['proj_random']} vs expected {x['proj_random_expected']}")
        check(x["factor"] > 0 and x["out"] == d and x["in"] == d, f"{x}")
    print(f"amplification: {len(rep['amplification'])} rows equal numpy's, worst rel {worst_amp:.2e}")
    same = {(x["layer"], x["module"]): x for x in rep["amplification"] if x["adapter"] == 2}
    for x in rep["amplification"]:
        if x["adapter"] == 3:  # the PEFT copy: the same factors, and the same random draws for the same r
            y = same[(x["layer"], x["module"])]
            check(all(abs(x[k] - y[k]) <= 1e-12 * abs(y[k]) for k in ("delta_norm", "proj_delta", "factor", "proj_random_mean")),
                  f"PEFT copy differs: {x} vs {y}")

    # fc1 (only [2] has it): one row with W = c_fcᵀ [4d, d]
    j2 = os.path.join(a.work, "fc1.json")
    r = run([a.bin, "analyze", "--yaml", y4, "--adapter", h4, "--module", "fc1", "--layer", "1", "--json", j2])
    check(r.returncode == 0, f"analyze fc1\n{r.stdout}{r.stderr}")
    with open(j2) as f:
        rep2 = json.load(f)
    check(rep2["similarity"] == [] and len(rep2["amplification"]) == 1, f"{rep2}")
    x = rep2["amplification"][0]
    want = amplification_numpy(W[(1, "fc1")], adapters[1][1]["h.1.lora.fc1.B"], adapters[1][1]["h.1.lora.fc1.A"],
                               adapters[1][0])
    check(x["out"] == 4 * d and x["in"] == d and all(rel(x[k], v) < TOL for k, v in want.items()), f"fc1: {x} vs {want}")
    print(f"fc1: ||dW|| {x['delta_norm']:.6g}, factor {x['factor']:.6g} equal numpy's")

    # A checkpoint is read like adapter.h5 (its /adapter group): the run's last one holds the same A.
    ckpt_dir = os.path.join(a.work, "out_r4", "checkpoints")
    ckpt = os.path.join(ckpt_dir, sorted(os.listdir(ckpt_dir))[-1])
    j3 = os.path.join(a.work, "checkpoint.json")
    r = run([a.bin, "analyze", "--yaml", y2, "--adapter", h4, "--adapter", ckpt, "--module", "v", "--json", j3])
    check(r.returncode == 0, f"analyze of a checkpoint\n{r.stdout}{r.stderr}")
    with open(j3) as f:
        rep3 = json.load(f)
    check(rep3["adapters"][1]["r"] == 4 and all(np.abs(np.array(s["phi"]) - 1).max() < 1e-9 for s in rep3["similarity"]),
          f"checkpoint vs its adapter.h5: {rep3['similarity']}")
    print(f"checkpoint {os.path.basename(ckpt)}: phi 1 against its adapter.h5 at both layers")

    # 3. the heatmaps
    pngs = sorted(os.listdir(plots))
    want_pngs = sorted(f"phi_layer{l}_{m}_{i}v{j}.png" for l, m, i, j in want_grids)
    check([p for p in pngs if p.endswith(".png")] == want_pngs, f"plots {pngs}")
    for name in want_pngs:
        path = os.path.join(plots, name)
        w, h = png_size(path)
        check(w >= 300 and h >= 300 and os.path.getsize(path) > 5000, f"{path}: {w}x{h}, {os.path.getsize(path)} bytes")
    print(f"plots: {len(want_pngs)} PNG heatmaps, e.g. {want_pngs[0]} {png_size(os.path.join(plots, want_pngs[0]))}")

    # 4. bad input
    other_folder = os.path.join(a.work, "gpt2_wide")
    other_cfg = gpt2_folder.config_json(**dict(SHAPE, n_embd=48))
    gpt2_folder.write_folder(other_folder, other_cfg, gpt2_folder.random_gpt2(other_cfg, seed=3))
    y_other = os.path.join(a.work, "wide.yaml")
    write_yaml(y_other, other_folder, a.data, os.path.join(a.work, "out_wide"), 2, 4, ["q", "v"], seed=1, steps=1)
    train(a, y_other)
    h_other = os.path.join(a.work, "out_wide", "adapter.h5")
    base = [a.bin, "analyze", "--yaml", y2, "--adapter", h2]

    def refused(extra, code, *needles):
        r = run(base + extra)
        out = r.stdout + r.stderr
        check(r.returncode == code and all(n in out for n in needles),
              f"{extra}: exit {r.returncode}, expected {code} with {needles}\n{out}")
        print(f"refused (exit {code}): {out.strip().splitlines()[-1]}")

    missing = os.path.join(a.work, "nope.h5")
    refused(["--adapter", missing], 3, missing)
    damaged = os.path.join(a.work, "damaged.h5")
    with open(h4, "rb") as f:
        raw = bytearray(f.read())
    raw[len(raw) // 2] ^= 0x10
    with open(damaged, "wb") as f:
        f.write(raw)
    refused(["--adapter", damaged], 3, damaged)
    refused(["--adapter", h_other], 3, h_other, "model shape differs", "d_model 48")
    refused(["--adapter", h4, "--module", "fc1"], 2, h2, "h.0.lora.fc1.A", "q,v")
    refused(["--adapter", h4, "--max-i", "3"], 2, "--max-i 3", h2, "r 2")
    refused(["--adapter", h4, "--max-j", "5"], 2, "--max-j 5", h4, "r 4")
    refused(["--adapter", h4, "--layer", "2"], 2, "--layer 2", "0 to 1")
    refused(["--adapter", peft], 3, os.path.join(peft, "adapter_config.json"))  # read with r2.yaml's lora: r 2
    refused(["--adapter", h4, "--json", os.path.join(a.work, "no_dir", "x.json")], 2, "no_dir")
    refused(["--adapter", h4, "--pairs", "1-3"], 2, "--pairs 1-3")
    print("analyze: all checks passed")


if __name__ == "__main__":
    main()
