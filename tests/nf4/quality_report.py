"""The table of launch/nf4_quality.sh: each run's held-out loss at step 0 (the base) and at its
last step, read from its metrics.jsonl, and nf4 / fp32 for each pair; written to quality.json.
With --max-ratio R it exits 1 unless every trained nf4 run's final loss is within R of its
fp32 twin's (the issue's 2 %: R = 1.02).

    quality_report.py OUT_DIR [--max-ratio 1.02]
"""
import argparse
import json
import os
import sys


def evals(path):
    """{step: val_loss} from a metrics.jsonl."""
    out = {}
    with open(path) as f:
        for line in f:
            m = json.loads(line)
            if "val_loss" in m:
                out[m["step"]] = m["val_loss"]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--max-ratio", type=float, default=0.0)
    a = ap.parse_args()
    rows, ok = [], True
    print("targets | base eval fp32 | base eval nf4 | final eval fp32 | final eval nf4 | nf4 / fp32 (final)")
    print("---|---:|---:|---:|---:|---:")
    for targets in ("qv", "all"):
        e = {d: evals(os.path.join(a.out, "runs", f"{d}_{targets}", "metrics.jsonl")) for d in ("fp32", "nf4")}
        last = max(e["fp32"])
        assert last == max(e["nf4"]) and 0 in e["fp32"] and 0 in e["nf4"], f"{targets}: evals at {e}"
        ratio = e["nf4"][last] / e["fp32"][last]
        rows.append({"targets": targets, "steps": last, "base_fp32": e["fp32"][0], "base_nf4": e["nf4"][0],
                     "final_fp32": e["fp32"][last], "final_nf4": e["nf4"][last], "ratio": ratio})
        print(f"{targets} | {e['fp32'][0]:.4f} | {e['nf4'][0]:.4f} | {e['fp32'][last]:.4f} | {e['nf4'][last]:.4f} "
              f"| {ratio:.4f}")
        if a.max_ratio and not ratio <= a.max_ratio:
            print(f"FAIL: {targets}: nf4's final eval loss is {ratio:.4f}x fp32's, above {a.max_ratio}")
            ok = False
    with open(os.path.join(a.out, "quality.json"), "w") as f:
        json.dump(rows, f, indent=2)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
