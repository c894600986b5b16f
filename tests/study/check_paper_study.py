#!/usr/bin/python3
"""The CI form of launch/paper_study.sh (issue 13, point 4): runs it for a few steps per run on
the 4-step base that pretrain.base_short leaves, then checks that its outputs parse and hold
together:
  - study.json has the 12 runs; each has a finite eval loss at step 0 and at its last step, a
    peak RSS for each of its 2 ranks, an adapter.h5 (LoRA) or model.h5 (ft) and a checkpoint;
  - trainable parameters equal what the base's config.json gives: every weight for ft,
    n_layer * targets * r * (d_in + d_out) for LoRA; the q,k,v,o runs match their q,v partners;
  - adapter files grow with r; ft's model.h5 holds every parameter in fp32;
  - phi in [0, 1] for both pairs, both modules, every layer, with one PNG heatmap each;
  - one amplification row per adapter and module; generate answered every prompt for the
    base and qv_r8; the token coverage of the task by the base's pretraining text parses.
    check_paper_study.py REPO STUDY_DIR BASE_DIR STEPS
"""
import glob
import json
import math
import os
import subprocess
import sys

RUNS = ["ft", "qv_r1", "qv_r2", "qv_r4", "qv_r8", "qv_r64", "qkvo_r1", "qkvo_r2", "qkvo_r4", "qkvo_r32", "qv_r8_seed2",
        "all_r8"]
PROMPTS = 2


def check(study, base, steps, prompts):
    """The list of what is wrong with a finished study folder."""
    problems = []
    def expect(ok, what):
        if not ok:
            problems.append(what)

    cfg = json.load(open(os.path.join(base, "config.json")))
    L, d, V, C = cfg["n_layer"], cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"]
    every_weight = V * d + C * d + L * (12 * d * d + 13 * d) + 2 * d
    out = json.load(open(os.path.join(study, "study.json")))
    rows = {r["run"]: r for r in out["runs"]}
    expect(sorted(rows) == sorted(RUNS), f"runs {sorted(rows)}")
    for name in RUNS:
        r = rows.get(name)
        if r is None:
            continue
        expect(math.isfinite(r["val_loss_start"]) and math.isfinite(r["val_loss"]), f"{name}: eval losses {r}")
        expect(r["steps"] == int(steps), f"{name}: {r['steps']} steps")
        expect(len(r["peak_rss_mib_per_rank"]) == 2 and all(m > 10 for m in r["peak_rss_mib_per_rank"]),
               f"{name}: peak RSS {r['peak_rss_mib_per_rank']}")
        expect(r["checkpoint_bytes"] > 0 and r["step_seconds_median"] > 0, f"{name}: {r}")
        if name == "ft":
            want = every_weight
            expect(r["artefact"] == "model.h5" and r["artefact_bytes"] > 4 * every_weight, f"ft: {r['artefact']}")
        else:
            rank = int(name.split("_r")[1].split("_")[0])
            # q, k, v, o: A [r, d] and B [d, r]; fc1 A [r, d], B [4d, r]; fc2 A [r, 4d], B [d, r]
            per_layer = {"qv": 2 * 2 * d, "qkvo": 4 * 2 * d, "all": 4 * 2 * d + 2 * 5 * d}[name.split("_")[0]]
            want = L * rank * per_layer
            expect(r["artefact"] == "adapter.h5", f"{name}: {r['artefact']}")
        expect(r["trainable_params"] == want, f"{name}: {r['trainable_params']} trainable parameters, expected {want}")
    sizes = [rows[f"qv_r{k}"]["artefact_bytes"] for k in (1, 2, 4, 8, 64) if f"qv_r{k}" in rows]
    expect(sizes == sorted(sizes) and len(set(sizes)) == len(sizes), f"q,v adapter sizes by r: {sizes}")

    analysis = json.load(open(os.path.join(study, "analysis.json")))
    pairs = {(s["a"], s["b"]) for s in analysis["similarity"]}
    expect(pairs == {(1, 2), (1, 3)}, f"phi pairs {pairs}")
    expect(len(analysis["similarity"]) == 2 * 2 * L, f"{len(analysis['similarity'])} phi grids, expected {4 * L}")
    for s in analysis["similarity"]:
        flat = [v for row in s["phi"] for v in row]
        expect(all(-1e-9 <= v <= 1 + 1e-9 for v in flat), f"phi outside [0, 1] at layer {s['layer']} {s['module']}")
        png = os.path.join(study, "plots", f"phi_layer{s['layer']}_{s['module']}_{s['a']}v{s['b']}.png")
        expect(os.path.getsize(png) > 1000 if os.path.exists(png) else False, f"missing {png}")
    expect(len(out["similarity"]) == 4, f"{len(out['similarity'])} phi summary rows")
    expect(len(out["amplification"]) == 6 and all(a["delta_norm"] > 0 for a in out["amplification"]),
           f"amplification rows {out['amplification']}")
    gen = out["generate"]
    expect(len(gen) == prompts and all(g["base"] is not None and g["qv_r8"] is not None for g in gen), f"generate {gen}")
    cov = out["coverage"]
    expect(cov is not None and 0 <= cov["completion"]["never_seen"] <= 1 and cov["completion"]["tokens"] > 1000,
           f"coverage {cov}")
    md = open(os.path.join(study, "study.md")).read()
    expect(all(f"| {name} |" in md for name in RUNS), "study.md lacks a run's row")
    curves = os.path.join(study, "loss_curves.png")
    expect(os.path.exists(curves) and os.path.getsize(curves) > 5000, f"no loss curves {curves}")
    expect("![loss curves](loss_curves.png)" in md, "study.md does not show the loss curves")

    return problems


def main():
    repo, study, base, steps = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    env = dict(os.environ, STUDY_OUT=study, STUDY_BASE=base, STUDY_PROMPTS=str(PROMPTS))
    subprocess.run(["bash", os.path.join(repo, "launch", "paper_study.sh"), steps], check=True, env=env, timeout=1500)
    problems = check(study, base, steps, PROMPTS)
    for p in problems:
        print("FAIL:", p)
    print(f"paper_study.short: {len(RUNS)} runs, {len(glob.glob(os.path.join(study, 'plots', '*.png')))} PNGs: "
          f"{'ok' if not problems else 'FAILED'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
