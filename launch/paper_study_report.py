#!/usr/bin/python3
"""The table of launch/paper_study.sh, from what its runs left in the study folder.

    paper_study_report.py STUDY_DIR RUN [RUN ...]

Reads, per run, runs/<RUN>.yaml, runs/<RUN>.plan.json (`lora_dist plan --json`),
runs/<RUN>/metrics.jsonl, its adapter.h5 or model.h5 and its newest checkpoint, and
eval/<RUN>.jsonl (`lora_dist generate --eval --eval-out`: its greedy answers to the held-out
prompts and their exact-match accuracy, as lora_dist counted it; eval/base.jsonl is the base's);
then analysis.json (`lora_dist analyze`) and, where present, coverage.json (launch/token_coverage.py).
Writes study.md (the tables the README quotes) and study.json (every number), prints study.md,
and exits 1 when something a study must have is missing or inconsistent: a run without an end
record, a finite eval loss or an accuracy line, q,k,v,o runs whose budget differs from their q,v
partners', or an analysis without both pairs.
"""
import glob
import json
import math
import os
import re
import statistics
import sys

MIB = 1 << 20
# Each q,k,v,o run and the q,v run with its trainable parameters (Table 5's fixed budget).
SAME_BUDGET = {"qkvo_r1": "qv_r2", "qkvo_r2": "qv_r4", "qkvo_r4": "qv_r8", "qkvo_r32": "qv_r64"}


def fail(msg):
    print(f"paper_study_report: {msg}", file=sys.stderr)
    sys.exit(1)


def human(nbytes):
    for unit, size in (("GiB", 1 << 30), ("MiB", MIB), ("KiB", 1 << 10)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{nbytes} B"


def read_eval(study, name):
    """(answers, accuracy line) of eval/<name>.jsonl."""
    path = os.path.join(study, "eval", name + ".jsonl")
    if not os.path.isfile(path):
        fail(f"{path}: missing (generate --eval of {name})")
    answers, acc = [], None
    for line in open(path):
        r = json.loads(line)
        if r.get("type") == "answer":
            answers.append(r)
        elif r.get("type") == "accuracy":
            acc = r
    if acc is None or not answers:
        fail(f"{path}: no accuracy line or no answers")
    return answers, acc


def run_row(study, name):
    run_dir = os.path.join(study, "runs", name)
    full = "enabled: false" in open(os.path.join(study, "runs", name + ".yaml")).read()
    plan = json.load(open(os.path.join(study, "runs", name + ".plan.json")))
    records = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    evals = [r for r in records if r["type"] == "eval"]
    train = [r for r in records if r["type"] == "train"]
    ends = [r for r in records if r["type"] == "end"]
    if not evals or not train or not ends:
        fail(f"{run_dir}/metrics.jsonl: {len(evals)} eval, {len(train)} train, {len(ends)} end records")
    final = evals[-1]["val_loss"]
    if not math.isfinite(final) or evals[-1]["step"] != train[-1]["step"]:
        fail(f"{run_dir}: the last eval ({final} at step {evals[-1]['step']}) is not the last step's")
    steady = [r["step_seconds"] for r in train if r["step"] > 3] or [r["step_seconds"] for r in train]
    artefact = os.path.join(run_dir, "model.h5" if full else "adapter.h5")
    checkpoints = sorted(glob.glob(os.path.join(run_dir, "checkpoints", "step_*.h5")))
    if not os.path.isfile(artefact) or not checkpoints:
        fail(f"{run_dir}: no {os.path.basename(artefact)} or no checkpoint")
    mode = plan["full_finetuning" if full else "lora"]
    cfg = plan["config"]
    _, acc = read_eval(study, name)
    return {
        "accuracy": acc["accuracy"],
        "correct": acc["correct"],
        "records": acc["records"],
        "task_accuracy": {t: v["accuracy"] for t, v in acc["tasks"].items()},
        "run": name,
        "mode": "full" if full else "lora",
        "targets": "all weights" if full else cfg["lora_targets"],
        "r": None if full else cfg["lora_r"],
        "trainable_params": cfg["base_params"] if full else cfg["trainable_params"],
        "val_loss_start": evals[0]["val_loss"],
        "val_loss": final,
        "steps": train[-1]["step"],
        "step_seconds_median": statistics.median(steady),
        "tokens_per_step": cfg["tokens_per_step"],
        "peak_rss_mib_per_rank": ends[-1]["peak_rss_mib"],
        "planned_peak_rss_mib": mode["memory"]["peak_per_rank"] / MIB,
        "artefact": os.path.basename(artefact),
        "artefact_bytes": os.path.getsize(artefact),
        "checkpoint_bytes": os.path.getsize(checkpoints[-1]),
    }


def check_budgets(rows):
    by_name = {r["run"]: r for r in rows}
    for qkvo, qv in SAME_BUDGET.items():
        if qkvo in by_name and qv in by_name and by_name[qkvo]["trainable_params"] != by_name[qv]["trainable_params"]:
            fail(f"{qkvo} trains {by_name[qkvo]['trainable_params']} parameters, {qv} "
                 f"{by_name[qv]['trainable_params']}: not the same budget")


def similarity_summary(analysis):
    """Per compared pair and module: phi(1,1), the mean of phi over i, j <= 8 (layers averaged),
    and what random subspaces of the same sizes give on average, max(i, j) / d."""
    names = {a["index"]: os.path.basename(os.path.dirname(a["path"])) for a in analysis["adapters"]}
    groups = {}
    for s in analysis["similarity"]:
        groups.setdefault((s["a"], s["b"], s["module"]), []).append(s)
    out = []
    for (a, b, module), entries in sorted(groups.items()):
        d = next(x["in"] for x in analysis["amplification"] if x["module"] == module)
        n = min(8, entries[0]["max_i"]), min(8, entries[0]["max_j"])
        block = [[statistics.mean(e["phi"][i][j] for e in entries) for j in range(n[1])] for i in range(n[0])]
        rand = statistics.mean(max(i + 1, j + 1) / d for i in range(n[0]) for j in range(n[1]))
        out.append({"a": names[a], "b": names[b], "module": module, "layers": len(entries),
                    "phi_1_1": block[0][0], "phi_mean_8x8": statistics.mean(sum(block, [])),
                    "phi_1_1_random": 1 / d, "phi_mean_8x8_random": rand, "phi_first_row": block[0]})
    if len({(x["a"], x["b"]) for x in out}) < 2:
        fail("analysis.json: fewer than two compared pairs")
    return out


def amplification_summary(analysis):
    """Per adapter and module, averaged over layers: ||dW||_F, ||U'WV'||_F for dW's, W's own and
    random directions, and the factor ||dW|| / ||U'WV'|| (the paper's Table 7)."""
    names = {a["index"]: os.path.basename(os.path.dirname(a["path"])) for a in analysis["adapters"]}
    groups = {}
    for x in analysis["amplification"]:
        groups.setdefault((x["adapter"], x["module"]), []).append(x)
    out = []
    for (adapter, module), xs in sorted(groups.items()):
        mean = lambda key: statistics.mean(x[key] for x in xs)  # noqa: E731
        out.append({"adapter": names[adapter], "module": module, "r": xs[0]["r"], "layers": len(xs),
                    "delta_norm": mean("delta_norm"), "proj_delta": mean("proj_delta"), "proj_w": mean("proj_w"),
                    "proj_random": mean("proj_random_mean"), "w_norm": mean("w_norm"),
                    "factor": statistics.mean(x["factor"] for x in xs if x["factor"] is not None)})
    return out


EXAMPLE_RUNS = ("base", "ft", "qv_r1", "qv_r8", "all_r8")


def generations(study, names):
    """The first held-out record of each task: prompt, expected answer, and the greedy answers
    of the base and of some runs."""
    who = [w for w in EXAMPLE_RUNS if w == "base" or w in names]
    evals = {w: read_eval(study, w)[0] for w in who}
    out, seen = [], set()
    for i, r in enumerate(evals["base"]):
        if r["task"] in seen:
            continue
        seen.add(r["task"])
        row = {"task": r["task"], "prompt": r["prompt"], "expected": r["expected"]}
        for w in who:
            row[w] = evals[w][i]["answer"]
        out.append(row)
    return out


def claim(rows, base_acc):
    """The paper's claim in numbers: the most accurate LoRA run below 1 % of full fine-tuning's
    trainable parameters against full fine-tuning's accuracy."""
    ft = next((r for r in rows if r["mode"] == "full"), None)
    if ft is None:
        return None
    for r in rows:
        r["trainable_share_of_ft"] = r["trainable_params"] / ft["trainable_params"]
    small = [r for r in rows if r["mode"] == "lora" and r["trainable_share_of_ft"] < 0.01]
    best = max(small, key=lambda r: (r["accuracy"], -r["trainable_params"]), default=None)
    best_any = max((r for r in rows if r["mode"] == "lora"), key=lambda r: (r["accuracy"], -r["trainable_params"]),
                   default=None)
    out = {"base_accuracy": base_acc, "ft_accuracy": ft["accuracy"], "ft_params": ft["trainable_params"]}
    for key, r in (("best_under_1pct", best), ("best_lora", best_any)):
        if r is not None:
            out[key] = {"run": r["run"], "accuracy": r["accuracy"], "params": r["trainable_params"],
                        "share_of_ft": r["trainable_share_of_ft"], "points_below_ft": 100 * (ft["accuracy"] - r["accuracy"])}
    if best is not None:
        out["within_2_points_under_1pct"] = out["best_under_1pct"]["points_below_ft"] <= 2.0
    # The fewest trainable parameters with which LoRA comes within 2 points of full fine-tuning.
    close = [r for r in rows if r["mode"] == "lora" and 100 * (ft["accuracy"] - r["accuracy"]) <= 2.0]
    fewest = min(close, key=lambda r: (r["trainable_params"], -r["accuracy"]), default=None)
    if fewest is not None:
        out["fewest_within_2_points"] = {"run": fewest["run"], "accuracy": fewest["accuracy"],
                                         "params": fewest["trainable_params"],
                                         "share_of_ft": fewest["trainable_share_of_ft"],
                                         "points_below_ft": 100 * (ft["accuracy"] - fewest["accuracy"])}
    return out


def seed_means(rows):
    """Runs that differ only by seed (NAME, NAME_seed2, ...) averaged: [{config, seeds, accuracy,
    val_loss, params, share_of_ft}] for every configuration run with two seeds or more, and the
    paper's claim on the means: the best such LoRA configuration under 1 % of ft's parameters
    against ft's mean."""
    groups = {}
    for r in rows:
        groups.setdefault(re.sub(r"_seed[0-9]+$", "", r["run"]), []).append(r)
    means = [{"config": name, "seeds": len(rs), "mode": rs[0]["mode"],
              "accuracy": statistics.mean(r["accuracy"] for r in rs), "val_loss": statistics.mean(r["val_loss"] for r in rs),
              "params": rs[0]["trainable_params"], "share_of_ft": rs[0].get("trainable_share_of_ft")}
             for name, rs in groups.items() if len(rs) >= 2]
    ft = next((m for m in means if m["mode"] == "full"), None)
    small = [m for m in means if m["mode"] == "lora" and m["share_of_ft"] is not None and m["share_of_ft"] < 0.01]
    best = max(small, key=lambda m: m["accuracy"], default=None)
    out = {"configs": means}
    if ft and best:
        out["ft"], out["best_under_1pct"] = ft["config"], best["config"]
        out["points_below_ft"] = 100 * (ft["accuracy"] - best["accuracy"])
        out["within_2_points_under_1pct"] = out["points_below_ft"] <= 2.0
    return out


def below(points):
    """'3.1 points below' or '2.0 points above'."""
    return f"{points:.1f} points below" if points >= 0 else f"{-points:.1f} points above"


def markdown(rows, sim, amp, gen, coverage, verdict, base_acc, means=None):
    show = lambda s: s.replace("\n", "\\n").replace("|", "\\|")  # noqa: E731
    lines = ["| run | adapted | r | trainable params | % of ft | held-out loss (step 0 → last) | exact match | "
             "step (s, median) | peak RSS per rank, MiB: measured (plan) | adapter / model | checkpoint |",
             "|---|---|---:|---:|---:|---|---:|---:|---|---:|---:|",
             f"| base | – | – | 0 | 0 | – | {100 * base_acc['accuracy']:.1f} % | – | – | – | – |"]
    for r in rows:
        rss = ", ".join(f"{m:.0f}" for m in r["peak_rss_mib_per_rank"])
        share = f"{100 * r['trainable_share_of_ft']:.2f}" if "trainable_share_of_ft" in r else "–"
        lines.append(f"| {r['run']} | {r['targets']} | {r['r'] or '–'} | {r['trainable_params']:,} | {share} | "
                     f"{r['val_loss_start']:.3f} → **{r['val_loss']:.3f}** | **{100 * r['accuracy']:.1f} %** | "
                     f"{r['step_seconds_median']:.2f} | "
                     f"{rss} ({r['planned_peak_rss_mib']:.0f}) | {human(r['artefact_bytes'])} | "
                     f"{human(r['checkpoint_bytes'])} |")
    tasks = list(base_acc["tasks"])
    lines += ["", f"Exact match per task ({base_acc['records']} held-out records, greedy):", "",
              "| run | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks),
              "| base | " + " | ".join(f"{100 * base_acc['tasks'][t]['accuracy']:.0f} %" for t in tasks) + " |"]
    for r in rows:
        lines.append(f"| {r['run']} | " + " | ".join(f"{100 * r['task_accuracy'].get(t, 0):.0f} %" for t in tasks) + " |")
    if verdict and "best_under_1pct" in verdict:
        b = verdict["best_under_1pct"]
        lines += ["", f"Full fine-tuning: {100 * verdict['ft_accuracy']:.1f} % exact match with {verdict['ft_params']:,} "
                  f"trainable parameters. The best LoRA run under 1 % of them: {b['run']}, {100 * b['accuracy']:.1f} % with "
                  f"{b['params']:,} ({100 * b['share_of_ft']:.2f} %), {below(b['points_below_ft'])} full "
                  f"fine-tuning: {'within' if verdict['within_2_points_under_1pct'] else 'not within'} 2 points."]
        f = verdict.get("fewest_within_2_points")
        lines[-1] += (f" The fewest trainable parameters with which LoRA comes within 2 points: {f['run']}, "
                      f"{100 * f['accuracy']:.1f} % with {f['params']:,} ({100 * f['share_of_ft']:.2f} %), "
                      f"{below(f['points_below_ft'])} full fine-tuning." if f else
                      " No LoRA run comes within 2 points.")
    if means and means["configs"]:
        lines += ["", "Averaged over seeds (a run's exact match moves by several points from one seed to the next):", "",
                  "| configuration | seeds | trainable params | % of ft | held-out loss, mean | exact match, mean |",
                  "|---|---:|---:|---:|---:|---:|"]
        for m in means["configs"]:
            share = f"{100 * m['share_of_ft']:.2f}" if m["share_of_ft"] is not None else "–"
            lines.append(f"| {m['config']} | {m['seeds']} | {m['params']:,} | {share} | {m['val_loss']:.3f} | "
                         f"{100 * m['accuracy']:.1f} % |")
        if "best_under_1pct" in means:
            lines += ["", f"On the means: {means['best_under_1pct']} (under 1 % of ft's parameters) is "
                      f"{below(means['points_below_ft'])} {means['ft']}: "
                      f"{'within' if means['within_2_points_under_1pct'] else 'not within'} 2 points."]
    lines += ["", "| φ of | module | layers | φ(1,1) | random φ(1,1) | mean φ, i,j ≤ 8 | random, same sizes |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for s in sim:
        lines.append(f"| {s['a']} vs {s['b']} | {s['module']} | {s['layers']} | {s['phi_1_1']:.3f} | "
                     f"{s['phi_1_1_random']:.3f} | {s['phi_mean_8x8']:.3f} | {s['phi_mean_8x8_random']:.3f} |")
    lines += ["", "| adapter | module | r | ‖ΔW‖_F | ‖UᵀWVᵀ‖_F, ΔW's U,V | W's own top-r | random | ‖W‖_F | "
              "factor ‖ΔW‖/‖UᵀWVᵀ‖ |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for a in amp:
        lines.append(f"| {a['adapter']} | {a['module']} | {a['r']} | {a['delta_norm']:.3f} | {a['proj_delta']:.3f} | "
                     f"{a['proj_w']:.3f} | {a['proj_random']:.3f} | {a['w_norm']:.2f} | {a['factor']:.2f} |")
    who = [k for k in EXAMPLE_RUNS if gen and k in gen[0]]
    lines += ["", "The first held-out record of each task (greedy answers up to the first newline):", "",
              "| prompt | expected | " + " | ".join(who) + " |", "|---|---|" + "---|" * len(who)]
    for g in gen:
        lines.append("| " + " | ".join(f"`{show(g[k])}`" for k in ["prompt", "expected"] + who) + " |")
    if coverage:
        c, p = coverage["completion"], coverage["prompt"]
        lines += ["", f"Of the task's {c['tokens']:,} completion tokens, {100 * c['never_seen']:.1f} % never occur in the "
                  f"{coverage['pretraining_tokens']:,} tokens the base was pretrained on and {100 * c['seen_under_10']:.1f} % "
                  f"fewer than 10 times ({c['distinct_never_seen']} of {c['distinct']} distinct tokens never); of its "
                  f"prompt tokens {100 * p['never_seen']:.1f} % never."]
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) < 3:
        fail("usage: paper_study_report.py STUDY_DIR RUN [RUN ...]")
    study, names = sys.argv[1], sys.argv[2:]
    rows = [run_row(study, n) for n in names]
    check_budgets(rows)
    analysis = json.load(open(os.path.join(study, "analysis.json")))
    sim, amp, gen = similarity_summary(analysis), amplification_summary(analysis), generations(study, names)
    coverage_path = os.path.join(study, "coverage.json")
    coverage = json.load(open(coverage_path)) if os.path.exists(coverage_path) else None
    base_acc = read_eval(study, "base")[1]
    verdict = claim(rows, base_acc["accuracy"])
    means = seed_means(rows)
    text = markdown(rows, sim, amp, gen, coverage, verdict, base_acc, means)
    if os.path.exists(os.path.join(study, "loss_curves.png")):  # launch/plot_losses.py, drawn by paper_study.sh
        text += ("\nTrain loss, eval loss and learning rate of full fine-tuning and of LoRA at r 1, 8, 64 (q,v) "
                 "and r 8 (every target), step by step:\n\n![loss curves](loss_curves.png)\n")
    with open(os.path.join(study, "study.md"), "w") as f:
        f.write(text)
    with open(os.path.join(study, "study.json"), "w") as f:
        json.dump({"runs": rows, "base_accuracy": base_acc, "claim": verdict, "seed_means": means, "similarity": sim, "amplification": amp,
                   "generate": gen, "coverage": coverage}, f,
                  indent=1)
    print(text)


if __name__ == "__main__":
    main()
