#!/usr/bin/env python3
"""The fingerprint of a pretraining run (launch/pretrain_bytes.sh), and its check.

  base_fingerprint.py write METRICS.jsonl MODEL.h5 RUN.yaml > base.json
      every step's training loss and gradient norm, the evals, the step count and wall time,
      the model file's size and SHA-256, the run config's text.
  base_fingerprint.py check base.json METRICS.jsonl [--steps N] [--rtol 1e-5] [--model MODEL.h5]
      a rerun's first N steps (default: all it has) against the fingerprint: every loss and
      gradient norm within rtol (GEMM rounding differs between CPUs, so not bit for bit);
      with --model, that file's SHA-256 must be the fingerprint's (the shipped base is the run's).
Exit status: 0 agree; 1 they differ (each difference printed); 2 a file is missing or unreadable.
"""
import argparse
import hashlib
import json
import os
import sys


def fail_input(msg):
    print(f"base_fingerprint.py: {msg}", file=sys.stderr)
    sys.exit(2)


def read_metrics(path):
    train, evals, end = {}, {}, None
    try:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                try:
                    r = json.loads(line)
                except json.JSONDecodeError as e:
                    fail_input(f"{path}: line {n}: not JSON: {e}")
                if r.get("type") == "train":
                    train[r["step"]] = r
                elif r.get("type") == "eval":
                    evals[r["step"]] = r["val_loss"]
                elif r.get("type") == "end":
                    end = r
    except OSError as e:
        fail_input(f"{path}: {e.strerror}")
    if not train:
        fail_input(f"{path}: no training steps")
    return train, evals, end


def sha256(path):
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        fail_input(f"{path}: {e.strerror}")
    return h.hexdigest()


def cmd_write(a):
    train, evals, _ = read_metrics(a.metrics)
    steps = sorted(train)
    try:
        config = open(a.yaml).read()
    except OSError as e:
        fail_input(f"{a.yaml}: {e.strerror}")
    last = train[steps[-1]]
    fp = {
        "steps": steps[-1],
        "wall_s": round(last.get("elapsed_s", 0.0), 1),
        "loss": [train[s]["loss"] for s in steps],
        "grad_norm": [train[s]["grad_norm"] for s in steps],
        "eval": {str(s): v for s, v in sorted(evals.items())},
        "model_bytes": os.path.getsize(a.model),
        "model_sha256": sha256(a.model),
        "config": config,
    }
    json.dump(fp, sys.stdout, indent=1)
    print()


def cmd_check(a):
    try:
        fp = json.load(open(a.fingerprint))
    except (OSError, json.JSONDecodeError) as e:
        fail_input(f"{a.fingerprint}: {e}")
    for key in ("loss", "grad_norm", "model_sha256"):
        if key not in fp:
            fail_input(f"{a.fingerprint}: no key {key}")
    train, _, _ = read_metrics(a.metrics)
    n = a.steps or max(train)
    if n > len(fp["loss"]):
        fail_input(f"{a.fingerprint}: holds {len(fp['loss'])} steps, {n} asked")
    bad = []
    for s in range(1, n + 1):
        if s not in train:
            fail_input(f"{a.metrics}: no training step {s}")
        for key in ("loss", "grad_norm"):
            want, got = fp[key][s - 1], train[s][key]
            rel = abs(got - want) / max(abs(want), 1e-30)
            status = "ok" if rel <= a.rtol else "DIFFERS"
            print(f"step {s:3d} {key:9s} shipped {want:.9f} rerun {got:.9f} rel {rel:.2e} {status}")
            if rel > a.rtol:
                bad.append(f"step {s} {key}")
    if a.model:
        h = sha256(a.model)
        print(f"{a.model}: sha256 {h} ({'the fingerprint' if h == fp['model_sha256'] else 'NOT the fingerprint'}'s)")
        if h != fp["model_sha256"]:
            bad.append(f"{a.model}'s SHA-256")
    if bad:
        print(f"base_fingerprint.py: differ from {a.fingerprint}: {', '.join(bad)}", file=sys.stderr)
        sys.exit(1)
    print(f"agree: {n} steps within rtol {a.rtol}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("metrics")
    w.add_argument("model")
    w.add_argument("yaml")
    c = sub.add_parser("check")
    c.add_argument("fingerprint")
    c.add_argument("metrics")
    c.add_argument("--steps", type=int, default=0)
    c.add_argument("--rtol", type=float, default=1e-5)
    c.add_argument("--model")
    a = ap.parse_args()
    (cmd_write if a.cmd == "write" else cmd_check)(a)


if __name__ == "__main__":
    main()
