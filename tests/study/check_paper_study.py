#!/usr/bin/python3
"""The CI form of launch/paper_study.sh (issues 13 and 27): runs it for a few steps per run on
the shipped base (data/base/base.h5) and a few held-out records, then checks that its outputs
parse and add up:
  - study.json has the 17 runs; each has a finite held-out loss at step 0 and at its last step,
    a peak RSS for each of its 2 ranks, an adapter.h5 (LoRA) or model.h5 (ft) and a checkpoint;
  - trainable parameters equal the count from the model's shape: every weight for ft,
    n_layer * r * sum(d_in + d_out) over the targets for LoRA; the share of ft's is their ratio;
  - each run's exact match (and the base's) recounted from its eval/<run>.jsonl answers
    (answer == expected, per task and in all) equals its accuracy line and study.json's, and
    study.md's table row shows it;
  - adapter files grow with r; ft's model.h5 holds every parameter in fp32;
  - phi in [0, 1] for both pairs, both modules, every layer, with one PNG heatmap each;
  - one amplification row per adapter and module; the examples table has one row per task.
    check_paper_study.py REPO STUDY_DIR BASE_H5 STEPS
"""
import glob
import json
import math
import os
import subprocess
import sys

RANKS = (1, 2, 4, 8, 16, 64)
RUNS = (["ft"] + [f"qv_r{r}" for r in RANKS] + [f"all_r{r}" for r in RANKS] +
        ["qv_r8_seed2", "qkvo_r2"] + [f"{c}_seed{k}" for k in (2, 3, 4) for c in ("qkvo_r2", "ft")])
EVAL_RECORDS = 24
SHAPE = {"n_layer": 4, "d_model": 128, "vocab_size": 256, "context": 64}  # launch/paper_study.sh's


def recount(study, name, problems):
    """The exact match of eval/<name>.jsonl recounted from its answers, as (correct, records, per task)."""
    answers, acc = [], []
    for line in open(os.path.join(study, "eval", name + ".jsonl")):
        r = json.loads(line)
        (answers if r["type"] == "answer" else acc).append(r)
    per = {}
    for a in answers:
        c = per.setdefault(a["task"], [0, 0])
        c[0] += a["answer"] == a["expected"]
        c[1] += 1
        if a["correct"] != (a["answer"] == a["expected"]):
            problems.append(f"{name}: record {a['index']} marked correct={a['correct']}: {a['answer']!r} vs {a['expected']!r}")
    correct, n = sum(c[0] for c in per.values()), sum(c[1] for c in per.values())
    if len(acc) != 1 or acc[0]["correct"] != correct or acc[0]["records"] != n or \
            any(acc[0]["tasks"][t]["correct"] != c for t, (c, _) in per.items()):
        problems.append(f"{name}: accuracy line {acc} against the recount {correct}/{n} {per}")
    return correct, n, per


def check(study, base, steps):
    """The list of what is wrong with a finished study folder."""
    problems = []
    def expect(ok, what):
        if not ok:
            problems.append(what)

    L, d, V, C = SHAPE["n_layer"], SHAPE["d_model"], SHAPE["vocab_size"], SHAPE["context"]
    every_weight = V * d + C * d + L * (12 * d * d + 13 * d) + 2 * d
    out = json.load(open(os.path.join(study, "study.json")))
    rows = {r["run"]: r for r in out["runs"]}
    expect(sorted(rows) == sorted(RUNS), f"runs {sorted(rows)}")
    md = open(os.path.join(study, "study.md")).read()
    bc, bn, _ = recount(study, "base", problems)
    expect(bn == EVAL_RECORDS and out["base_accuracy"]["correct"] == bc, f"base: {bc}/{bn}, study.json {out['base_accuracy']}")
    expect(f"| base | – | – | 0 | 0 | – | {100 * bc / bn:.1f} % |" in md, "study.md: the base's row")
    for name in RUNS:
        r = rows.get(name)
        if r is None:
            continue
        expect(math.isfinite(r["val_loss_start"]) and math.isfinite(r["val_loss"]), f"{name}: eval losses {r}")
        expect(r["steps"] == int(steps), f"{name}: {r['steps']} steps")
        expect(len(r["peak_rss_mib_per_rank"]) == 2 and all(m > 10 for m in r["peak_rss_mib_per_rank"]),
               f"{name}: peak RSS {r['peak_rss_mib_per_rank']}")
        expect(r["checkpoint_bytes"] > 0 and r["step_seconds_median"] > 0, f"{name}: {r}")
        c, n, per = recount(study, name, problems)
        expect(n == EVAL_RECORDS and r["correct"] == c and r["records"] == n and abs(r["accuracy"] - c / n) < 1e-12,
               f"{name}: study.json accuracy {r['accuracy']} ({r['correct']}/{r['records']}), recounted {c}/{n}")
        expect(all(abs(r["task_accuracy"][t] - k / m) < 1e-12 for t, (k, m) in per.items()), f"{name}: per-task accuracy")
        share = r["trainable_params"] / rows["ft"]["trainable_params"] if "ft" in rows else None
        expect(share is not None and abs(r["trainable_share_of_ft"] - share) < 1e-12, f"{name}: share of ft")
        row = [l for l in md.splitlines() if l.startswith(f"| {name} |")]
        expect(bool(row) and f"| **{100 * c / n:.1f} %** |" in row[0] and f"| {r['trainable_params']:,} |" in row[0]
               and f"| {100 * share:.2f} |" in row[0], f"study.md row of {name}: {row[:1]}")
        if name.startswith("ft"):
            want = every_weight
            expect(r["artefact"] == "model.h5" and r["artefact_bytes"] > 4 * every_weight, f"ft: {r['artefact']}")
        else:
            rank = int(name.split("_r")[1].split("_")[0])
            # q, k, v, o: A [r, d] and B [d, r]; fc1 A [r, d], B [4d, r]; fc2 A [r, 4d], B [d, r]
            per_layer = {"qv": 2 * 2 * d, "qkvo": 4 * 2 * d, "all": 4 * 2 * d + 2 * 5 * d}[name.split("_")[0]]
            want = L * rank * per_layer
            expect(r["artefact"] == "adapter.h5", f"{name}: {r['artefact']}")
        expect(r["trainable_params"] == want, f"{name}: {r['trainable_params']} trainable parameters, expected {want}")
    sizes = [rows[f"qv_r{k}"]["artefact_bytes"] for k in RANKS if f"qv_r{k}" in rows]
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
    tasks = {t for _, _, per in [recount(study, "base", [])] for t in per}
    expect(sorted(g["task"] for g in gen) == sorted(tasks) and all(g["base"] is not None and g["qv_r8"] is not None
                                                                   for g in gen), f"examples {gen}")
    cl = out["claim"]
    small = [rows[n] for n in RUNS[1:] if n in rows and rows[n]["trainable_share_of_ft"] < 0.01]
    best = max(small, key=lambda r: (r["accuracy"], -r["trainable_params"]))
    expect(cl["best_under_1pct"]["run"] == best["run"] and abs(cl["best_under_1pct"]["points_below_ft"] - 100 * (
        rows["ft"]["accuracy"] - best["accuracy"])) < 1e-9, f"claim {cl}, best under 1 %: {best['run']}")
    expect(all(f"| {name} |" in md for name in RUNS), "study.md lacks a run's row")
    # The seed means, recomputed: ft and qkvo_r2 over 4 seeds, qv_r8 over 2; the verdict on them.
    sm = {m["config"]: m for m in out["seed_means"]["configs"]}
    for config, seeds in (("ft", ["ft", "ft_seed2", "ft_seed3", "ft_seed4"]),
                          ("qkvo_r2", ["qkvo_r2", "qkvo_r2_seed2", "qkvo_r2_seed3", "qkvo_r2_seed4"]),
                          ("qv_r8", ["qv_r8", "qv_r8_seed2"])):
        acc = sum(rows[n]["accuracy"] for n in seeds) / len(seeds)
        m = sm.get(config, {})
        expect(m.get("seeds") == len(seeds) and abs(m.get("accuracy", -1) - acc) < 1e-12,
               f"seed mean of {config}: {m}, recomputed {acc}")
        expect(f"| {config} | {len(seeds)} |" in md and f"| {100 * acc:.1f} % |" in md, f"study.md: seed mean of {config}")
    gap = 100 * (sm["ft"]["accuracy"] - sm["qkvo_r2"]["accuracy"])
    expect(out["seed_means"].get("best_under_1pct") == "qkvo_r2" and abs(out["seed_means"]["points_below_ft"] - gap) < 1e-9,
           f"the claim on the means: {out['seed_means']}")
    curves = os.path.join(study, "loss_curves.png")
    expect(os.path.exists(curves) and os.path.getsize(curves) > 5000, f"no loss curves {curves}")
    expect("![loss curves](loss_curves.png)" in md, "study.md does not show the loss curves")

    return problems


def main():
    repo, study, base, steps = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    env = dict(os.environ, STUDY_OUT=study, STUDY_BASE=base, STUDY_EVAL=str(EVAL_RECORDS))
    subprocess.run(["bash", os.path.join(repo, "launch", "paper_study.sh"), steps], check=True, env=env, timeout=1500)
    problems = check(study, base, steps)
    for p in problems:
        print("FAIL:", p)
    print(f"paper_study.short: {len(RUNS)} runs, {len(glob.glob(os.path.join(study, 'plots', '*.png')))} PNGs: "
          f"{'ok' if not problems else 'FAILED'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
