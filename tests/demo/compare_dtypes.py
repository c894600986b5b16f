#!/usr/bin/python3
"""model.dtype bf16 against fp32 on the shortened demo (4 ranks, tp 2 x dp 2, same seed).

Checks: the loss of the first step agrees within 1e-2 relative, the final eval loss within
1 % (both runs print their figures; README "Performance" quotes them).
    compare_dtypes.py BINARY YAML OUTDIR
"""
import json
import os
import subprocess
import sys

FIRST_STEP_REL = 1e-2
FINAL_EVAL_REL = 1e-2


def run(binary, yaml, outdir, dtype):
    out = os.path.join(outdir, dtype)
    os.makedirs(out, exist_ok=True)
    metrics = os.path.join(out, "metrics.jsonl")
    if os.path.exists(metrics):
        os.remove(metrics)
    cfg = os.path.join(out, "demo_short.yaml")
    with open(yaml) as src, open(cfg, "w") as dst:
        text = src.read().replace("../../data/", os.path.join(os.path.dirname(os.path.abspath(yaml)), "../../data/"))
        text = text.replace("init_std: 0.1}", f"init_std: 0.1, dtype: {dtype}}}")
        dst.write(text + f"output: {{dir: {out}}}\n")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(["mpirun", "--oversubscribe", "--allow-run-as-root", "-np", "4", binary, "--yaml", cfg],
                       check=True, env=env, timeout=600, stdout=subprocess.PIPE, text=True)
    print(r.stdout.splitlines()[0] if r.stdout else "")
    recs = [json.loads(l) for l in open(metrics)]
    train = [x for x in recs if x["type"] == "train"]
    evals = [x for x in recs if x["type"] == "eval"]
    return train[0]["loss"], evals[-1]["val_loss"], evals[-1]["step"]


def main():
    binary, yaml, outdir = sys.argv[1:4]
    f_first, f_eval, f_step = run(binary, yaml, outdir, "fp32")
    b_first, b_eval, b_step = run(binary, yaml, outdir, "bf16")
    d_first = abs(b_first - f_first) / abs(f_first)
    d_eval = abs(b_eval - f_eval) / abs(f_eval)
    print(f"first-step loss: fp32 {f_first:.6f}  bf16 {b_first:.6f}  rel. diff {d_first:.2e} (limit {FIRST_STEP_REL})")
    print(f"final eval loss (step {f_step}): fp32 {f_eval:.6f}  bf16 {b_eval:.6f}  rel. diff {d_eval:.2e} "
          f"(limit {FINAL_EVAL_REL})")
    ok = d_first <= FIRST_STEP_REL and d_eval <= FINAL_EVAL_REL and f_step == b_step
    print(f"demo dtypes: {int(ok)} passed, {int(not ok)} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
