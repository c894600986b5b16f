#!/usr/bin/env python3
"""What the demo's adapter learned: held-out examples of each task and the exact-match accuracy
before and after, from two `lora_dist generate --eval ... --eval-out` files.

  demo_report.py BASE_ANSWERS.jsonl ADAPTER_ANSWERS.jsonl [--examples N]

Prints, for the first N held-out records of each task (default 2), the prompt, the expected
answer and the base's and the adapter's greedy answers; then the accuracy per task as the two
files' accuracy lines state it (lora_dist computed them; tests/demo/check_eval_accuracy.py
recounts them from the records). Exit 2 for a missing, damaged or mismatched file.
"""
import argparse
import json
import sys


def load(path):
    answers, accuracy = [], None
    try:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                try:
                    r = json.loads(line)
                except json.JSONDecodeError as e:
                    sys.exit(f"demo_report.py: {path}:{n}: not JSON: {e}")
                if r.get("type") == "answer":
                    answers.append(r)
                elif r.get("type") == "accuracy":
                    accuracy = r
    except OSError as e:
        sys.exit(f"demo_report.py: {path}: {e.strerror}")
    if accuracy is None or not answers:
        sys.exit(f"demo_report.py: {path}: no answers or no accuracy line (not a finished generate --eval-out file)")
    return answers, accuracy


def show(s):
    return json.dumps(s)[1:-1]  # a newline as \n, quotes escaped


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("adapter")
    ap.add_argument("--examples", type=int, default=2)
    a = ap.parse_args()
    base, base_acc = load(a.base)
    lora, lora_acc = load(a.adapter)
    if [(r["prompt"], r["expected"]) for r in base] != [(r["prompt"], r["expected"]) for r in lora]:
        print(f"demo_report.py: {a.base} and {a.adapter} answer different records", file=sys.stderr)
        sys.exit(2)
    shown = {}
    rows = []
    for b, l in zip(base, lora):
        if shown.get(b["task"], 0) >= a.examples:
            continue
        shown[b["task"]] = shown.get(b["task"], 0) + 1
        rows.append((b["task"], show(b["prompt"]), b["expected"], show(b["answer"]),
                     show(l["answer"]) + ("  ok" if l["correct"] else "")))
    head = ("task", "prompt", "expected", "base", "adapter")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(5)]
    print(f"held-out examples ({a.examples} of each task; greedy answers up to the first newline):")
    for r in [head] + rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"\nheld-out exact match ({base_acc['records']} records, words the fine-tuning never saw): base -> adapter")
    for task, t in base_acc["tasks"].items():
        u = lora_acc["tasks"][task]
        print(f"  {task:10s} {t['correct']:4d}/{t['records']:<4d} {100 * t['accuracy']:5.1f}%  ->"
              f"  {u['correct']:4d}/{u['records']:<4d} {100 * u['accuracy']:5.1f}%")
    print(f"  {'all':10s} {base_acc['correct']:4d}/{base_acc['records']:<4d} {100 * base_acc['accuracy']:5.1f}%  ->"
          f"  {lora_acc['correct']:4d}/{lora_acc['records']:<4d} {100 * lora_acc['accuracy']:5.1f}%")


if __name__ == "__main__":
    main()
